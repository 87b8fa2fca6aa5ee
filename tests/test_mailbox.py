"""baocao.intake.inbox against a real IMAP server (pymap, in-memory backend) on loopback."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from baocao.intake.inbox import (
    FetchedMessage,
    ImapSettings,
    MailboxError,
    MailboxLoginError,
    _encode_mailbox,
    attachments,
    fetch_since,
    mark_seen,
    sender_address,
)
from baocao.mail.mime import Attachment, Mail, build_message
from tests.support.servers import ImapServer, free_port

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with ImapServer() as server:
        yield server


def settings_for(server: ImapServer, **overrides: object) -> ImapSettings:
    values: dict[str, object] = dict(
        host="127.0.0.1", port=server.port, username=server.username, password=server.password, timeout=10.0
    )
    values.update(overrides)
    return ImapSettings(**values)  # type: ignore[arg-type]


def raw_mail(n: int, sender: str = "daumoi@tuky.example", body: str = "") -> bytes:
    return (
        f"From: Đầu mối {n} <{sender}>\r\nTo: nopbaocao@baocao.example\r\nSubject: so {n}\r\n"
        f"Message-ID: <m{n}@tuky.example>\r\n\r\nBao cao so {n}\r\n{body}"
    ).encode()


def uids(messages: list[FetchedMessage]) -> list[int]:
    return [m.uid for m in messages]


# ------------------------------------------------------------------------------------ fetching


def test_fetch_since_returns_appended_messages_in_uid_order(imap: ImapServer) -> None:
    appended = [imap.append(raw_mail(i)) for i in range(5)]
    uv = imap.uidvalidity()

    got = list(fetch_since(settings_for(imap, batch_size=2), uidvalidity=None, last_uid=0))

    assert uids(got) == appended == sorted(appended)
    assert all(m.uidvalidity == uv for m in got)
    for i, m in enumerate(got):
        assert m.raw.replace(b"\r\n", b"\n") == raw_mail(i).replace(b"\r\n", b"\n")
        assert m.size == len(m.raw) and not m.skipped


def test_empty_mailbox_gives_nothing(imap: ImapServer) -> None:
    assert list(fetch_since(settings_for(imap), uidvalidity=None, last_uid=0)) == []


def test_last_uid_filters_and_nothing_new_gives_nothing(imap: ImapServer) -> None:
    appended = [imap.append(raw_mail(i)) for i in range(4)]
    uv = imap.uidvalidity()
    settings = settings_for(imap, batch_size=3)

    assert uids(list(fetch_since(settings, uidvalidity=uv, last_uid=appended[1]))) == appended[2:]
    # "UID n:*" matches the highest UID even when n is above it; that must not be re-delivered.
    assert list(fetch_since(settings, uidvalidity=uv, last_uid=appended[-1])) == []
    assert list(fetch_since(settings, uidvalidity=uv, last_uid=appended[-1] + 100)) == []

    later = imap.append(raw_mail(9))
    assert uids(list(fetch_since(settings, uidvalidity=uv, last_uid=appended[-1]))) == [later]


def test_changed_uidvalidity_refetches_everything(imap: ImapServer, caplog: pytest.LogCaptureFixture) -> None:
    folder = "Nộp báo cáo"
    imap.create_mailbox(folder)
    first = [imap.append(raw_mail(i), folder) for i in range(2)]
    old_uv = imap.uidvalidity(folder)
    settings = settings_for(imap, mailbox=folder)
    assert uids(list(fetch_since(settings, uidvalidity=old_uv, last_uid=0))) == first

    # The folder is recreated (e.g. restored by an administrator): UIDs start again, UIDVALIDITY moves.
    imap.delete_mailbox(folder)
    imap.create_mailbox(folder)
    again = [imap.append(raw_mail(i), folder) for i in range(3)]
    new_uv = imap.uidvalidity(folder)
    assert new_uv != old_uv
    assert min(again) <= max(first)  # so a last_uid filter alone would lose messages

    caplog.set_level(logging.WARNING, logger="baocao.mail")
    got = list(fetch_since(settings, uidvalidity=old_uv, last_uid=max(first)))
    assert uids(got) == again
    assert all(m.uidvalidity == new_uv for m in got)
    assert any("UIDVALIDITY changed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("ahead", [1, 2])
def test_message_deleted_between_search_and_fetch_is_skipped(
    imap: ImapServer, caplog: pytest.LogCaptureFixture, ahead: int
) -> None:
    """Another client expunges a message this iterator has listed but not fetched yet.

    ahead=2 lets the server report the expunge before the size FETCH; ahead=1 deletes it just before
    that message's own batch, so (pymap reports expunges one command late) its size is still answered
    and only the body FETCH finds it gone. Both must skip it with a warning and go on.
    """
    appended = [imap.append(raw_mail(i)) for i in range(4)]
    victim = appended[ahead]
    caplog.set_level(logging.WARNING, logger="baocao.mail")
    stream = fetch_since(settings_for(imap, batch_size=1), uidvalidity=None, last_uid=0)

    first = next(stream)  # SEARCH has run and listed all four; only the first batch is fetched
    imap.delete(victim)
    rest = list(stream)

    assert uids([first, *rest]) == [u for u in appended if u != victim]
    assert any(f"UID {victim}" in r.getMessage() and "deleted" in r.getMessage() for r in caplog.records)


def test_message_above_max_bytes_is_reported_not_downloaded(
    imap: ImapServer, caplog: pytest.LogCaptureFixture
) -> None:
    small1 = imap.append(raw_mail(1))
    big = imap.append(raw_mail(2, body="x" * 20_000 + "\r\n"))
    small2 = imap.append(raw_mail(3))
    caplog.set_level(logging.WARNING, logger="baocao.mail")

    got = list(fetch_since(settings_for(imap, max_message_bytes=10_000), uidvalidity=None, last_uid=0))

    assert uids(got) == [small1, big, small2]
    assert got[1].raw == b"" and got[1].skipped and got[1].size > 20_000
    assert got[0].raw and got[2].raw
    assert any(f"UID {big}" in r.getMessage() and "limit" in r.getMessage() for r in caplog.records)


def test_fetch_does_not_mark_seen_but_mark_seen_does(imap: ImapServer) -> None:
    a, b = imap.append(raw_mail(1)), imap.append(raw_mail(2))
    settings = settings_for(imap)
    list(fetch_since(settings, uidvalidity=None, last_uid=0))
    assert _seen(imap) == set()
    mark_seen(settings, [b])
    assert _seen(imap) == {b}
    mark_seen(settings, [])  # nothing to do, no error
    assert a not in _seen(imap)


def _seen(imap: ImapServer) -> set[int]:
    with imap.client() as conn:
        typ, data = conn.uid("SEARCH", None, "SEEN")
    assert typ == "OK"
    return {int(x) for x in (data[0] or b"").split()}


# ------------------------------------------------------------------------------------ errors


def test_login_refused_raises_clear_error_without_password(imap: ImapServer) -> None:
    wrong = "Sai-mat-khau-7781"
    with pytest.raises(MailboxLoginError) as info:
        list(fetch_since(settings_for(imap, password=wrong), uidvalidity=None, last_uid=0))
    text = "".join(traceback.format_exception(info.value))
    assert imap.username in str(info.value) and "refused" in str(info.value)
    assert wrong not in text and wrong not in repr(settings_for(imap, password=wrong))
    assert imap.password not in text


def test_non_ascii_password_is_sent_as_utf8_and_refusal_stays_clean(imap: ImapServer) -> None:
    wrong = "Mật-khẩu-sai"
    with pytest.raises(MailboxLoginError) as info:
        list(fetch_since(settings_for(imap, password=wrong), uidvalidity=None, last_uid=0))
    assert wrong not in "".join(traceback.format_exception(info.value))


def test_unreachable_server_raises_mailbox_error() -> None:
    port = free_port()
    with pytest.raises(MailboxError, match=f"127.0.0.1:{port}"):
        list(fetch_since(ImapSettings(port=port, username="u", password="p", timeout=2), uidvalidity=None,
                         last_uid=0))


def test_missing_mailbox_raises_mailbox_error(imap: ImapServer) -> None:
    with pytest.raises(MailboxError, match="Không có"):
        list(fetch_since(settings_for(imap, mailbox="Không có"), uidvalidity=None, last_uid=0))


def test_mailbox_names_use_modified_utf7() -> None:
    # RFC 3501 section 5.1.3 example
    assert _encode_mailbox("~peter/mail/台北/日本語") == '"~peter/mail/&U,BTFw-/&ZeVnLIqe-"'
    assert _encode_mailbox('A&B "x"') == '"A&-B \\"x\\""'


# ------------------------------------------------------------------------------------ parsing


def test_attachments_are_found_and_names_decoded(imap: ImapServer) -> None:
    sent = build_message(Mail(
        key="reply-1", sender="Đầu Mối <DauMoi@TuKy.Example>", to=("nopbaocao@baocao.example",),
        subject="Nộp báo cáo 6 tháng", text="Gửi kèm biểu mẫu.",
        attachments=(
            Attachment("Biểu mẫu 6 tháng – Tứ Kỳ.xlsx", b"PK\x03\x04xlsx", XLSX),
            Attachment("số liệu.csv", "chỉ tiêu,giá trị\n".encode(), "text/csv"),
            Attachment("macro.xlsm", b"PKxlsm", "application/vnd.ms-excel.sheet.macroEnabled.12"),
        ),
    ))
    uid = imap.append(sent.as_bytes())
    [fetched] = list(fetch_since(settings_for(imap), uidvalidity=None, last_uid=0))
    assert fetched.uid == uid

    msg, parts = attachments(fetched.raw)

    assert msg["Subject"] == "Nộp báo cáo 6 tháng"
    assert sender_address(msg) == "daumoi@tuky.example"
    assert [(p.filename, p.content, p.mimetype) for p in parts] == [
        ("Biểu mẫu 6 tháng – Tứ Kỳ.xlsx", b"PK\x03\x04xlsx", XLSX),
        ("số liệu.csv", "chỉ tiêu,giá trị\n".encode(), "text/csv"),
        ("macro.xlsm", b"PKxlsm", "application/vnd.ms-excel.sheet.macroenabled.12"),
    ]


RFC2047_AND_FORWARDED = b"""From: "Phong VHXH" <VHXH@NhiChieu.example>
To: nopbaocao@baocao.example
Subject: Fwd: bao cao
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain; charset=utf-8

Chuyen tiep.
--outer
Content-Type: application/vnd.ms-excel; name="=?utf-8?b?QsOhbyBjw6FvLnhscw==?="
Content-Disposition: attachment; filename="=?utf-8?b?QsOhbyBjw6FvLnhscw==?="
Content-Transfer-Encoding: base64

eGxz
--outer
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="../../etc/bieu mau.xlsx"
Content-Transfer-Encoding: base64

eGxzeA==
--outer
Content-Type: text/csv; charset=utf-8
Content-Transfer-Encoding: 7bit

a,b
--outer
Content-Type: message/rfc822

From: daumoi@tuky.example
Subject: goc
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner"

--inner
Content-Type: text/plain

goc
--inner
Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet
Content-Disposition: attachment; filename*=utf-8''B%E1%BA%A3ng%20t%E1%BB%95ng%20h%E1%BB%A3p.xlsx
Content-Transfer-Encoding: base64

UEs=
--inner--
--outer--
""".replace(b"\n", b"\r\n")


def test_attachments_rfc2047_names_paths_nameless_sheets_and_forwarded_files() -> None:
    msg, parts = attachments(RFC2047_AND_FORWARDED)
    assert [(p.filename, p.content, p.mimetype) for p in parts] == [
        ("Báo cáo.xls", b"xls", "application/vnd.ms-excel"),
        ("bieu mau.xlsx", b"xlsx", XLSX),  # directory part dropped, type guessed from the name
        ("attachment-3.csv", b"a,b", "text/csv"),
        ("Bảng tổng hợp.xlsx", b"PK", XLSX),
    ]
    assert sender_address(msg) == "vhxh@nhichieu.example"


def test_sender_address_edge_cases() -> None:
    msg, _ = attachments(b"Subject: none\r\n\r\nx")
    assert sender_address(msg) == ""
    msg, _ = attachments(b"From: not an address\r\nSubject: x\r\n\r\nx")
    assert sender_address(msg) == ""
