"""baocao.mail.smtp against a real SMTP server on loopback (tests.support.servers.SmtpServer), faults injected there."""

from __future__ import annotations

import asyncio
import base64
import email
import email.generator
import email.policy
import io
import itertools
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.header import Header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baocao.mail.mime import (
    Attachment,
    Mail,
    _envelope,
    _Generator,
    build_message,
    encoded_words,
    flatten,
    flatten_mail,
    message_id_for,
)
from baocao.mail.smtp import SendResult, SmtpSettings, send_all, send_all_sync
from tests.support.servers import SmtpServer, free_port

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUBJECT = "Báo cáo kết quả thực hiện Kết luận 226-KL/TW 6 tháng đầu năm 2026 — Phường Nhị Chiểu"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def settings_for(server: SmtpServer, **overrides: object) -> SmtpSettings:
    values: dict[str, object] = dict(
        host="127.0.0.1", port=server.port, timeout=5.0, concurrency=2, max_attempts=4,
        backoff_base=0.01, backoff_max=0.05,
    )
    values.update(overrides)
    return SmtpSettings(**values)  # type: ignore[arg-type]


def mail(key: str, to: tuple[str, ...] = ("daumoi@nhichieu.example",), **kw: object) -> Mail:
    values: dict[str, object] = dict(
        key=key, sender="Sở Nội vụ <noreply@baocao.example>", to=to,
        subject=f"Nhắc nộp báo cáo {key}", text=f"Kính gửi đơn vị, mã {key}.",
    )
    values.update(kw)
    return Mail(**values)  # type: ignore[arg-type]


def by_key(results: list[SendResult]) -> dict[str, SendResult]:
    return {r.key: r for r in results}


# ------------------------------------------------------------------------------------ content


def test_message_reaches_server_with_headers_body_and_attachments(smtp: SmtpServer) -> None:
    workbook = bytes(range(256)) * 40
    chart = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    m = Mail(
        key="outbox-17",
        sender="Văn phòng UBND phường <vanphong@nhichieu.example>",
        to=("Nguyễn Văn Á <daumoi@tuky.example>",),
        cc=("truongphong@tuky.example",),
        reply_to="nopbaocao@baocao.example",
        subject=SUBJECT,
        text="Kính gửi: Phòng Văn hóa - Xã hội.\nĐề nghị nộp báo cáo trước ngày 05/6/2026.",
        html='<p>Kính gửi <b>Phòng VHXH</b></p><img src="cid:bieudo">',
        attachments=(
            Attachment("Biểu mẫu báo cáo 6 tháng – Tứ Kỳ.xlsx", workbook, XLSX),
            Attachment("biểu đồ.png", chart, "image/png", inline_cid="bieudo"),
        ),
        headers={"X-Baocao-Unit": "Xã Tứ Kỳ (11074)"},
    )
    [result] = send_all_sync([m], settings_for(smtp))

    assert (result.status, result.attempts, result.refused) == ("sent", 1, {})
    [got] = smtp.messages
    assert got.mail_from == "vanphong@nhichieu.example"
    assert got.rcpt_tos == ("daumoi@tuky.example", "truongphong@tuky.example")
    msg = got.message
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].display_name == "Văn phòng UBND phường"
    assert msg["Reply-To"] == "nopbaocao@baocao.example"
    assert msg["X-Baocao-Unit"] == "Xã Tứ Kỳ (11074)"
    assert msg["Message-ID"] == message_id_for("outbox-17")
    assert msg["Date"].datetime.utcoffset().total_seconds() == 7 * 3600
    assert b"\r\nSubject: =?utf-8?" in got.raw  # RFC 2047 on the wire, not raw UTF-8
    assert msg.get_body(("plain",)).get_content().startswith("Kính gửi: Phòng Văn hóa - Xã hội.")
    html = msg.get_body(("html",))
    assert "Phòng VHXH" in html.get_content()
    [image] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<bieudo>"
    assert image.get_payload(decode=True) == chart
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "Biểu mẫu báo cáo 6 tháng – Tứ Kỳ.xlsx"
    assert att.get_content_type() == XLSX
    assert att.get_payload(decode=True) == workbook
    assert re.search(rb"filename\*(0\*)?=utf-8''", got.raw)  # RFC 2231 (with continuations when long)


def test_same_key_gives_same_message_id() -> None:
    first = build_message(mail("k-1"))
    again = build_message(mail("k-1", subject="khác"))
    other = build_message(mail("k-2"))
    assert first["Message-ID"] == again["Message-ID"] == message_id_for("k-1")
    assert other["Message-ID"] != first["Message-ID"]


@pytest.mark.parametrize("subject", [SUBJECT, "Nhắc", "Plain ASCII subject", "Đ" * 200,
                                     "[2026-H1] Báo cáo =?utf-8?q?=0D=0ABcc:_x@evil.example?= của đơn vị"])
def test_subjects_are_folded_rfc2047_lines_that_read_back_the_same(subject: str) -> None:
    raw = build_message(mail("s", subject=subject)).as_bytes(policy=email.policy.SMTP)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith(b"Subject:"))
    folded = [head[start]] + list(itertools.takewhile(lambda line: line[:1] in (b" ", b"\t"), head[start + 1:]))
    assert all(len(line) <= 78 and line.isascii() for line in folded), folded
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    # An encoded word typed in the subject is shown as typed (a zero-width space keeps it inert), never decoded.
    assert parsed["Subject"] == subject.replace("=?", "=\u200b?")
    assert "Bcc" not in parsed and len(parsed.get_all("Subject")) == 1


def _rich_mail(text: str = "Kính gửi: Phòng Văn hóa - Xã hội.\nĐề nghị nộp báo cáo trước ngày 05/6/2026.") -> Mail:
    return Mail(
        key="2026-H1/national/X11074/request/open", sender="Hệ thống báo cáo <noreply@baocao.example>",
        to=("Nguyễn Văn Á <daumoi@tuky.example>",), cc=("truongphong@tuky.example",), subject=SUBJECT,
        text=text, html="<p>" + text.replace("\n", "<br>") + '</p><img src="cid:bieudo">',
        attachments=(Attachment("Biểu mẫu – Tứ Kỳ.xlsx", bytes(range(256)) * 90, XLSX),
                     Attachment("bieudo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 500, "image/png", inline_cid="bieudo")),
        headers={"X-Baocao-Unit": "X11074", "X-Baocao-Kind": "request", "X-Baocao-Period": "2026-H1"},
    )


@pytest.mark.parametrize(("utf8", "cte_type"), [(False, "8bit"), (False, "7bit"), (True, "8bit")])
def test_flatten_writes_the_stdlib_generators_bytes(utf8: bool, cte_type: str) -> None:
    """Our generator writes bodies in one call and picks its own boundaries; with those boundaries
    set, the stdlib's BytesGenerator writes exactly the same bytes (the way aiosmtplib would send)."""
    msg = build_message(_rich_mail())
    ours = flatten(msg, utf8=utf8, cte_type=cte_type)  # sets the boundaries on msg
    policy = (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP).clone(cte_type=cte_type)
    out = io.BytesIO()
    email.generator.BytesGenerator(out, policy=policy).flatten(msg)
    assert ours == out.getvalue()
    assert len(set(re.findall(rb'boundary="([^"]+)"', ours))) == 3  # mixed, alternative, related: all different
    parsed = email.message_from_bytes(ours, policy=email.policy.default)
    assert parsed.get_body(("plain",)).get_content().startswith("Kính gửi: Phòng Văn hóa")
    [att] = list(parsed.iter_attachments())
    assert att.get_payload(decode=True) == bytes(range(256)) * 90


def test_a_boundary_never_occurs_inside_a_part() -> None:
    """A unit's text quoted in a reply could carry our boundary (it is in every mail we send)."""
    first = flatten(build_message(_rich_mail()))
    used = re.findall(rb'boundary="([^"]+)"', first)
    hostile = "\n".join(f"--{b.decode()}\n--{b.decode()}--" for b in used)
    raw = flatten(build_message(_rich_mail(text="Dòng 1\n" + hostile + "\nDòng cuối")))
    assert set(re.findall(rb'boundary="([^"]+)"', raw)) != set(used)  # the plain text's enclosures moved on
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert hostile in parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png",
        XLSX]


def test_bare_addresses_are_written_as_given_and_make_the_envelope(smtp: SmtpServer) -> None:
    """Units' addresses are bare addr-specs, set without the email package's parser (a fast path);
    addresses with a display name still go through it, and both read back the same."""
    m = mail("plain", to=("daumoi.x10714@donvi.example", "Văn thư <vanthu.x10714@donvi.example>"),
             cc=("DAUMOI.X10714@donvi.example", "lanhdao+bao_cao@tinh.example"))
    [result] = send_all_sync([m], settings_for(smtp))
    assert result.status == "sent"
    [got] = smtp.messages
    assert got.rcpt_tos == ("daumoi.x10714@donvi.example", "vanthu.x10714@donvi.example",
                            "lanhdao+bao_cao@tinh.example")  # the Cc duplicate (case aside) once
    assert b"\r\nCc: DAUMOI.X10714@donvi.example, lanhdao+bao_cao@tinh.example\r\n" in got.raw
    assert [a.addr_spec for a in got.message["Cc"].addresses] == ["DAUMOI.X10714@donvi.example",
                                                                  "lanhdao+bao_cao@tinh.example"]
    assert got.message["To"].addresses[1].display_name == "Văn thư"
    for bad in ("daumoi@donvi.example\r\nBcc: x@evil.example", "daumoi@", "@donvi.example", "a b@donvi.example"):
        with pytest.raises(ValueError, match="To"):
            build_message(mail("bad", to=(bad,)))


def test_text_only_mail_is_a_single_text_part() -> None:
    msg = build_message(mail("plain"))
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"


# ------------------------------------------------------------------------------------ header injection


@pytest.mark.parametrize(
    "field, value",
    [
        ("sender", "noreply@baocao.example\r\nBcc: victim@evil.example"),
        ("to", ("daumoi@tuky.example\nBcc: victim@evil.example",)),
        ("cc", ("a@tuky.example\r\n\r\nbody injected",)),
        ("reply_to", "x@tuky.example\rBcc: victim@evil.example"),
        ("headers", {"X-Baocao-Unit": "Tứ Kỳ\r\nBcc: victim@evil.example"}),
        ("headers", {"Bcc": "victim@evil.example"}),
        ("key", "k\r\nBcc: victim@evil.example"),
    ],
)
def test_line_breaks_in_addresses_and_headers_are_refused(field: str, value: object) -> None:
    fields: dict[str, object] = {"key": "inj", field: value}
    key = fields.pop("key")
    with pytest.raises(ValueError):
        build_message(mail(str(key), **fields))


def test_line_breaks_in_subject_and_filename_are_folded_away(
    smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    m = mail(
        "fold",
        to=("daumoi@tuky.example",),
        subject="Nhắc nộp\r\nBcc: victim@evil.example\nX-A: 1\rX-B: 2",
        attachments=(Attachment('bm.xlsx"\r\nContent-Disposition: inline', b"PK", XLSX),),
    )
    bad = mail("bad-rcpt", to=("daumoi@tuky.example\r\nBcc: victim@evil.example",))
    caplog.set_level(logging.INFO, logger="baocao.mail")
    results = by_key(send_all_sync([bad, m], settings_for(smtp)))
    assert not any("\n" in r.getMessage() for r in caplog.records)  # no forged log lines either

    assert results["bad-rcpt"].status == "permanent"
    assert results["bad-rcpt"].attempts == 0
    assert results["fold"].status == "sent"
    [got] = smtp.messages
    assert got.rcpt_tos == ("daumoi@tuky.example",)
    assert "Bcc" not in got.message
    assert b"\nBcc:" not in got.raw and b"\nContent-Disposition: inline" not in got.raw
    assert got.message["Subject"] == "Nhắc nộp Bcc: victim@evil.example X-A: 1 X-B: 2"
    assert "X-A" not in got.message and "X-B" not in got.message
    [att] = list(got.message.iter_attachments())
    assert att.get_content_type() == XLSX
    assert att.get_filename() == 'bm.xlsx" Content-Disposition: inline'


# ------------------------------------------------------------------------------------ connections


def test_many_messages_share_at_most_concurrency_connections(smtp: SmtpServer) -> None:
    smtp.data_delay = 0.01
    mails = [mail(f"bulk-{i}") for i in range(40)]
    results = send_all_sync(mails, settings_for(smtp, concurrency=4))

    assert [r.key for r in results] == [m.key for m in mails]  # input order
    assert all(r.status == "sent" and r.attempts == 1 for r in results)
    assert 1 < smtp.connections_opened <= 4
    assert smtp.max_concurrent_connections <= 4
    assert all(smtp.copies_of(message_id_for(m.key)) == 1 for m in mails)


def test_one_connection_is_reused_for_all_messages(smtp: SmtpServer) -> None:
    results = send_all_sync([mail(f"seq-{i}") for i in range(10)], settings_for(smtp, concurrency=1))
    assert all(r.status == "sent" for r in results)
    assert smtp.connections_opened == 1
    assert len(smtp.messages) == 10


# ------------------------------------------------------------------------------------ failures


def test_451_then_250_is_delivered_on_second_attempt(smtp: SmtpServer) -> None:
    smtp.fail_next_data(1)
    [result] = send_all_sync([mail("retry-1")], settings_for(smtp))
    assert (result.status, result.attempts) == ("sent", 2)
    assert smtp.copies_of(message_id_for("retry-1")) == 1


def test_4xx_until_max_attempts_is_temporary(smtp: SmtpServer) -> None:
    smtp.reject_rcpt("busy@tuky.example", "450 4.2.1 Mailbox busy, try later")
    results = by_key(send_all_sync(
        [mail("busy", to=("busy@tuky.example",)), mail("fine")], settings_for(smtp, max_attempts=3)
    ))
    assert (results["busy"].status, results["busy"].attempts) == ("temporary", 3)
    assert "450 4.2.1" in results["busy"].detail
    assert results["fine"].status == "sent"


def test_550_for_the_only_recipient_is_permanent_and_others_unaffected(
    smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.reject_rcpt("ghost@tuky.example")
    caplog.set_level(logging.WARNING, logger="baocao.mail")
    mails = [mail("a"), mail("ghost", to=("ghost@tuky.example",)), mail("c")]
    results = by_key(send_all_sync(mails, settings_for(smtp, concurrency=1)))

    assert (results["ghost"].status, results["ghost"].attempts) == ("permanent", 1)
    assert results["ghost"].refused == {"ghost@tuky.example": "550 5.1.1 No such user"}
    assert results["a"].status == results["c"].status == "sent"
    assert sorted(m.message_id for m in smtp.messages) == sorted([message_id_for("a"), message_id_for("c")])
    line = next(r.getMessage() for r in caplog.records if "ghost@tuky.example" in r.getMessage())
    assert "ghost" in line and "550" in line and "No such user" in line


def test_partial_refusal_is_sent_with_refused_filled(smtp: SmtpServer) -> None:
    smtp.reject_rcpt("ghost@tuky.example", "550 5.1.1 <ghost@tuky.example>: Recipient address rejected")
    [result] = send_all_sync(
        [mail("partial", to=("daumoi@tuky.example", "ghost@tuky.example"), cc=("head@tuky.example",))],
        settings_for(smtp),
    )
    assert (result.status, result.attempts) == ("sent", 1)
    assert list(result.refused) == ["ghost@tuky.example"]
    assert result.refused["ghost@tuky.example"].startswith("550 5.1.1")
    [got] = smtp.messages
    assert got.rcpt_tos == ("daumoi@tuky.example", "head@tuky.example")


def test_552_too_large_is_permanent_at_once(smtp: SmtpServer) -> None:
    smtp.max_message_size = 4_000
    big = mail("big", attachments=(Attachment("lớn.xlsx", b"x" * 10_000, XLSX),))
    results = by_key(send_all_sync([big, mail("small")], settings_for(smtp, concurrency=1)))
    assert (results["big"].status, results["big"].attempts) == ("permanent", 1)
    assert results["big"].detail.startswith("552 5.3.4")
    assert results["small"].status == "sent"
    assert [m.message_id for m in smtp.messages] == [message_id_for("small")]


def test_server_down_is_temporary_after_max_attempts() -> None:
    port = free_port()
    settings = SmtpSettings(port=port, timeout=2.0, concurrency=1, max_attempts=3, backoff_base=0.01)
    results = send_all_sync([mail("d1"), mail("d2"), mail("d3")], settings)

    assert [r.status for r in results] == ["temporary"] * 3
    assert results[0].attempts == 3
    # Once the server is known to be unreachable the rest are not hammered one by one.
    assert [r.attempts for r in results[1:]] == [0, 0]
    assert all(str(port) in r.detail for r in results)


def test_server_going_down_and_up(smtp: SmtpServer) -> None:
    smtp.down()
    [down] = send_all_sync([mail("while-down")], settings_for(smtp, max_attempts=2))
    assert down.status == "temporary"
    smtp.up()
    [up] = send_all_sync([mail("while-down")], settings_for(smtp, max_attempts=2))
    assert up.status == "sent"
    assert smtp.copies_of(message_id_for("while-down")) == 1


@pytest.mark.parametrize("at", ["MAIL", "RCPT", "DATA"])
def test_dropped_connection_is_retried_and_delivered_once(smtp: SmtpServer, at: str) -> None:
    mails = [mail(f"drop-{i}") for i in range(5)]
    smtp.drop_connection(1, at=at)
    results = send_all_sync(mails, settings_for(smtp, concurrency=1))

    assert all(r.status == "sent" for r in results)
    assert results[0].attempts == 2
    assert [r.attempts for r in results[1:]] == [1, 1, 1, 1]
    assert [smtp.copies_of(message_id_for(m.key)) for m in mails] == [1] * 5
    assert smtp.connections_opened == 2


def test_timeout_waiting_for_data_reply_is_retried_and_delivered_once(smtp: SmtpServer) -> None:
    smtp.delay_next_data(1, 5.0)  # far beyond the client's timeout; the client gives up and hangs up
    results = send_all_sync([mail("slow"), mail("after")], settings_for(smtp, concurrency=1, timeout=0.3))
    assert [(r.status, r.attempts) for r in results] == [("sent", 2), ("sent", 1)]
    assert smtp.copies_of(message_id_for("slow")) == 1


def test_421_and_close_is_retried_on_a_new_connection(smtp: SmtpServer) -> None:
    smtp.close_with_421(1, at="MAIL")
    results = send_all_sync([mail("x1"), mail("x2")], settings_for(smtp, concurrency=1))
    assert [(r.status, r.attempts) for r in results] == [("sent", 2), ("sent", 1)]
    assert len(smtp.messages) == 2
    assert smtp.connections_opened == 2


# ------------------------------------------------------------------------------------ secrets, callbacks


def test_password_never_in_logs_or_results(caplog: pytest.LogCaptureFixture) -> None:
    password = "Mật-khẩu-SMTP-9137"
    caplog.set_level(logging.DEBUG)
    with SmtpServer(username="baocao", password=password) as server:
        good = settings_for(server, username="baocao", password=password)
        wrong = settings_for(server, username="baocao", password=password + "-old")
        [ok] = send_all_sync([mail("auth-ok")], good)
        refused = send_all_sync([mail("auth-bad-1"), mail("auth-bad-2")], wrong)
        assert server.auth_attempts[0] == ("baocao", True)

    assert ok.status == "sent"
    assert [r.status for r in refused] == ["temporary", "temporary"]
    assert "535" in refused[0].detail  # the reason is there...
    for secret in (password, password + "-old"):  # ...the password is not
        assert secret not in repr(good) and secret not in repr(wrong)
        for r in [ok, *refused]:
            assert secret not in r.detail and secret not in repr(r)
        assert secret not in caplog.text
        b64 = base64.b64encode(f"\0baocao\0{secret}".encode()).decode()
        client_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
        assert not any(b64 in line for line in client_logs)
    assert any("auth-bad-1" in r.getMessage() and "535" in r.getMessage() for r in caplog.records
               if r.name == "baocao.mail")


def test_auth_required_but_not_configured_is_temporary_for_all() -> None:
    with SmtpServer(username="baocao", password="x") as server:
        results = send_all_sync([mail("na-1"), mail("na-2")], settings_for(server, concurrency=1))
        assert server.messages == []
    assert [(r.status, r.attempts) for r in results] == [("temporary", 1), ("temporary", 0)]
    assert all("530" in r.detail for r in results)


def test_on_result_runs_as_each_message_finishes(smtp: SmtpServer) -> None:
    seen: list[tuple[str, str, int]] = []

    async def mark_row(result: SendResult) -> None:
        # The outbox marks its row right now: the server must already hold this message.
        seen.append((result.key, result.status, smtp.copies_of(message_id_for(result.key))))
        if result.key == "cb-1":
            raise RuntimeError("database hiccup")  # must not stop the others

    smtp.reject_rcpt("ghost@tuky.example")
    mails = [mail("cb-0"), mail("cb-1"), mail("cb-2", to=("ghost@tuky.example",)), mail("cb-3")]
    results = asyncio.run(send_all(mails, settings_for(smtp, concurrency=1), on_result=mark_row))

    assert seen == [("cb-0", "sent", 1), ("cb-1", "sent", 1), ("cb-2", "permanent", 0), ("cb-3", "sent", 1)]
    assert [r.status for r in results] == ["sent", "sent", "permanent", "sent"]


def test_send_all_sync_works_inside_a_running_loop(smtp: SmtpServer) -> None:
    calls: list[str] = []

    async def inside() -> list[SendResult]:
        return send_all_sync([mail("loop-1"), mail("loop-2")], settings_for(smtp),
                             on_result=lambda r: calls.append(r.key))

    results = asyncio.run(inside())
    assert [r.status for r in results] == ["sent", "sent"]
    assert sorted(calls) == ["loop-1", "loop-2"]



# ------------------------------------------------------------------------------------ written directly
_VI = "ăâđêôơưáàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵĐĂÂÊÔƠƯ"
_TEXT = st.text(alphabet=st.sampled_from(list("abc xyz.=-\t\n\r0") + list(_VI[:12]) + ["—", "\u2028", "€"]),
                max_size=300)
_LONG = st.sampled_from([
    "", "\n", "x" * 79, "x" * 78, "ắ" * 40, ("Kính gửi đơn vị, đề nghị nộp báo cáo đúng hạn. " * 4 + "\n") * 12,
    ("Plain ASCII line that is rather long, longer than seventy-eight characters. " * 2 + "\n") * 12,
    "\n".join(["A long line in ASCII, quoted-printable is shorter than base64 for it. " * 2] * 11),
    "From the start\n.\n..\nend", "a=b\n" * 30 + "ă" * 100,
    f"--{_Generator._BASE}0\n--{_Generator._BASE}1--\nđ",
])
_LINES = st.lists(st.sampled_from(["", "Ngắn.", "Short.", "x" * 78, "long ASCII line " * 6, "=" * 30,
                                   "Dòng dài có dấu tiếng Việt " * 4, "From here", "."]),
                  max_size=14).map("\n".join)  # line counts around the 10 lines the heuristics sniff
_ADDRESS = st.sampled_from(["daumoi.x10714@donvi.example", "A.B+c@tinh.example", "vanthu@x.example",
                            "Văn thư <vanthu.x10714@donvi.example>", "\"Quoted, Name\" <q@donvi.example>",
                            "a" * 60 + "@donvi.example"])


@st.composite
def _mails(draw: st.DrawFn) -> Mail:
    files = draw(st.lists(st.tuples(
        st.sampled_from(["bieu-mau-x10714-2026-h1.xlsx", "Biểu mẫu – Tứ Kỳ.xlsx", "a" * 70 + ".xlsx", "",
                         'bm.xlsx"\r\nX: y', "phu luc (1).docx", "../../etc/passwd"]),
        st.binary(max_size=3000), st.sampled_from([XLSX, "application/pdf", "image/png", "text/csv"])), max_size=3))
    return Mail(
        key=draw(st.sampled_from(["2026-H1/national/X10714/request/open", "k"])),
        sender=draw(st.sampled_from(["Hệ thống báo cáo <baocao@bnv.example>", "noreply@baocao.example"])),
        to=tuple(draw(st.lists(_ADDRESS, min_size=1, max_size=3))),
        cc=tuple(draw(st.lists(_ADDRESS, max_size=2))),
        reply_to=draw(st.sampled_from([None, "nop@bnv.example", "Bộ phận tổng hợp <nop@bnv.example>"])),
        subject=draw(st.one_of(_TEXT, st.sampled_from([SUBJECT, "Đ" * 200, "Plain", "x" * 120,
                                                       "Báo cáo =?utf-8?q?=0D=0A?= đơn vị"]))),
        text=draw(st.one_of(_TEXT, _LONG, _LINES)),
        html=draw(st.one_of(st.none(), _TEXT, _LONG, _LINES)),
        attachments=tuple(Attachment(name, data, mimetype) for name, data, mimetype in files),
        headers=draw(st.sampled_from([{}, {"X-Baocao-Unit": "X10714", "X-Baocao-Kind": "request"},
                                      {"X-Baocao-Unit": "Tứ Kỳ " * 20}])),
    )


@settings(max_examples=300, deadline=None)
@given(_mails())
def test_mails_written_directly_are_the_email_packages_bytes(m: Mail) -> None:
    """flatten_mail copies the email package's rules to skip its cost; over generated mails (long
    and short lines, ASCII or not, files or none, names that need RFC 2231 or folding, a text that
    carries our boundary) it must give flatten(build_message())'s bytes and envelope exactly."""
    date = datetime(2026, 6, 5, 9, 30, tzinfo=timezone(timedelta(hours=7)))
    msg = build_message(m, date=date)
    sender, rcpts, direct = flatten_mail(m, date=date)
    assert direct == flatten(msg)
    assert (sender, rcpts) == _envelope(msg.raw_items())


def test_the_outboxs_mails_are_written_directly_and_reports_are_built() -> None:
    request = _rich_mail()
    assert flatten_mail(replace(request, attachments=request.attachments[:1]))[2] is not None
    assert flatten_mail(mail("receipt", html="<p>Đã nhận</p>"))[2] is not None
    assert flatten_mail(request)[2] is None  # an inline image (the reports' chart): the email package's
    with pytest.raises(ValueError, match="To"):
        flatten_mail(mail("bad", to=("daumoi@tuky.example\r\nBcc: x@evil.example",)))


@settings(max_examples=400, deadline=None)
@given(st.one_of(_TEXT, st.text(max_size=200), st.sampled_from([SUBJECT, "Đ" * 200, "a", "Ồ", "😀" * 30,
                                                               "[2026-H1] Báo cáo — Xã Tân Thành " * 3])))
def test_subjects_are_encoded_as_the_email_package_does(subject: str) -> None:
    """encoded_words does in one pass what email.header.Header.encode does character by character."""
    try:
        expected = Header(subject, "utf-8", header_name="Subject").encode(linesep="\n")
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        with pytest.raises(UnicodeEncodeError):
            encoded_words(subject, "Subject")
        return
    assert encoded_words(subject, "Subject") == expected
