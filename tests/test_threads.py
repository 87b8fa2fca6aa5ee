"""Replies thread under the unit's mail: In-Reply-To and References as a mail client reads them.

Real parts: the unit's mail goes into the pymap IMAP mailbox, the collect flow runs against a real
Prefect API, and the replies are read as the SMTP test server received them. A forged header of
the unit's mail (not a well-formed msg-id) is never copied into ours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from baocao import runtime
from baocao.devservers.simulate import unit_mail
from baocao.intake.operations import return_submission
from baocao.mail import outbox, threads
from tests.support.tuky import ON_TIME, TuKy

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]

UNIT = "X11074-KT"
REQUEST_ID = "<request-kt@baocao.example>"


def _send(tu_ky: TuKy, unit: str, *files: bytes, message_id: str | None = None, references: str | None = None,
          raw_headers: dict[str, str] | None = None) -> str:
    """Mail `files` from the unit's coordinator as a client does; returns the mail's Message-ID."""
    msg = unit_mail(tu_ky.coordinator(unit), tu_ky.cfg.settings.reply_to, "Re: Báo cáo 6 tháng đầu năm 2026",
                    [(tu_ky.forms[unit][0], f) for f in files], sent_at=datetime(2026, 5, 20, 9, 0, tzinfo=ON_TIME.tzinfo),
                    in_reply_to=REQUEST_ID, references=["<older@baocao.example>"])
    if message_id is not None:
        del msg["Message-ID"]
        msg["Message-ID"] = message_id
    data = msg.as_bytes()
    for name, value in (raw_headers or {}).items():  # written as bytes: what a forger sends, unparsed
        data = b"\n".join(line for line in data.split(b"\n") if not line.lower().startswith(name.lower().encode() + b":"))
        data = f"{name}: {value}\n".encode() + data
    tu_ky.app.imap.append(data)
    return message_id or str(msg["Message-ID"])


def _thread(mail: Any) -> tuple[str | None, list[str]]:
    message = mail.message
    return (str(message["In-Reply-To"]).strip() if message["In-Reply-To"] else None,
            str(message.get("References", "")).split())


def test_the_receipt_and_the_problems_reply_thread_under_the_units_mail(tu_ky: TuKy) -> None:
    good, _ = tu_ky.fill(UNIT)
    bad, _ = tu_ky.fill("X11074-VP", mistake="relation")
    first = _send(tu_ky, UNIT, good)
    second = _send(tu_ky, "X11074-VP", bad)

    tu_ky.collect(ON_TIME)

    replies = {m.message["X-Baocao-Kind"]: m for m in tu_ky.replies()}
    assert set(replies) == {"receipt", "problems"}
    assert _thread(replies["receipt"]) == (first, ["<older@baocao.example>", REQUEST_ID, first])
    assert _thread(replies["problems"]) == (second, ["<older@baocao.example>", REQUEST_ID, second])

    # A return for correction answers the same mail, as its receipt did.
    cfg = runtime.config()
    return_submission(runtime.database(cfg), cfg, UNIT, "2026-H1", "Số liệu chưa khớp với sổ theo dõi", actor="vhxh")
    outbox.deliver(tu_ky.app.db, cfg.settings)
    (returned,) = [m for m in tu_ky.replies() if m.message["X-Baocao-Kind"] == "returned"]
    assert _thread(returned) == (first, ["<older@baocao.example>", REQUEST_ID, first])


def test_the_merged_reply_to_a_mail_of_several_files_keeps_the_thread(tu_ky: TuKy) -> None:
    good, _ = tu_ky.fill(UNIT)
    bad, _ = tu_ky.fill(UNIT, seed=2, mistake="decimal")
    mid = _send(tu_ky, UNIT, good, bad)

    tu_ky.collect(ON_TIME)

    (merged,) = tu_ky.replies()
    assert "2 tệp" in str(merged.message["Subject"])
    assert _thread(merged) == (mid, ["<older@baocao.example>", REQUEST_ID, mid])


def test_forged_ids_of_the_units_mail_are_dropped_never_copied(tu_ky: TuKy) -> None:
    good, _ = tu_ky.fill(UNIT)
    _send(tu_ky, UNIT, good, raw_headers={
        "Message-ID": '<"quoted local"@evil.example> (comment)',
        "References": "<good@a.example> <bad id@x.example> garbage<\"evil\"@x>y> <ok@b.example>",
    })

    tu_ky.collect(ON_TIME)

    (receipt,) = tu_ky.replies()
    in_reply_to, references = _thread(receipt)
    assert in_reply_to is None
    assert references == ["<good@a.example>", "<ok@b.example>"]
    raw = receipt.message.as_string()
    assert "evil" not in raw and "bad id" not in raw and "garbage" not in raw


def test_a_mail_without_any_valid_id_gets_no_thread_headers(tu_ky: TuKy) -> None:
    good, _ = tu_ky.fill(UNIT)
    _send(tu_ky, UNIT, good, raw_headers={"Message-ID": "no-angle-brackets@x.example",
                                          "References": "<a b@c>", "In-Reply-To": "<x@y>"})
    tu_ky.collect(ON_TIME)
    (receipt,) = tu_ky.replies()
    assert receipt.message["In-Reply-To"] is None and receipt.message["References"] is None


def test_simulated_units_write_message_id_and_date_as_clients_do() -> None:
    msg = unit_mail("vanthu@tuky.example", "tonghop@baocao.example", "Re: Báo cáo", [("bieu-mau.xlsx", b"x")],
                    sent_at=datetime(2026, 6, 1, 9, 0, tzinfo=ON_TIME.tzinfo), in_reply_to=REQUEST_ID)
    assert threads.valid_id(str(msg["Message-ID"])) and str(msg["Message-ID"]).endswith("@tuky.example>")
    assert str(msg["Date"]) == "Mon, 01 Jun 2026 09:00:00 +0700"
    assert (str(msg["In-Reply-To"]), str(msg["References"])) == (REQUEST_ID, REQUEST_ID)
