"""The drop folder's batches: `take_in_batch` does what `take_in` on each file in turn does.

Two databases are opened the same way (the Tứ Kỳ cycle of tests/support/tuky.py); the same mixed batch
(good forms, a rejected one and its correction, the same bytes twice, an unreadable file, a forged
token, a unit's correction of an accepted report) is taken in as one batch in the first and one file
at a time in the second. Outcomes, stored rows, the units' states and the replies written must agree.
A batch that meets a concurrent change is taken in one file at a time (a real second connection to
PostgreSQL changes a unit's state between the batch's reading and its writing). The reader
processes give what reading in this process gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from baocao.intake import pipeline as intake
from baocao.intake.channels import collect_folder
from baocao.intake.pipeline import Incoming, take_in, take_in_batch
from baocao.intake.reader import read_submission
from baocao.intake.readpool import ReadPool
from baocao.opening.forms import INFO_LABELS
from baocao.store.db import Database, OutboxMessage, ReceivedFile, Request, Submission, TaskReport, Value
from baocao.store.migrate import upgrade
from baocao.store.queries import open_cycle, sync_units
from tests.support.app import new_pg_database
from tests.support.tuky import LATE, ON_TIME, TuKy, _builder, open_tu_ky, set_info

UNITS = ("X11074-VHXH", "X11074-VP", "X11074-KT", "X11074-TTHCC")


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    return open_tu_ky(app)


def second_database(tu_ky: TuKy, url: str) -> Database:
    """Another database with the same cycle and requests (the forms' tokens hold in both)."""
    from baocao.opening import dispatch
    from baocao.rules.periods import Period

    upgrade(url)
    db = Database(url)
    sync_units(db, tu_ky.cfg.hierarchy)
    info = open_cycle(db, tu_ky.cfg, Period.parse("2026-H1"), "tu-ky")
    prepared = dispatch.prepare_requests(db, tu_ky.cfg, info, tu_ky.cfg.hierarchy.subtree_codes(info.root),
                                         _builder(tu_ky.cfg.catalog))
    assert not prepared.failed
    with db.session() as s:  # as if mailed, like the first database's
        s.execute(update(OutboxMessage).where(OutboxMessage.kind == "request").values(status="sent", sent_at=ON_TIME))
    dispatch.mark_sent(db, info, [])
    return db


def mixed_batch(tu_ky: TuKy) -> list[Incoming]:
    vhxh, _ = tu_ky.fill("X11074-VHXH", seed=1)
    vp_bad, _ = tu_ky.fill("X11074-VP", seed=2, mistake="relation")
    vp_good, _ = tu_ky.fill("X11074-VP", seed=3)
    kt, _ = tu_ky.fill("X11074-KT", seed=4)
    forged = set_info(tu_ky.fill("X11074-TTHCC", seed=5)[0], INFO_LABELS["token"], "0" * 64)
    vhxh_again, _ = tu_ky.fill("X11074-VHXH", seed=6)  # a correction of a report accepted in this batch
    files = [("vhxh.xlsx", vhxh, ON_TIME), ("vp-sai.xlsx", vp_bad, ON_TIME), ("vp.xlsx", vp_good, ON_TIME),
             ("kt.xlsx", kt, LATE), ("kt-lan-2.xlsx", kt, LATE), ("hong.xlsx", b"PK\x03\x04 not a zip", ON_TIME),
             ("tthcc.xlsx", forged, ON_TIME), ("vhxh-sua.xlsx", vhxh_again, LATE)]
    return [Incoming(data, name, "folder", None, when) for name, data, when in files]


def snapshot(db: Database) -> dict[str, Any]:
    """What the intake left, without ids and clocks: enough to tell two ways of taking in apart."""
    with db.session() as s:
        files = {f.id: f.filename for f in s.scalars(select(ReceivedFile))}
        subs = s.scalars(select(Submission).order_by(Submission.id)).all()
        sub_file = {x.id: files[x.file_id] for x in subs}
        replies: dict[str | None, list[tuple[Any, ...]]] = {}
        for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind != "request").order_by(OutboxMessage.id)):
            replies.setdefault(m.unit_code, []).append((m.kind, m.subject, m.body_text, m.recipients))
        return {
            "files": sorted((f.filename, f.sha256, f.times_seen, len(f.content)) for f in s.scalars(select(ReceivedFile))),
            "submissions": sorted((sub_file[x.id], x.unit_code, x.period, x.version, x.status, x.late, x.flagged,
                                   [e["rule"] for e in x.errors], len(x.warnings),
                                   sub_file.get(x.superseded_by)) for x in subs),
            "values": sorted((sub_file[v.submission_id], v.indicator, v.number, v.previous_year, v.text)
                             for v in s.scalars(select(Value))),
            "tasks": sorted((sub_file[t.submission_id], t.task_id, t.status) for t in s.scalars(select(TaskReport))),
            "requests": sorted((r.unit_code, r.state, r.on_time, sub_file.get(r.accepted_submission_id), r.version)
                               for r in s.scalars(select(Request))),
            "replies": replies,  # per unit in the order written: across units the order is free
        }


def summary(outcomes: list[intake.Outcome]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    return [(o.status, [(u.unit, u.status, u.late, [p.rule for p in u.problems]) for u in o.units]) for o in outcomes]


def test_a_batch_takes_in_what_one_file_at_a_time_would(tu_ky: TuKy, tmp_path: Path) -> None:
    batch = mixed_batch(tu_ky)
    one_by_one_db = second_database(tu_ky, f"sqlite:///{tmp_path / 'one-by-one.db'}")
    with tu_ky.app.db.session() as s:  # the replies of opening the cycle are not part of the comparison
        s.execute(update(OutboxMessage).values(status="sent"))

    with one_at_a_time() as left_to_take_in:
        in_batch = take_in_batch(tu_ky.app.db, tu_ky.cfg, batch)
    one_by_one = [take_in(one_by_one_db, tu_ky.cfg, inc) for inc in batch]

    # The batch wrote the two clean first files of their units itself (one on time, one late); the
    # rest went through take_in, in order: a file after one of its unit's left to take_in waits too.
    assert left_to_take_in == ["vp-sai.xlsx", "vp.xlsx", "kt-lan-2.xlsx", "hong.xlsx", "tthcc.xlsx",
                               "vhxh-sua.xlsx"]

    assert summary(in_batch) == summary(one_by_one)
    assert [o.status for o in in_batch] == ["accepted", "rejected", "accepted", "accepted", "duplicate",
                                            "rejected", "rejected", "accepted"]
    assert snapshot(tu_ky.app.db) == snapshot(one_by_one_db)
    state = snapshot(tu_ky.app.db)
    # The rejected file's reply comes before its correction's receipt, as the unit sent them.
    assert [r[0] for r in state["replies"]["X11074-VP"]] == ["problems", "receipt"]
    subs = {x[0]: x for x in state["submissions"]}
    assert (subs["vhxh.xlsx"][4], subs["vhxh.xlsx"][9], subs["vhxh-sua.xlsx"][3]) == ("superseded", "vhxh-sua.xlsx", 2)
    assert subs["kt.xlsx"][5] is True and "kt-lan-2.xlsx" not in subs  # late; the second copy is only counted

    # Again: every file is known, nothing is stored or answered twice.
    again = take_in_batch(tu_ky.app.db, tu_ky.cfg, batch)
    assert [o.status for o in again] == ["duplicate"] * len(batch)
    assert snapshot(tu_ky.app.db)["replies"] == state["replies"]


@contextmanager
def one_at_a_time() -> Iterator[list[str]]:
    """The names of the files a batch leaves to take_in (the rest it writes itself)."""
    names: list[str] = []
    original = intake.take_in

    def counting(*args: Any, **kwargs: Any) -> intake.Outcome:
        names.append(args[2].filename)
        return original(*args, **kwargs)

    intake.take_in = counting  # type: ignore[assignment]
    try:
        yield names
    finally:
        intake.take_in = original  # type: ignore[assignment]


def test_a_clean_batch_is_written_by_the_batch_itself(tu_ky: TuKy) -> None:
    batch = [Incoming(tu_ky.fill(u, seed=i)[0], f"{u}.xlsx", "folder", None, ON_TIME) for i, u in enumerate(UNITS)]
    with one_at_a_time() as left_to_take_in:
        outcomes = take_in_batch(tu_ky.app.db, tu_ky.cfg, batch)
    assert [o.status for o in outcomes] == ["accepted"] * 4 and left_to_take_in == []
    assert {tu_ky.request(u).state for u in UNITS} == {"accepted"}


@pytest.fixture
def pg_tu_ky(app: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TuKy]:
    """The Tứ Kỳ cycle on PostgreSQL (where a second connection can change a row mid-batch)."""
    from baocao import runtime

    url = new_pg_database(pg_url)
    monkeypatch.setenv("BAOCAO_DATABASE_URL", url)
    runtime.reset()
    upgrade(url)
    db = runtime.database(runtime.config())
    sync_units(db, runtime.config().hierarchy)
    app.db, app.cfg = db, runtime.config()
    yield open_tu_ky(app)
    db.dispose()


def test_a_batch_meeting_a_concurrent_change_is_taken_in_one_file_at_a_time(pg_tu_ky: TuKy,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tu_ky = pg_tu_ky
    batch = [Incoming(tu_ky.fill(u, seed=i)[0], f"{u}.xlsx", "folder", None, ON_TIME) for i, u in enumerate(UNITS)]
    original = intake._batch_ready
    changed: list[int] = []

    def then_another_collector(s: Any, *args: Any) -> list[Any]:
        ready = original(s, *args)
        with tu_ky.app.db.engine.begin() as other:  # its own connection and transaction, committed now
            changed.append(other.execute(text("UPDATE requests SET version = version + 1, state_reason = 'khác' "
                                              "WHERE unit_code = 'X11074-KT'")).rowcount)
        return ready

    monkeypatch.setattr(intake, "_batch_ready", then_another_collector)
    outcomes = take_in_batch(tu_ky.app.db, tu_ky.cfg, batch)

    assert changed == [1]
    assert [o.status for o in outcomes] == ["accepted"] * 4  # every file, one at a time after the rollback
    with tu_ky.app.db.session() as s:
        assert s.scalar(select(text("count(*)")).select_from(ReceivedFile)) == 4
        subs = s.scalars(select(Submission)).all()
        assert sorted((x.unit_code, x.version, x.status) for x in subs) == [(u, 1, "accepted") for u in sorted(UNITS)]
        assert len(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).all()) == 4
    assert {tu_ky.request(u).state for u in UNITS} == {"accepted"}


def test_reader_processes_read_what_this_process_reads(tu_ky: TuKy) -> None:
    files = [(tu_ky.fill(u, seed=i)[0], f"{u}.xlsx") for i, u in enumerate(UNITS)]
    files += [(b"not a form", "hong.xlsx"), (files[0][0], "again.xlsx")]
    limit = tu_ky.cfg.settings.max_attachment_bytes
    here = [read_submission(d, n, tu_ky.cfg.catalog, max_bytes=limit) for d, n in files]
    with ReadPool(tu_ky.cfg.catalog, limit, processes=2) as pool:
        jobs = [pool.submit(files[:3]), pool.submit(files[3:])]
        there = [r for job in jobs for r in pool.result(job)]
    assert there == here
    assert [len(subs) for subs, _ in there] == [1, 1, 1, 1, 0, 1]


def test_a_large_drop_folder_is_read_by_reader_processes_and_taken_in_by_batches(
        tu_ky: TuKy, monkeypatch: pytest.MonkeyPatch) -> None:
    import baocao.intake.channels

    monkeypatch.setattr(baocao.intake.channels, "PARALLEL_FROM", 2)  # the four departments are a "large" folder here
    folder = Path(tu_ky.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, u in enumerate(UNITS):
        (folder / f"{u}.xlsx").write_bytes(tu_ky.fill(u, seed=i)[0])
    (folder / "hong.xlsx").write_bytes(b"not a form")

    report = collect_folder(tu_ky.app.db, tu_ky.cfg, as_of=ON_TIME, batch=2)

    assert sorted((name, o.status) for name, o in report.outcomes) == [
        *[(f"{u}.xlsx", "accepted") for u in sorted(UNITS)], ("hong.xlsx", "rejected")]
    assert sorted(p.parent.name for p in folder.rglob("*.xlsx")) == ["done"] * 4 + ["failed"]
    assert {tu_ky.request(u).state for u in UNITS} == {"accepted"}
