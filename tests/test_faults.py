"""Mail faults at the system level: the flows and the outbox against misbehaving SMTP and IMAP servers.

tests/test_mailer.py and tests/test_mailbox.py cover each fault at the transport level; here the
same faults hit a running cycle (the Tứ Kỳ cycle, 2026-H1, SQLite, Prefect flows where the fault
shows in a flow run) and each must end either in a retried success or in a failure of the units
concerned, visible in the flow run and in a log line naming them, with no message lost and none
delivered twice. IMAP faults that a pymap server cannot play itself (going away and coming back
with its mailbox, cutting a FETCH half way, a message deleted by another client while ours is
fetched) are played by a TCP forwarder between the collector and the server
(:mod:`tests.support.crash.netfault`).
"""

from __future__ import annotations

import logging
import random
import re
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from email.message import EmailMessage
from typing import Any

import pendulum
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from sqlalchemy import func, select

from baocao import runtime
from baocao.intake.channels import collect_mailbox
from baocao.intake.inbox import MailboxError, MailboxLoginError
from baocao.mail.mime import message_id_for
from baocao.mail.outbox import deliver
from baocao.store.db import MailboxCursor, OutboxMessage, ProcessedMessage, ReceivedFile, Request, Submission
from flows.chase import chase
from flows.collect import collect
from flows.consolidate import consolidate
from flows.open_period import UnitsFailed, open_period
from tests.support.crash.harness import report_line, soak
from tests.support.crash.netfault import TcpProxy
from tests.support.tuky import DEPARTMENTS, ON_TIME, XLSX, TuKy, open_tu_ky

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")] + ([pytest.mark.soak] if soak() else [])

TZ = "Asia/Ho_Chi_Minh"
UNITS = ("X11074",) + DEPARTMENTS


def at(day: date, hour: int = 8, minute: int = 30) -> datetime:
    return pendulum.datetime(day.year, day.month, day.day, hour, minute, tz=TZ)


def coord(code: str) -> str:
    return f"daumoi.{code.lower()}@donvi.example"


def head(code: str) -> str:
    return f"lanhdao.{code.lower()}@donvi.example"


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    """The Tứ Kỳ cycle opened, its requests delivered (tests/support/tuky.py)."""
    return open_tu_ky(app)


@pytest.fixture(scope="module")
def faults(request: pytest.FixtureRequest) -> Iterator[Counter]:
    counts: Counter = Counter()
    yield counts
    line = (f"fault tests: faults survived {counts['faults']} in {counts['tests']} scenarios, "
            f"messages lost {counts['lost']}, duplicates {counts['duplicates']}")
    report_line(request.config, line)


def ledger(app: Any, *, refused: set[str] = frozenset(), failed: set[str] = frozenset()) -> tuple[int, int]:
    """(lost, duplicates) of everything the outbox holds against what the SMTP server received.

    A row marked sent must have reached each of its recipients but those in `refused` (the server
    refused them) exactly once; a row whose key is in `failed` must have reached nobody; no other
    row may be left unsent; nothing may arrive that the outbox does not hold.
    """
    copies = Counter((m.message_id, r) for m in app.smtp.messages for r in m.rcpt_tos)
    with app.db.session() as s:
        rows = list(s.scalars(select(OutboxMessage)))
    known = {message_id_for(r.key) for r in rows}
    assert {mid for mid, _ in copies} <= known, "a message arrived that the outbox does not hold"
    lost = 0
    for row in rows:
        mid = message_id_for(row.key)
        if row.key in failed:
            assert row.status == "failed" and not any(m == mid for m, _ in copies), row.key
            continue
        if row.status != "sent":
            lost += 1
            continue
        lost += sum(1 for r in list(row.recipients) + list(row.cc) if r not in refused and copies[(mid, r)] == 0)
    return lost, sum(n - 1 for n in copies.values() if n > 1)


def tally(faults: Counter, app: Any, injected: int, **kwargs: Any) -> None:
    lost, duplicates = ledger(app, **kwargs)
    faults["tests"] += 1
    faults["faults"] += injected
    faults["lost"] += lost
    faults["duplicates"] += duplicates
    assert (lost, duplicates) == (0, 0)


def errors(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.ERROR]


# ----------------------------------------------------------------------------------------- SMTP
def test_smtp_down_when_the_period_opens_fails_the_run_naming_every_unit_then_a_rerun_delivers_all(
        app: Any, faults: Counter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app.smtp.down()
    with pytest.raises(UnitsFailed) as exc:
        open_period(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 5, 19)))
    assert set(exc.value.failed) == set(UNITS)
    assert all(f"127.0.0.1:{app.smtp.port}" in why or f"port {app.smtp.port}" in why
               for why in exc.value.failed.values()), exc.value.failed
    logged = errors(caplog, "baocao.outbox")
    for unit in UNITS:
        assert any(f"to unit {unit} not sent" in line for line in logged), unit
    with app.db.session() as s:
        assert {r.status for r in s.scalars(select(OutboxMessage))} == {"pending"}
        assert {r.state for r in s.scalars(select(Request))} == {"pending"}

    app.smtp.up()
    result = open_period(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 5, 19), 9))
    assert result["sent"] == len(UNITS) and not result["failed"]
    with app.db.session() as s:
        assert {r.state for r in s.scalars(select(Request))} == {"sent"}
    assert sorted(r for m in app.smtp.messages for r in m.rcpt_tos) == sorted(coord(u) for u in UNITS)
    tally(faults, app, 1)


def test_replies_go_out_once_through_a_drop_a_421_a_451_and_a_refused_address(
        tu_ky: TuKy, faults: Counter, caplog: pytest.LogCaptureFixture) -> None:
    """The collect flow's receipts; a sender address the relay refuses (550) is that reply's failure alone."""
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    gone = "nguoi.cu@tuky.example"  # an officer who has left: the unit's form came from the old address
    for seed, unit in enumerate(DEPARTMENTS, start=1):
        data, _ = tu_ky.fill(unit, seed=seed)
        tu_ky.mail(unit, data, sender=gone if unit == "X11074-KT" else None)
    app.smtp.reject_rcpt(gone)
    app.smtp.drop_connection(1, at="DATA")
    app.smtp.close_with_421(1, at="MAIL")
    app.smtp.fail_next_data(1)  # 451

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 4}
    assert result["replies"] == {"sent": 3, "failed": 1}
    with app.db.session() as s:
        (bad,) = s.scalars(select(OutboxMessage).where(OutboxMessage.status != "sent"))
    assert bad.unit_code == "X11074-KT" and bad.status == "failed" and "550" in (bad.last_error or "")
    assert any("X11074-KT" in line and "550" in line for line in errors(caplog, "baocao.outbox"))
    got = Counter(r for m in tu_ky.replies() for r in m.rcpt_tos)
    assert got == {coord(u): 1 for u in DEPARTMENTS if u != "X11074-KT"}
    assert tu_ky.unit_status("X11074-KT")["state"] == "accepted"  # the form counts; only the receipt failed

    again = tu_ky.collect(ON_TIME)  # the failed reply is tried again, and refused again: still once, never twice
    assert again["replies"] == {"sent": 0, "failed": 1}
    tally(faults, app, 4, refused={gone}, failed={bad.key})


def test_notices_go_out_once_through_dropped_connections_and_a_refused_head(
        tu_ky: TuKy, faults: Counter, caplog: pytest.LogCaptureFixture) -> None:
    """Overdue notices (coordinator, head in copy): a refused head does not stop the coordinator's copy."""
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    app.smtp.reject_rcpt(head("X11074-VP"))
    app.smtp.drop_connection(1, at="RCPT")
    app.smtp.drop_connection(1, at="MAIL")
    app.smtp.drop_connection(1, at="DATA")

    result = chase(as_of=at(date(2026, 6, 3)))

    # the four overdue notices, the escalation to Xã Tứ Kỳ (two working days before its own 05/6
    # deadline: baocao/rules/escalation.py) and the commune's own reminder (its report is due 05/6)
    assert result == {"actions": 6, "sent": 6}
    received = tu_ky.replies()
    assert Counter(m.message["X-Baocao-Kind"] for m in received) == {"overdue": 4, "escalation": 1, "reminder": 1}
    with app.db.session() as s:
        rows = {r.unit_code: r for r in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "overdue"))}
    assert {r.status for r in rows.values()} == {"sent"}
    assert head("X11074-VP") in (rows["X11074-VP"].last_error or "")  # the refusal is on record
    assert any(head("X11074-VP") in r.getMessage() and "550" in r.getMessage() for r in caplog.records
               if r.name == "baocao.mail" and r.levelno >= logging.WARNING)
    got = Counter(r for m in received if m.message["X-Baocao-Kind"] == "overdue" for r in m.rcpt_tos)
    assert got == {a: 1 for u in DEPARTMENTS for a in (coord(u), head(u)) if a != head("X11074-VP")}
    assert chase(as_of=at(date(2026, 6, 3), 10)) == {"actions": 0, "sent": 0}
    tally(faults, app, 4, refused={head("X11074-VP")})


def test_a_report_too_large_for_the_relay_fails_that_unit_visibly_and_goes_once_the_limit_allows(
        tu_ky: TuKy, faults: Counter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    app.smtp.max_message_size = 20_000  # the draft's Word report and XLSX appendix are bigger
    # (Tứ Kỳ's report is reviewed: the consolidate step mails the draft to the commune; the same step,
    # the same outbox and the same failure as a report sent straight up)

    with pytest.raises(RuntimeError, match="1 unit.*X11074"):
        consolidate(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 6, 8), 17, 0))

    with app.db.session() as s:
        (row,) = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "draft"))
    assert row.status == "failed" and row.last_error.startswith("552")
    assert any("X11074" in line and "552" in line for line in errors(caplog, "baocao.outbox"))
    assert not [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "draft"]

    app.smtp.max_message_size = None  # the relay's limit is raised
    again = consolidate(period="2026-H1", plan="tu-ky", as_of=at(date(2026, 6, 8), 18, 0))
    (res,) = again.values()
    assert res == {"reports": [], "sent": 1, "failed": {}}  # the report is not made again, only sent
    drafts = [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "draft"]
    assert len(drafts) == 1 and set(drafts[0].rcpt_tos) == {coord("X11074"), head("X11074")}
    tally(faults, app, 1)


def test_a_slow_server_times_out_and_is_retried_and_a_run_that_gave_up_is_finished_by_the_next(
        tu_ky: TuKy, faults: Counter, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    monkeypatch.setenv("BAOCAO_SMTP__TIMEOUT", "0.5")
    monkeypatch.setenv("BAOCAO_SMTP__MAX_ATTEMPTS", "2")

    app.smtp.delay_next_data(2, 1.5)  # two DATA replies come after the client's timeout
    assert chase(as_of=at(date(2026, 5, 28))) == {"actions": 4, "sent": 4}
    timed_out = [r for r in caplog.records if r.name == "baocao.mail" and "Timeout" in r.getMessage()]
    assert len(timed_out) == 2
    assert Counter(r for m in tu_ky.replies() for r in m.rcpt_tos) == {coord(u): 1 for u in DEPARTMENTS}

    app.smtp.data_delay = 1.5  # now every reply is too slow: the run gives up, naming the units
    with pytest.raises(RuntimeError, match="4 unit") as exc:
        chase(as_of=at(date(2026, 6, 1)))
    for unit in DEPARTMENTS:
        assert unit in str(exc.value)
        assert any(f"to unit {unit} not sent" in line for line in errors(caplog, "baocao.outbox")), unit
    with app.db.session() as s:
        pending = list(s.scalars(select(OutboxMessage).where(OutboxMessage.status != "sent")))
    assert len(pending) == 4 and {r.status for r in pending} == {"pending"}
    assert all("Timeout" in (r.last_error or "") for r in pending)
    assert tu_ky.replies() == []

    app.smtp.data_delay = 0.0
    assert chase(as_of=at(date(2026, 6, 1), 10)) == {"actions": 0, "sent": 4}
    assert Counter(r for m in tu_ky.replies() for r in m.rcpt_tos) == {coord(u): 1 for u in DEPARTMENTS}
    tally(faults, app, 3)


# ----------------------------------------------------------------------------------------- IMAP
def bulk_append(app: Any, raws: list[bytes]) -> None:
    """APPEND many messages over one IMAP connection (a mailbox filling up while nobody reads it)."""
    with app.imap.client(None) as conn:
        # The literal of an APPEND is a second small write: without TCP_NODELAY each one waits for a
        # delayed ACK (40 ms), which is 20 s for 500 messages.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for raw in raws:
            typ, data = conn.append('"INBOX"', None, None, raw)
            assert typ == "OK", data


def note(n: int, sender: str, attachment: bytes | None = None) -> bytes:
    """A message to the intake mailbox, with a small file attached or none (a question, a thank-you)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "nopbaocao@bonoivu.example", f"Thư số {n}"
    msg.set_content(f"Thư số {n} gửi bộ phận tổng hợp.")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="text", subtype="plain", filename=f"ghi-chu-{n}.txt")
    return msg.as_bytes()


def form_mail(tu_ky: TuKy, unit: str, data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = coord(unit), tu_ky.cfg.settings.reply_to, f"Báo cáo {unit}"
    msg.set_content("Đơn vị gửi báo cáo theo biểu mẫu đính kèm.")
    msg.add_attachment(data, maintype=XLSX[0], subtype=XLSX[1], filename=tu_ky.forms[unit][0])
    return msg.as_bytes()


def fill_mailbox(tu_ky: TuKy, n: int, rng: random.Random) -> dict[str, int]:
    """`n` messages: the four departments' forms, small files (some sent twice), and notes without a file.

    Returns what a collect must end with: messages, distinct files, receipts, problem replies.
    """
    raws = [form_mail(tu_ky, u, tu_ky.fill(u, seed=i)[0]) for i, u in enumerate(DEPARTMENTS, start=1)]
    files: list[bytes] = []
    for i in range(len(raws), n):
        r = rng.random()
        if r < 0.08:
            files.append(f"ghi chú {i} {rng.random()}".encode())
            raws.append(note(i, f"canbo{i}@tuky.example", files[-1]))
        elif r < 0.10 and files:
            raws.append(note(i, f"canbo{i}@tuky.example", rng.choice(files)))  # the same file again
        else:
            raws.append(note(i, f"canbo{i}@tuky.example"))
    rng.shuffle(raws)
    bulk_append(tu_ky.app, raws)
    return {"messages": n, "files": len(DEPARTMENTS) + len(files), "receipts": len(DEPARTMENTS),
            "problems": len(files)}


def unread_bytes(app: Any) -> int:
    """How many bytes of the mailbox's messages the collector has not taken in yet."""
    with app.imap.client() as conn:
        typ, data = conn.uid("FETCH", "1:*", "(RFC822.SIZE)")
    sizes = {int(re.search(rb"UID (\d+)", d)[1]): int(re.search(rb"RFC822\.SIZE (\d+)", d)[1]) for d in data}
    with app.db.session() as s:
        done = set(s.scalars(select(ProcessedMessage.uid)))
    return sum(size for uid, size in sizes.items() if uid not in done)


def collected(app: Any) -> dict[str, int]:
    with app.db.session() as s:
        def count(q: Any) -> int:
            return s.scalar(q) or 0
        return {
            "messages": count(select(func.count()).select_from(ProcessedMessage)),
            "files": count(select(func.count()).select_from(ReceivedFile)),
            "receipts": count(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "receipt")),
            "problems": count(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "problems")),
        }


def judged_twice(app: Any) -> dict[tuple[int, int | None], int]:
    with app.db.session() as s:
        pairs = Counter(s.execute(select(Submission.file_id, Submission.request_id)).tuples())
    return {k: n for k, n in pairs.items() if n > 1}


@pytest.fixture
def proxied(tu_ky: TuKy, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """The collector reaches the IMAP server through a forwarder the test can cut or take down."""
    with TcpProxy(tu_ky.app.imap.port) as proxy:
        monkeypatch.setenv("BAOCAO_IMAP__PORT", str(proxy.port))
        yield proxy


def test_imap_login_refused_fails_the_collect_with_a_clear_line_and_loses_nothing(
        tu_ky: TuKy, faults: Counter, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    expected = fill_mailbox(tu_ky, 30, random.Random(5))
    monkeypatch.setenv("BAOCAO_IMAP__PASSWORD", "mat-khau-cu-da-doi")  # the password was changed on the server

    with pytest.raises(MailboxLoginError) as exc:
        collect_mailbox(app.db, runtime.config(), as_of=ON_TIME)

    text = str(exc.value)
    assert "login refused" in text and "nopbaocao" in text and f"127.0.0.1:{app.imap.port}" in text
    assert "mat-khau-cu-da-doi" not in text and "mat-khau-cu-da-doi" not in caplog.text
    (line,) = errors(caplog, "baocao.collect")
    assert "login refused" in line and "0 message(s) taken in" in line
    assert collected(app) == {"messages": 0, "files": 0, "receipts": 0, "problems": 0}
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(MailboxCursor)) == 0

    # Through the flow: the collect-mailbox task is not retried on a refused login (it would fail again).
    state = collect(as_of=ON_TIME, folder=False, return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=10)
    (task_run,) = [r for r in runs if r.name == "read the mailbox"]
    assert task_run.state.is_failed() and task_run.run_count == 1, (task_run.state, task_run.run_count)

    monkeypatch.setenv("BAOCAO_IMAP__PASSWORD", "imap-test-secret")
    result = tu_ky.collect(ON_TIME)
    assert result["mailbox"]["messages"] == 30
    assert collected(app) == expected
    tally(faults, app, 1)


@pytest.mark.parametrize("seed", [2026] if not soak() else [2026, 1, 2, 3, 4, 5, 6, 7])
def test_imap_cut_mid_fetch_and_server_gone_then_back_collects_everything_once(
        seed: int, tu_ky: TuKy, proxied: TcpProxy, faults: Counter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    rng = random.Random(seed)
    expected = fill_mailbox(tu_ky, 160, rng)
    cuts = 0
    for _ in range(3):  # the link drops in the middle of a FETCH, three times
        left = unread_bytes(app)
        proxied.cut_after(rng.randint(left // 10, left * 9 // 10))
        with pytest.raises(MailboxError, match="IMAP session .* failed"):
            collect_mailbox(app.db, runtime.config(), as_of=ON_TIME)
        cuts += 1
    assert proxied.cuts == cuts
    partial = collected(app)
    assert partial["messages"] < expected["messages"]  # (what was stored before a cut stays stored)
    proxied.down()  # the server is gone for a while
    with pytest.raises(MailboxError, match="cannot connect"):
        collect_mailbox(app.db, runtime.config(), as_of=ON_TIME)
    assert collected(app) == partial
    proxied.up()

    result = tu_ky.collect(ON_TIME)  # the next scheduled run

    assert result["mailbox"]["messages"] == expected["messages"] - partial["messages"]
    assert collected(app) == expected
    assert judged_twice(app) == {}
    for unit in DEPARTMENTS:
        assert tu_ky.unit_status(unit)["state"] == "accepted"
    assert collect_mailbox(app.db, runtime.config(), as_of=ON_TIME).messages == 0
    tally(faults, app, cuts + 1)


def test_a_message_deleted_while_the_collector_fetches_it_is_skipped_and_the_rest_taken_in_once(
        tu_ky: TuKy, proxied: TcpProxy, faults: Counter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = tu_ky.app
    raws = [note(i, f"canbo{i}@tuky.example", f"tệp {i}".encode()) for i in range(120)]
    bulk_append(app, raws)
    with app.imap.client() as conn:
        uids = sorted(int(u) for u in conn.uid("SEARCH", None, "ALL")[1][0].split())
    first_batch, second_batch = uids[:50], uids[50:100]
    victims = [first_batch[7], second_batch[3]]
    # Another client expunges a message of the batch whose bodies are being fetched, and one of the
    # next batch between the collector's SEARCH and its FETCH of that batch.
    proxied.before_client(b"BODY.PEEK[]", lambda: app.imap.delete(victims[0]))
    hits = {"n": 0}

    def on_size() -> None:
        hits["n"] += 1
        if hits["n"] == 1:
            proxied.before_client(b"RFC822.SIZE", lambda: app.imap.delete(victims[1]))
    proxied.before_client(b"RFC822.SIZE", on_size)

    report = collect_mailbox(app.db, runtime.config(), as_of=ON_TIME)

    warned = [r.getMessage() for r in caplog.records if r.name == "baocao.mail" and "deleted" in r.getMessage()]
    skipped = [v for v in victims if any(f"UID {v} " in w for w in warned)]
    assert skipped, warned  # at least one deletion was seen as such (pymap may still serve the other)
    assert report.messages == 120 - len(skipped)
    deliver(app.db, tu_ky.cfg.settings)
    with app.db.session() as s:
        processed = sorted(s.scalars(select(ProcessedMessage.uid)))
    assert processed == [u for u in uids if u not in skipped]  # every other message, once
    assert collected(app)["files"] == 120 - len(skipped) and judged_twice(app) == {}
    again = collect_mailbox(app.db, runtime.config(), as_of=ON_TIME)
    assert again.messages == 0
    tally(faults, app, len(victims))


def test_a_mailbox_of_500_messages_is_taken_in_once(tu_ky: TuKy, faults: Counter) -> None:
    app = tu_ky.app
    expected = fill_mailbox(tu_ky, 500, random.Random(500))

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["messages"] == 500
    assert result["replies"] == {"sent": expected["receipts"] + expected["problems"], "failed": 0}
    assert collected(app) == expected and judged_twice(app) == {}
    with app.db.session() as s:
        files = list(s.scalars(select(ReceivedFile.sha256)))
    assert len(files) == len(set(files))
    assert tu_ky.collect(ON_TIME)["mailbox"]["messages"] == 0
    assert {tu_ky.unit_status(u)["state"] for u in DEPARTMENTS} == {"accepted"}
    tally(faults, app, 1)
