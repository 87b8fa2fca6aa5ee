"""baocao.devservers.mailserver: the demo SMTP server files what it receives where the docs say."""

from __future__ import annotations

import csv
import email
import email.policy
from dataclasses import replace
from pathlib import Path

from baocao.devservers.mailserver import DemoMailServer, StoredMessage, mailbox_dirname, slugify
from baocao.intake.inbox import ImapSettings, attachments, fetch_since
from baocao.mail.mime import Attachment, Mail, message_id_for
from baocao.mail.smtp import SmtpSettings, send_all_sync
from tests.support.servers import ImapServer

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def send(server: DemoMailServer, *mails: Mail) -> None:
    results = send_all_sync(list(mails), SmtpSettings(port=server.port, timeout=5, max_attempts=1))
    assert [r.status for r in results] == ["sent"] * len(mails), results


def form_mail(key: str, subject: str = "Biểu mẫu báo cáo 6 tháng đầu năm 2026") -> Mail:
    return Mail(
        key=key, sender="Sở Nội vụ <noreply@baocao.example>",
        to=("DauMoi@TuKy.example",), cc=("chutich@tuky.example",),
        subject=subject, text="Kính gửi UBND xã Tứ Kỳ.",
        attachments=(Attachment("Biểu mẫu.xlsx", b"PK-form", XLSX),),
    )


def test_each_recipient_gets_a_numbered_eml_in_its_own_folder(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    with DemoMailServer(root) as server:
        assert server.port > 0
        send(server, form_mail("f1"))
        send(server, replace(form_mail("f2", subject="Nhắc hạn: còn 3 ngày"), cc=()))

    inbox = root / "daumoi@tuky.example"
    assert sorted(p.name for p in inbox.iterdir()) == [
        "0001-bieu-mau-bao-cao-6-thang-dau-nam-2026.eml",
        "0002-nhac-han-con-3-ngay.eml",
    ]
    assert [p.name for p in (root / "chutich@tuky.example").iterdir()] == [
        "0001-bieu-mau-bao-cao-6-thang-dau-nam-2026.eml"
    ]
    first = email.message_from_bytes((inbox / "0001-bieu-mau-bao-cao-6-thang-dau-nam-2026.eml").read_bytes(),
                                     policy=email.policy.default)
    assert first["Delivered-To"] == "DauMoi@TuKy.example"
    assert first["Return-Path"] == "<noreply@baocao.example>"
    assert first["Message-ID"] == message_id_for("f1")
    assert first["Subject"] == "Biểu mẫu báo cáo 6 tháng đầu năm 2026"
    [att] = list(first.iter_attachments())
    assert (att.get_filename(), att.get_payload(decode=True)) == ("Biểu mẫu.xlsx", b"PK-form")

    with (root / "index.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["recipient"], r["subject"], r["path"]) for r in rows] == [
        ("daumoi@tuky.example", "Biểu mẫu báo cáo 6 tháng đầu năm 2026",
         "daumoi@tuky.example/0001-bieu-mau-bao-cao-6-thang-dau-nam-2026.eml"),
        ("chutich@tuky.example", "Biểu mẫu báo cáo 6 tháng đầu năm 2026",
         "chutich@tuky.example/0001-bieu-mau-bao-cao-6-thang-dau-nam-2026.eml"),
        ("daumoi@tuky.example", "Nhắc hạn: còn 3 ngày", "daumoi@tuky.example/0002-nhac-han-con-3-ngay.eml"),
    ]


def test_messages_lists_what_was_stored_and_survives_a_restart(tmp_path: Path) -> None:
    with DemoMailServer(tmp_path) as server:
        assert server.messages() == []
        send(server, form_mail("r1"))
        listed = server.messages("DAUMOI@tuky.example")
        assert [(m.recipient, m.message_id) for m in listed] == [("daumoi@tuky.example", message_id_for("r1"))]
        assert listed[0].path.is_file()
        assert len(server.messages()) == 2

    with DemoMailServer(tmp_path) as again:  # a new run of the demo keeps numbering and history
        send(again, form_mail("r2"))
        mine = again.messages("daumoi@tuky.example")
    assert [m.path.name[:4] for m in mine] == ["0001", "0002"]
    assert [m.message_id for m in mine] == [message_id_for("r1"), message_id_for("r2")]


def test_delivery_hook_feeds_the_imap_intake(tmp_path: Path) -> None:
    """The demo's loop: mail sent to the intake address lands in IMAP, where intake fetches it."""
    calls: list[StoredMessage] = []
    with ImapServer() as imap:

        def deliver(stored: StoredMessage, raw: bytes) -> None:
            calls.append(stored)
            if stored.recipient == "nopbaocao@baocao.example":
                imap.append(raw)

        reply = Mail(
            key="reply-tuky", sender="daumoi@tuky.example", to=("nopbaocao@baocao.example",),
            cc=("luutru@tuky.example",), subject="Nộp báo cáo", text="Gửi kèm.",
            attachments=(Attachment("Báo cáo Tứ Kỳ.xlsx", b"PK-filled", XLSX),),
        )
        with DemoMailServer(tmp_path, on_message=deliver) as server:
            send(server, reply)

        settings = ImapSettings(port=imap.port, username=imap.username, password=imap.password, timeout=5)
        [fetched] = list(fetch_since(settings, uidvalidity=None, last_uid=0))

    assert sorted(c.recipient for c in calls) == ["luutru@tuky.example", "nopbaocao@baocao.example"]
    msg, parts = attachments(fetched.raw)
    assert msg["Message-ID"] == message_id_for("reply-tuky")
    assert [(p.filename, p.content) for p in parts] == [("Báo cáo Tứ Kỳ.xlsx", b"PK-filled")]


def test_a_failing_hook_does_not_bounce_the_message(tmp_path: Path) -> None:
    def broken(stored: StoredMessage, raw: bytes) -> None:
        raise RuntimeError("IMAP down")

    with DemoMailServer(tmp_path, on_message=broken) as server:
        send(server, form_mail("h1"))  # asserts "sent"
        assert len(server.messages()) == 2


def test_names_are_safe_and_readable() -> None:
    assert slugify("Báo cáo Đợt 1: 6 tháng/2026") == "bao-cao-dot-1-6-thang-2026"
    assert slugify("!!!") == "no-subject"
    assert mailbox_dirname("../../etc/passwd") == "_.._etc_passwd"
    assert mailbox_dirname("..") == "_"
    assert "/" not in mailbox_dirname("a/b@c.d") and mailbox_dirname("A@B.C") == "a@b.c"
