"""The collect flow's channels: duplicates across channels, the drop folder, and a collector that dies.

Real parts only: the IMAP mailbox is pymap on loopback, replies go to the real SMTP test server, the
flow runs against a real Prefect API. A crash is a real SIGKILL of a collector process at a chosen
point (the only fault injected by patching a function, inside that child process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from baocao.intake.channels import collect_folder, collect_mailbox
from baocao.mail import outbox
from baocao.store.db import Database, OutboxMessage, ProcessedMessage, ReceivedFile
from tests.support.app import App
from tests.support.tuky import DEPARTMENTS, ON_TIME, TuKy, open_tu_ky

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    """The Tứ Kỳ cycle 2026-H1, opened and mailed (see tests/support/tuky.py)."""
    return open_tu_ky(app)


def dropbox(tu_ky: TuKy) -> Path:
    folder = Path(tu_ky.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_same_file_by_mail_and_by_drop_folder_is_stored_once_and_answered_once(tu_ky: TuKy) -> None:
    unit = "X11074-VHXH"
    data, filled = tu_ky.fill(unit)
    tu_ky.mail(unit, data)
    tu_ky.mail(unit, data)  # the unit pressed "send" twice
    (dropbox(tu_ky) / tu_ky.forms[unit][0]).write_bytes(data)  # ... and an officer also dropped it in the folder

    result = tu_ky.collect(ON_TIME)

    assert result["mailbox"]["by_status"] == {"accepted": 1, "duplicate": 1}
    assert result["folder"]["by_status"] == {"duplicate": 1}
    assert tu_ky.counts() == {"files": 1, "submissions": 1, "receipts": 1, "problems": 0}
    with tu_ky.app.db.session() as s:
        (row,) = s.scalars(select(ReceivedFile))
        assert (row.channel, row.times_seen, row.content) == ("email", 3, data)
    (sub,) = tu_ky.submissions()
    assert sub.version == 1 and tu_ky.values(sub.id) == filled.values
    (total,) = tu_ky.status()["totals"]
    assert (total["received"], total["accepted"]) == (1, 1)
    assert tu_ky.unit_status(unit)["files"] == 1
    (reply,) = tu_ky.replies()
    assert reply.message["X-Baocao-Kind"] == "receipt"
    assert [p.parent.name for p in dropbox(tu_ky).rglob("*") if p.is_file()] == ["done"]

    # The next run finds nothing new: nothing read, stored or sent again.
    assert collect_mailbox(tu_ky.app.db, tu_ky.cfg, as_of=ON_TIME).messages == 0
    assert collect_folder(tu_ky.app.db, tu_ky.cfg, as_of=ON_TIME).files == 0
    assert outbox.deliver(tu_ky.app.db, tu_ky.cfg.settings).sent == []
    assert tu_ky.counts() == {"files": 1, "submissions": 1, "receipts": 1, "problems": 0}


def test_the_drop_folder_takes_files_in_and_moves_them_to_done_or_failed(tu_ky: TuKy) -> None:
    folder = dropbox(tu_ky)
    good, filled = tu_ky.fill("X11074-VP")
    bad, _ = tu_ky.fill("X11074-KT", mistake="relation")
    (folder / "van-phong.xlsx").write_bytes(good)
    (folder / "kinh-te.xlsx").write_bytes(bad)
    (folder / "ghi-chu.txt").write_text("không phải biểu mẫu", encoding="utf-8")
    (folder / ".dang-chep.xlsx").write_bytes(good)  # hidden: a copy still in progress, left alone

    result = tu_ky.collect(ON_TIME, mailbox=False)

    assert result["folder"]["files"] == 3
    assert result["folder"]["by_status"] == {"accepted": 1, "rejected": 2}
    done = sorted(p.name.split("-", 1)[1] for p in (folder / "done").iterdir())
    failed = sorted(p.name.split("-", 1)[1] for p in (folder / "failed").iterdir())
    assert done == ["van-phong.xlsx"] and failed == ["ghi-chu.txt", "kinh-te.xlsx"]
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [".dang-chep.xlsx"]
    assert (folder / "done" / next((folder / "done").iterdir()).name).read_bytes() == good

    st = tu_ky.unit_status("X11074-VP")
    assert st["state"] == "accepted" and st["on_time"] is True
    (sub,) = tu_ky.submissions("X11074-VP")
    assert tu_ky.values(sub.id) == filled.values
    assert tu_ky.unit_status("X11074-KT")["state"] == "rejected"
    with tu_ky.app.db.session() as s:
        assert sorted(s.scalars(select(ReceivedFile.channel))) == ["folder"] * 3
    # A file from the folder has no sender: the unit's coordinator gets the answer; the unreadable
    # note, tied to no unit and no sender, gets none.
    replies = {m.rcpt_tos[0]: m.message["X-Baocao-Kind"] for m in tu_ky.replies()}
    assert replies == {tu_ky.coordinator("X11074-VP"): "receipt", tu_ky.coordinator("X11074-KT"): "problems"}


def test_replies_are_sent_under_the_smtp_concurrency_limit_when_one_exists(tu_ky: TuKy, smtp_limit: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import TaskRun

    good, _ = tu_ky.fill("X11074-VP")
    (dropbox(tu_ky) / "van-phong.xlsx").write_bytes(good)

    state = tu_ky.collect(ON_TIME, mailbox=False, return_state=True)

    assert state.result()["replies"] == {"sent": 1, "failed": 0}
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/task_runs/filter", json={
            "flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}},
            "limit": 10, "offset": 0, "sort": "EXPECTED_START_TIME_ASC"})
        runs = TaskRun.model_validate_list(response.json())
        assert client.read_global_concurrency_limit_by_name(smtp_limit).active_slots == 0  # released
    tags = {run.task_key.rsplit("-", 1)[0]: run.tags for run in runs}
    assert tags == {"read_folder": [], "send_replies": ["smtp"]}


# ----------------------------------------------------------------------------------------- a collector killed
KILLER = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime
    import importlib

    module, name, when, as_of = sys.argv[1:5]
    target = importlib.import_module(module)
    real = getattr(target, name)
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2 and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if len(calls) == 2 and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(target, name, dying)
    from baocao import runtime
    from baocao.intake.channels import collect_mailbox

    cfg = runtime.config()
    collect_mailbox(runtime.database(cfg), cfg, as_of=datetime.fromisoformat(as_of))
    sys.exit("the collector was not killed")
""")


@pytest.mark.parametrize(("module", "name", "when"), [
    ("baocao.intake.channels", "take_in", "before"),  # 2nd message fetched, nothing of it stored
    ("baocao.intake.pipeline", "read_submission", "before"),  # 2nd file stored, not yet read or answered
    ("baocao.intake.channels", "take_in", "after"),  # 2nd file taken in and answered, message not yet recorded
], ids=["after-fetch", "after-file-stored", "before-message-recorded"])
def test_a_collector_killed_mid_run_loses_nothing_and_doubles_nothing(tu_ky: TuKy, module: str, name: str,
                                                                      when: str) -> None:
    units = DEPARTMENTS[:3]
    filled = {}
    for seed, unit in enumerate(units, start=1):
        data, filled[unit] = tu_ky.fill(unit, seed=seed)
        tu_ky.mail(unit, data)

    proc = subprocess.run([sys.executable, "-c", KILLER, module, name, when, ON_TIME.isoformat()],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert tu_ky.unit_status(units[0])["state"] == "accepted"  # the first message was done before the crash
    assert tu_ky.unit_status(units[2])["state"] == "sent"  # the third was never reached

    result = tu_ky.collect(ON_TIME)  # the next scheduled run

    assert result["mailbox"]["messages"] == 2  # the message the collector died on, and the next one
    for unit in units:
        st = tu_ky.unit_status(unit)
        assert st["state"] == "accepted" and st["files"] == 1, unit
        (sub,) = tu_ky.submissions(unit)
        assert sub.status == "accepted" and sub.version == 1 and tu_ky.values(sub.id) == filled[unit].values
    assert tu_ky.counts() == {"files": 3, "submissions": 3, "receipts": 3, "problems": 0}
    replies = tu_ky.replies()
    assert sorted(r for m in replies for r in m.rcpt_tos) == sorted(tu_ky.coordinator(u) for u in units)
    assert all(m.message["X-Baocao-Kind"] == "receipt" for m in replies)
    with tu_ky.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 3

    again = collect_mailbox(tu_ky.app.db, tu_ky.cfg, as_of=ON_TIME)
    assert again.messages == 0 and tu_ky.counts()["submissions"] == 3


# ----------------------------------------------------------------------------------------- two collectors at once
def test_two_collectors_reading_the_mailbox_at_once_take_each_file_in_once(app_any_db: App) -> None:
    cycle = open_tu_ky(app_any_db)
    filled = {}
    for seed, unit in enumerate(DEPARTMENTS, start=1):
        data, filled[unit] = cycle.fill(unit, seed=seed)
        cycle.mail(unit, data)
    cycle.mail("X11074-VHXH", cycle.fill("X11074-VHXH", seed=9)[0])  # and a correction right after
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def collector() -> None:
        db = Database(cycle.app.db.url)  # a collector of its own: own engine, own connections
        try:
            start.wait()
            collect_mailbox(db, cycle.cfg, as_of=ON_TIME)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=collector) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    outbox.deliver(cycle.app.db, cycle.cfg.settings, kinds=["receipt", "problems"])  # as the flow's last task

    assert collect_mailbox(cycle.app.db, cycle.cfg, as_of=ON_TIME).messages == 0
    with cycle.app.db.session() as s:
        problems = [m.body_text[:1500] for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "problems"))]
    assert cycle.counts() == {"files": 5, "submissions": 5, "receipts": 5, "problems": 0}, problems
    for unit in DEPARTMENTS:
        assert cycle.unit_status(unit)["state"] == "accepted", unit
    for unit in DEPARTMENTS[1:]:
        (sub,) = cycle.submissions(unit)
        assert sub.version == 1 and cycle.values(sub.id) == filled[unit].values
    old, new = cycle.submissions("X11074-VHXH")
    assert (old.status, old.version, new.status, new.version) == ("superseded", 1, "accepted", 2)
    with cycle.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 5
    rcpts = sorted(r for m in cycle.replies() for r in m.rcpt_tos)
    assert rcpts == sorted([cycle.coordinator(u) for u in DEPARTMENTS] + [cycle.coordinator("X11074-VHXH")])


def test_a_runs_log_names_every_file_with_a_problem_and_counts_the_accepted(
        prefect_api: None, caplog: pytest.LogCaptureFixture) -> None:
    """A national drop folder holds thousands of accepted forms: a Prefect log line each cost the
    run 2 s; the status tables name every unit. Files with a problem keep a line each."""
    from prefect import flow

    from baocao.intake.channels import CollectReport
    from baocao.intake.pipeline import Outcome, UnitOutcome
    from baocao.intake.results import Problem
    from flows.collect import SHOWN_ACCEPTED, _log_report

    report = CollectReport()
    for n in range(SHOWN_ACCEPTED + 15):
        report.outcomes.append((f"f{n}.xlsx", Outcome(n, False, [UnitOutcome(f"X{n:05d}", "2026-H1", "accepted")])))
    refused = Problem("error", "sai.xlsx", "Thông tin", "B3", None, None, "token", "mã xác thực không đúng")
    report.outcomes.append(("sai.xlsx", Outcome(99, False, [UnitOutcome("X99999", "2026-H1", "refused",
                                                                         problems=[refused])])))
    report.files = len(report.outcomes)

    @flow
    def logs() -> dict[str, Any]:
        return _log_report(report, "folder")

    caplog.set_level("INFO", logger="prefect.flow_runs")
    result = logs()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("folder:")]
    assert result["by_status"] == {"accepted": SHOWN_ACCEPTED + 15, "refused": 1}
    assert "folder: refused unit X99999 period 2026-H1 — mã xác thực không đúng" in lines
    assert sum("accepted unit" in line for line in lines) == SHOWN_ACCEPTED
    assert "folder: 15 more files accepted or already stored (each unit's state: the status tables)" in lines
    assert f"folder: {SHOWN_ACCEPTED + 16} file(s): {SHOWN_ACCEPTED + 15} accepted, 1 refused" in lines
