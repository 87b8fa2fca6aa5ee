"""Replies that a forged From cannot multiply (issue 17, point 7) and the answer to an old version (point 8).

Real parts: the pymap IMAP server on loopback and SQLite for the mailbox side; the whole Tứ Kỳ
cycle (real SMTP server, Prefect API) for the unit that mails an older version again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from baocao.intake.channels import collect_mailbox
from baocao.intake.pipeline import Incoming, take_in
from baocao.intake.replies import Part, merge, over_limit
from baocao.mail.letters import SYSTEM_BODY
from baocao.rules.bodies import body_name
from baocao.rules.config import Config
from baocao.store.db import OutboxMessage, ProcessedMessage
from tests.support.mailbox import Mailbox
from tests.support.tuky import ON_TIME, TuKy, open_tu_ky, text_of

FORGED = "gia-mao@ngoai.example"


def flood(n: int, *, tag: str, sender: str = FORGED) -> tuple[bytes, list[tuple[str, bytes]]]:
    """One mail with `n` tiny CSV attachments naming no known unit: (message, [(name, bytes)])."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "nopbaocao@baocao.example"
    msg["Subject"] = "Báo cáo"
    msg.set_content("Gửi kèm.")
    files = [(f"{tag}-{i}.csv", f"ma_don_vi,ky\r\nKHONG-CO-{tag}-{i},2026-H1\r\n".encode()) for i in range(n)]
    for name, data in files:
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return msg.as_bytes(), files


@pytest.fixture
def mailbox(cfg: Config, tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(cfg, tmp_path)
    yield box
    box.close()


def rows(box: Mailbox, address: str = FORGED) -> list[OutboxMessage]:
    with box.db.session() as s:
        return [r for r in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)) if address in r.recipients]


def with_settings(box: Mailbox, **values: Any) -> None:
    box.cfg = dataclasses.replace(box.cfg, settings=box.cfg.settings.model_copy(update=values))


# ------------------------------------------------------------------------------------------ point 7
def test_a_mail_with_many_files_gets_one_reply_naming_every_file(mailbox: Mailbox) -> None:
    raw, files = flood(12, tag="a")
    mailbox.imap.append(raw)

    collect_mailbox(mailbox.db, mailbox.cfg)

    out = rows(mailbox)
    to_send = [r for r in out if r.status == "pending"]
    assert len(to_send) == 1, [(r.key, r.status) for r in out]  # the old code wrote 12
    (reply,) = to_send
    assert "12 tệp" in reply.subject
    assert all(name in reply.body_text and name in (reply.body_html or "") for name, _ in files)
    assert Counter(r.status for r in out) == {"pending": 1, "merged": 12}  # each file's reply kept
    # No unit known: a neutral greeting, once, and signed as the single answers naming no unit are.
    assert reply.body_text.count("Kính gửi:") == 1 and reply.body_text.startswith("Kính gửi: Quý đơn vị")
    assert f"\n{SYSTEM_BODY}\nĐầu mối liên hệ: {SYSTEM_BODY}, thư điện tử {mailbox.cfg.settings.reply_to}." in reply.body_text
    assert SYSTEM_BODY in (reply.body_html or "")
    assert all(r.last_error == f"merged into {reply.key}" for r in out if r.status == "merged")
    # Collecting again writes nothing new (the mail is processed; the merged key is stable).
    collect_mailbox(mailbox.db, mailbox.cfg)
    assert len(rows(mailbox)) == 13


def test_a_mail_over_the_attachment_cap_gets_one_reply_with_its_unread_files(mailbox: Mailbox) -> None:
    with_settings(mailbox, max_attachments_per_message=3)
    raw, files = flood(5, tag="b")
    mailbox.imap.append(raw)

    collect_mailbox(mailbox.db, mailbox.cfg)

    out = rows(mailbox)
    (reply,) = [r for r in out if r.status == "pending"]
    assert all(name in reply.body_text for name, _ in files)  # 3 read and answered, 2 named as unread
    assert "chỉ đọc 3 tệp đầu" in reply.body_text
    assert Counter(r.status for r in out) == {"pending": 1, "merged": 4}  # 3 files' replies and the mail's own


def test_one_file_one_reply_as_before(mailbox: Mailbox) -> None:
    raw, files = flood(1, tag="c")
    mailbox.imap.append(raw)

    collect_mailbox(mailbox.db, mailbox.cfg)

    (reply,) = rows(mailbox)
    assert reply.status == "pending" and reply.key.endswith("/problems/file")  # the file's own reply, unmerged
    assert files[0][0] in reply.subject


def test_replies_held_by_a_run_killed_mid_mail_are_released_once_by_the_next(mailbox: Mailbox) -> None:
    raw, files = flood(3, tag="d")
    uid = mailbox.imap.append(raw)
    # The killed run took in two of the three files (each committed with its held reply), then died
    # before recording the mail: the cursor did not move.
    for name, data in files[:2]:
        take_in(mailbox.db, mailbox.cfg, Incoming(data, name, "email", FORGED, None, f"INBOX uid {uid}",
                                                   hold_replies=True))
    assert Counter(r.status for r in rows(mailbox)) == {"held": 2}

    collect_mailbox(mailbox.db, mailbox.cfg)

    out = rows(mailbox)
    assert Counter(r.status for r in out) == {"pending": 1, "merged": 3}
    (reply,) = [r for r in out if r.status == "pending"]
    assert all(name in reply.body_text for name, _ in files)


def test_replies_to_one_address_beyond_the_hourly_limit_are_kept_not_sent(mailbox: Mailbox) -> None:
    with_settings(mailbox, max_replies_per_address_per_hour=3)
    for i in range(5):
        mailbox.imap.append(flood(2, tag=f"e{i}")[0])
    mailbox.imap.append(flood(1, tag="other", sender="khac@ngoai.example")[0])

    report = collect_mailbox(mailbox.db, mailbox.cfg)

    answers = [r for r in rows(mailbox) if r.status != "merged"]
    assert Counter(r.status for r in answers) == {"pending": 3, "throttled": 2}  # the old code: 10 pending
    assert all("max_replies_per_address_per_hour" in (r.last_error or "") for r in answers
               if r.status == "throttled")
    assert sum("not sent (over 3 replies per address per hour)" in e for e in report.throttled) == 2
    assert [r.status for r in rows(mailbox, "khac@ngoai.example")] == ["pending"]  # another address: its own count
    with mailbox.db.session() as s:
        assert len(s.scalars(select(ProcessedMessage)).all()) == 6  # every mail taken in all the same


def test_the_limit_decision_and_the_merge_are_plain_functions() -> None:
    assert over_limit(["A@x.example"], Counter({"a@x.example": 20}), 20) == "A@x.example"
    assert over_limit(["a@x.example"], Counter({"a@x.example": 19}), 20) is None
    parts = [Part("Tệp “1.csv” không đọc được", "lỗi 1", "problems", ("a@x.example",), stage="s1"),
             Part("[2026-H1] Đã tiếp nhận báo cáo", "số liệu", "receipt", ("a@x.example",), stage="s3")]
    subject, text, html = merge([("1.csv", "s1"), ("2.csv", "s2"), ("3.xlsx", "s3")], parts)
    assert "3 tệp" in subject
    assert "2. Tệp “2.csv”: trùng với tệp đã nhận trước đây" in text  # no reply of its own: a duplicate
    assert "lỗi 1" in text and "số liệu" in text and "3.xlsx" in html


# ------------------------------------------------------------------------------------------ point 8
@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    return open_tu_ky(app)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_unit_mailing_an_older_version_again_is_told_which_version_is_current(tu_ky: TuKy) -> None:
    unit = "X11074-TTHCC"
    v1, _ = tu_ky.fill(unit, seed=1)
    v2, _ = tu_ky.fill(unit, seed=2)
    tu_ky.mail(unit, v1)
    tu_ky.mail(unit, v2)
    tu_ky.collect(ON_TIME)
    tu_ky.replies()
    old, new = tu_ky.submissions(unit)

    tu_ky.mail(unit, v1)  # the first version again, unchanged
    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"duplicate": 1}
    (answer,) = tu_ky.replies_to(tu_ky.coordinator(unit))  # the old code: silence
    text = text_of(answer)
    assert "lần gửi thứ 2" in text and "lần gửi thứ 1" in text and "đã được thay thế" in text
    assert "lưu lại" in text  # how to make the old one current again
    assert [s.status for s in tu_ky.submissions(unit)] == ["superseded", "accepted"]  # nothing changed
    with tu_ky.app.db.session() as s:
        stages = set(s.scalars(select(OutboxMessage.stage).where(OutboxMessage.key.contains("/older/"))))
    assert stages == {hashlib.sha256(v1).hexdigest()[:16]}
    assert (old.version, new.version) == (1, 2)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_merged_reply_to_a_units_mail_is_addressed_and_signed_as_its_single_replies(tu_ky: TuKy) -> None:
    """Issue 21 §1 for the answer to a mail of several files: the unit's body by name, the collecting
    office's signature and contact, the operator's line last; each file's result without its own greeting."""
    unit = "X11074-KT"
    good, _ = tu_ky.fill(unit, seed=1)
    bad, _ = tu_ky.fill(unit, seed=2, mistake="decimal")
    tu_ky.mail(unit, ("a.xlsx", good), ("b.xlsx", bad))

    tu_ky.collect(ON_TIME)

    (merged,) = tu_ky.replies_to(tu_ky.coordinator(unit))
    text = text_of(merged).replace("\r\n", "\n")
    cfg = tu_ky.cfg
    sender = cfg.plan("tu-ky").collector(cfg.hierarchy, unit, fallback_email=cfg.settings.reply_to)
    assert "2 tệp" in str(merged.message["Subject"])
    assert text.startswith(f"Kính gửi: {body_name(cfg.hierarchy[unit])}\n") and text.count("Kính gửi:") == 1
    assert "Quý đơn vị" not in text and "«" not in text
    assert f"\n{sender.body}\n{sender.contact_line}.\n" in text  # the old code: no signature at all
    assert text.rstrip().splitlines()[-1].startswith("Mã kỹ thuật: đơn vị X11074-KT; kỳ 2026-H1")
    assert text.count("Mã kỹ thuật:") == 1
