"""The machinery of the crash tests: a seeded cycle, the units' side of it, kills and the ledger.

A :class:`Cycle` is one run of the whole H1 2026 cycle of the crash tree (:mod:`tests.support.crash.tree`)
on its own database, SMTP server and IMAP mailbox: open the period, chase, the units reply (by
mail and by the drop folder, some with a mistake they fix later, some twice, some never),
collect, chase the late ones, collect again, consolidate. Everything the units do comes from the
seed, so two cycles with the same seed must end with the same figures, states and messages.

A stage runs either in this process (the reference run) or in a forked child of the
:class:`Zygote`, which the test SIGKILLs at a random moment, or when the SMTP server has accepted
a random number of messages, or *inside* that acceptance (after the server stored the message,
before it answered 250: the one window the outbox cannot close). At each kill the ledger records
which messages were in that window; afterwards every copy beyond the first must be one of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from baocao.mail.mime import message_id_for
from tests.support.crash.tree import PERIOD, PLAN, ROOT, make_config
from tests.support.servers import ImapServer, SmtpServer

PROJECT = Path(__file__).resolve().parents[3]
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
IMAP_USER, IMAP_PASSWORD = "nopbaocao", "imap-test-secret"
STEPS: tuple[tuple[str, str], ...] = (
    ("open", "open"), ("chase", "chase1"), ("wave", "1"), ("collect", "collect1"),
    ("chase", "chase2"), ("wave", "2"), ("collect", "collect2"), ("consolidate", "consolidate"),
)


# BAOCAO_SOAK=1 (`make soak`) asks for the larger budget. It is a switch of the test suite, not a
# setting, but baocao.rules.config reads every BAOCAO_* variable as a setting and refuses unknown ones
# ("soak: Extra inputs are not permitted"), so it is taken out of the environment once read.
_SOAK = os.environ.pop("BAOCAO_SOAK", "")


def soak() -> bool:
    return _SOAK not in ("", "0")


def report_line(config: Any, line: str) -> None:
    """Write a line of figures to the terminal, even from a fixture's teardown (output captured).

    Under pytest-xdist (`make test` runs two workers) a worker has no terminal: the line travels to
    the controller in `workeroutput`, which prints it in the summary (tests/support/fixtures.py).
    """
    print(line)
    if hasattr(config, "workeroutput"):
        config.workeroutput.setdefault("baocao_figures", []).append(line)
        return
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capman = config.pluginmanager.getplugin("capturemanager")
    if reporter is None:
        return
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line(line)


# ----------------------------------------------------------------------------------------- the SMTP side
class KillingSmtpServer(SmtpServer):
    """The test SMTP server, able to kill the client process when it accepts its n-th message.

    ``arm(pid, n, inside=True)`` kills in the server thread right after the n-th message is
    stored, before the 250 reply is written: the client never learns it was accepted.
    ``inside=False`` only signals :attr:`reached`; the test kills a moment later (the client may or
    may not have marked it sent by then).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._trap: list[Any] | None = None  # [pid, remaining, inside]
        self.reached = threading.Event()

    def arm(self, pid: int, n: int, *, inside: bool) -> None:
        with self._lock:
            self.reached.clear()
            self._trap = [pid, n, inside]

    def disarm(self) -> None:
        with self._lock:
            self._trap = None

    def _store(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        super()._store(mail_from, rcpt_tos, raw)
        fire = None
        with self._lock:
            if self._trap is not None:
                self._trap[1] -= 1
                if self._trap[1] <= 0:
                    fire, self._trap = self._trap, None
        if fire is not None:
            if fire[2]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(fire[0], signal.SIGKILL)
            self.reached.set()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until no client connection is open (the killed client's sessions are torn down)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if self._active == 0:
                    return
            time.sleep(0.01)


# ----------------------------------------------------------------------------------------- the zygote
class Zygote:
    """Client of ``python -m tests.support.crash.zygote``: forks stage processes, reports how they ended."""

    def __init__(self, *, flows: bool = False, env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
        base.update(env or {})
        if not flows:
            base.pop("PREFECT_API_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash.zygote"] + (["--flows"] if flows else []),
            cwd=PROJECT, env=base, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._lock = threading.Lock()
        ready = self._read()
        assert "ready" in ready, ready
        self.pid = int(ready["ready"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"zygote ended (status {self.proc.poll()})")
        return json.loads(line)

    def _ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            return self._read()

    def run(self, stage: str, as_of: datetime, env: dict[str, str], log: Path, *, flow: bool = False) -> int:
        return int(self._ask({"op": "run", "stage": stage, "as_of": as_of.isoformat(), "env": env,
                              "log": str(log), "flow": flow})["pid"])

    def wait(self, pid: int) -> tuple[int | None, int | None]:
        """(exit code, killing signal) of a child, once it has ended."""
        answer = self._ask({"op": "wait", "pid": pid})
        return answer["code"], answer["signal"]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def stage_result(log: Path) -> dict[str, Any] | None:
    """The `result {json}` line a stage process printed last, if it got that far."""
    found = None
    with contextlib.suppress(FileNotFoundError):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("result "):
                found = json.loads(line[len("result "):])
    return found


def child_ended(pid: int) -> bool:
    """Whether a child of the zygote has ended (a zombie not yet reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


# ----------------------------------------------------------------------------------------- the units' side
@dataclass
class Reply:
    """What one unit does in one wave: send a file (by mail or the drop folder), maybe twice."""

    unit: str
    wave: int
    channel: str  # mail | folder
    label: str  # names the file across runs: "first", "fix", ...
    mistake: str | None = None
    twice: bool = False


def behaviours(seed: int, form_units: list[str]) -> list[Reply]:
    rng = random.Random(f"behaviour-{seed}")
    out: list[Reply] = []
    for unit in form_units:
        r = rng.random()
        if r < 0.40:
            out.append(Reply(unit, 1, "mail", "first"))
        elif r < 0.55:
            out.append(Reply(unit, 1, "folder", "first"))
        elif r < 0.68:
            out.append(Reply(unit, 1, "mail", "first", mistake=rng.choice(["relation", "decimal"])))
            out.append(Reply(unit, 2, rng.choice(["mail", "folder"]), "fix"))
        elif r < 0.76:
            out.append(Reply(unit, 1, "mail", "first", twice=True))
        elif r < 0.90:
            out.append(Reply(unit, 2, "mail", "late"))
        # else: never replies
    return out


@dataclass
class Ledger:
    """What the crash run went through: kills, and the messages caught between acceptance and mark."""

    kills: int = 0
    kills_by_mode: Counter = field(default_factory=Counter)
    finished_before_kill: int = 0
    window: Counter = field(default_factory=Counter)  # message id -> kills that left it accepted but unmarked
    window_sizes: list[int] = field(default_factory=list)  # per kill: how many messages were in the window
    window_by_mode: Counter = field(default_factory=Counter)  # kill mode -> messages caught in the window
    stages: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    crash_points: int
    lost: int  # outbox rows not sent, or a recipient of a sent row who never got it
    duplicates: int  # messages the server accepted again (same Message-ID), beyond the first
    outside_window: int  # of those, how many no kill in the acceptance window explains
    split_ids: int  # messages owed once that arrived under more than one Message-ID
    problems: list[str]


# ----------------------------------------------------------------------------------------- the cycle
class Cycle:
    """One run of the crash tree's cycle on its own database, SMTP server, mailbox and folder."""

    def __init__(self, workdir: Path, seed: int, db_url: str | None = None, *, concurrency: int = 4,
                 data_delay: float = 0.0, timeout: float = 10.0) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.config_dir = make_config(workdir.parent / "crash-config")
        self.db_url = db_url or f"sqlite:///{workdir / 'baocao.db'}"
        self.smtp = KillingSmtpServer().start()
        self.smtp.data_delay = data_delay
        self.imap = ImapServer(username=IMAP_USER, password=IMAP_PASSWORD).start()
        self.env = {
            "BAOCAO_CONFIG_DIR": str(self.config_dir),
            "BAOCAO_DATABASE_URL": self.db_url,
            "BAOCAO_SMTP__PORT": str(self.smtp.port),
            "BAOCAO_SMTP__BACKOFF_BASE": "0.01",
            "BAOCAO_SMTP__MAX_ATTEMPTS": "3",
            "BAOCAO_SMTP__TIMEOUT": str(timeout),
            "BAOCAO_SMTP__CONCURRENCY": str(concurrency),
            "BAOCAO_IMAP__PORT": str(self.imap.port),
            "BAOCAO_IMAP__USERNAME": IMAP_USER,
            "BAOCAO_IMAP__PASSWORD": IMAP_PASSWORD,
            "BAOCAO_IMAP__TIMEOUT": "10",
            "BAOCAO_DROP_FOLDER": str(workdir / "dropbox"),
            "BAOCAO_DROP_SETTLE_SECONDS": "0",
            "BAOCAO_VAR_DIR": str(workdir),
            "BAOCAO_TOKEN_SECRET": "test-token-secret-0123456789",
        }
        from baocao.rules.config import load_config
        from baocao.store.db import Database
        from baocao.store.migrate import upgrade
        from baocao.store.queries import sync_units

        self.cfg = load_config(self.config_dir, env=self.env)
        upgrade(self.db_url)
        self.db = Database(self.db_url)
        sync_units(self.db, self.cfg.hierarchy)
        self.labels: dict[str, tuple[str, str]] = {}  # file digest[:16] -> (unit, label)
        self.files_sent: set[str] = set()  # sha256 of every distinct file the units sent
        self.mails_sent = 0
        self.ledger = Ledger()
        self.stage_seconds: dict[str, float] = {}
        self.stage_messages: dict[str, int] = {}

    def close(self) -> None:
        self.db.dispose()
        self.smtp.stop()
        self.imap.stop()

    # ---- time
    def timeline(self) -> dict[str, datetime]:
        import pendulum

        from baocao.rules.periods import Period
        from baocao.rules.plans import open_at, unit_deadlines

        cal = self.cfg.calendar
        plan = self.cfg.plan(PLAN)
        sch = unit_deadlines(plan, Period.parse(PERIOD), self.cfg.hierarchy, cal, root=ROOT)
        forms = [d.deadline for c, d in sch.items() if not self.cfg.hierarchy.has_children(c)]
        first, last = min(forms), max(forms)
        tz = cal.settings.timezone

        def at(day: Any, hour: int, minute: int = 0) -> datetime:
            return pendulum.datetime(day.year, day.month, day.day, hour, minute, tz=tz)

        chase2 = cal.add_working_days(first, 3)
        return {
            "open": open_at(plan, Period.parse(PERIOD), self.cfg.hierarchy, cal, root=ROOT),
            "chase1": at(cal.add_working_days(first, -1), 8, 30),
            "collect1": at(cal.add_working_days(first, -1), 17),
            "chase2": at(chase2, 8, 30),
            "collect2": at(chase2, 17),
            "consolidate": at(cal.add_working_days(last, plan.consolidate_days_after + 2), 17),
        }

    @property
    def form_units(self) -> list[str]:
        h = self.cfg.hierarchy
        return [c for c in h.subtree_codes(ROOT) if not h.has_children(c)]

    # ---- running a stage
    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """This cycle's BAOCAO_* environment in this process (for the in-process reference run)."""
        from baocao import runtime

        saved = {k: v for k, v in os.environ.items() if k.startswith("BAOCAO_")}
        for k in saved:
            del os.environ[k]
        os.environ.update(self.env)
        runtime.reset()
        try:
            yield
        finally:
            runtime.reset()
            for k in self.env:
                os.environ.pop(k, None)
            os.environ.update(saved)

    def run_here(self, stage: str, as_of: datetime) -> dict[str, Any]:
        from tests.support.crash.stage import run_library

        before = len(self.smtp.messages)
        started = time.perf_counter()
        with self.environment():
            result = run_library(stage, as_of)
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - started
        self.stage_messages[stage] = len(self.smtp.messages) - before
        return result

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
        return env | self.env

    def run_killed(self, zygote: Zygote, name: str, stage: str, as_of: datetime, rng: random.Random, *,
                   flow: bool, expect_seconds: float, expect_messages: int) -> bool:
        """Run the stage in a child and SIGKILL it at a random point; True if the kill landed."""
        log = self.workdir / f"{name}-{self.ledger.kills + self.ledger.finished_before_kill}.log"
        modes = ["delay", "count", "inside"] if expect_messages else ["delay"]
        mode = rng.choice(modes)
        before = len(self.smtp.messages)
        pid = zygote.run(stage, as_of, self.child_env(), log, flow=flow)
        if mode == "delay":
            deadline = time.monotonic() + rng.uniform(0.0, expect_seconds)
            while time.monotonic() < deadline and not child_ended(pid):
                time.sleep(0.005)
        else:
            self.smtp.arm(pid, rng.randint(1, expect_messages), inside=(mode == "inside"))
            while not self.smtp.reached.wait(0.01) and not child_ended(pid):
                pass
            if mode == "count" and self.smtp.reached.is_set():
                time.sleep(rng.choice([0.0, 0.0, 0.001, 0.003]))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.smtp.disarm()
        code, sig = zygote.wait(pid)
        self.smtp.settle()
        if sig == signal.SIGKILL:
            self.ledger.kills += 1
            self.ledger.kills_by_mode[f"{stage}/{mode}"] += 1
            self.ledger.stages.append(f"{name}:{mode}")
            self._record_window(since=before)
            self.ledger.window_by_mode[mode] += self.ledger.window_sizes[-1]
            return True
        assert code == 0, f"{name}: stage ended with {code} before the kill:\n{log.read_text()[-3000:]}"
        self.ledger.finished_before_kill += 1
        return False

    def run_child(self, zygote: Zygote, name: str, stage: str, as_of: datetime, *, flow: bool) -> dict[str, Any]:
        log = self.workdir / f"{name}-resume.log"
        pid = zygote.run(stage, as_of, self.child_env(), log, flow=flow)
        code, sig = zygote.wait(pid)
        result = stage_result(log)
        assert code == 0 and sig is None and result is not None, \
            f"{name}: resumed stage ended {code}/{sig}:\n{log.read_text()[-4000:]}"
        return result

    def _record_window(self, since: int) -> None:
        """Messages the server accepted from the killed run whose outbox row is not marked sent."""
        from baocao.store.db import OutboxMessage

        on_server = {m.message_id for m in self.smtp.messages[since:]}
        with self.db.session() as s:
            rows = s.execute(select(OutboxMessage.key, OutboxMessage.status)).all()
        caught = [message_id_for(key) for key, status in rows
                  if status != "sent" and message_id_for(key) in on_server]
        self.ledger.window.update(caught)
        self.ledger.window_sizes.append(len(caught))

    # ---- the units
    def forms(self) -> dict[str, tuple[str, bytes]]:
        out: dict[str, tuple[str, bytes]] = {}
        for m in self.smtp.messages:
            if m.message["X-Baocao-Kind"] != "request":
                continue
            for part in m.message.iter_attachments():
                name = part.get_filename() or ""
                if name.endswith(".xlsx"):
                    out.setdefault(str(m.message["X-Baocao-Unit"]), (name, part.get_content()))
        return out

    def wave(self, n: int) -> None:
        from baocao.devservers.simulate import figures, fill_form

        forms = self.forms()
        folder = Path(self.env["BAOCAO_DROP_FOLDER"])
        folder.mkdir(parents=True, exist_ok=True)
        for reply in behaviours(self.seed, self.form_units):
            if reply.wave != n:
                continue
            name, form = forms[reply.unit]
            rng = random.Random(f"{self.seed}-{reply.unit}-{reply.label}")
            filled = figures(self.cfg.catalog, rng)
            data = fill_form(form, self.cfg.catalog, filled, rng, mistake=reply.mistake)
            digest = hashlib.sha256(data).hexdigest()
            self.labels[digest[:16]] = (reply.unit, reply.label)
            self.files_sent.add(digest)
            for _ in range(2 if reply.twice else 1):
                if reply.channel == "folder":
                    (folder / name).write_bytes(data)
                else:
                    self.mail(reply.unit, name, data)

    def mail(self, unit: str, filename: str, data: bytes) -> int:
        msg = EmailMessage()
        msg["From"] = self.cfg.hierarchy[unit].coordinator_emails[0]
        msg["To"] = self.cfg.settings.reply_to
        msg["Subject"] = f"Báo cáo 6 tháng đầu năm 2026 - {unit}"
        msg.set_content("Kính gửi Bộ phận tổng hợp, đơn vị gửi báo cáo theo biểu mẫu đính kèm.")
        msg.add_attachment(data, maintype=XLSX[0], subtype=XLSX[1], filename=filename)
        self.mails_sent += 1
        return self.imap.append(msg.as_bytes())

    # ---- what the run ended with
    def outcome(self) -> dict[str, Any]:
        """Everything two runs with the same seed must agree on."""
        from baocao.consolidation.reporting import figures_for
        from baocao.store.db import OutboxMessage, Report, Request, Submission
        from baocao.store.queries import find_cycle

        info = find_cycle(self.db, PERIOD, PLAN, ROOT)
        assert info is not None
        owed: dict[tuple[str, str, str, str], set[str]] = {}
        with self.db.session() as s:
            rows = list(s.scalars(select(OutboxMessage)))
            states = {r.unit_code: (r.state, r.on_time) for r in s.scalars(
                select(Request).where(Request.cycle_id == info.id))}
            subs = Counter((sub.unit_code, sub.status, sub.version, sub.late) for sub in s.scalars(select(Submission)))
            reports = {(r.unit_code, r.version): r.figures for r in s.scalars(select(Report))}
        by_mid = {message_id_for(r.key): r for r in rows}
        for m in self.smtp.messages:
            row = by_mid.get(m.message_id)
            if row is None:
                owed.setdefault(("?", "?", m.message_id, ",".join(m.rcpt_tos)), set()).add(m.message_id)
                continue
            stage = row.stage
            if row.kind in ("receipt", "problems"):
                stage = "/".join(self.labels.get(row.stage, ("?", row.stage)))
            for rcpt in m.rcpt_tos:
                owed.setdefault((row.kind, row.unit_code or "", stage, rcpt), set()).add(m.message_id)
        figures = figures_for(self.db, self.cfg, info, self.timeline()["consolidate"])
        return {
            "owed": owed, "states": states, "submissions": subs, "reports": reports,
            "root": figures[ROOT].to_dict(), "outbox": Counter(r.status for r in rows),
        }

    def check(self, reference: dict[str, Any]) -> Verdict:
        """The crash run against the reference run of the same seed; see the module docstring."""
        from baocao.store.db import OutboxMessage, ProcessedMessage, ReceivedFile, Submission

        mine = self.outcome()
        problems: list[str] = []
        if set(mine["owed"]) != set(reference["owed"]):
            problems.append(f"messages owed differ: missing {sorted(set(reference['owed']) - set(mine['owed']))}, "
                            f"extra {sorted(set(mine['owed']) - set(reference['owed']))}")
        split_ids = 0
        for what, ids in mine["owed"].items():
            if len(ids) != 1:
                split_ids += 1
                problems.append(f"{what} arrived under {len(ids)} different Message-IDs")
        for name in ("states", "submissions", "reports", "root"):
            if mine[name] != reference[name]:
                problems.append(f"{name} differ from the uninterrupted run: {mine[name]!r} != {reference[name]!r}")
        # every outbox row sent, each of its recipients got it at least once
        lost = 0
        copies = Counter((m.message_id, r) for m in self.smtp.messages for r in m.rcpt_tos)
        with self.db.session() as s:
            rows = list(s.scalars(select(OutboxMessage)))
            files = s.scalar(select(func.count()).select_from(ReceivedFile))
            distinct = s.scalar(select(func.count(func.distinct(ReceivedFile.sha256))))
            processed = s.scalar(select(func.count()).select_from(ProcessedMessage))
            judged = Counter((f, r) for f, r in s.execute(select(Submission.file_id, Submission.request_id)))
        for row in rows:
            if row.status != "sent":
                lost += 1
                problems.append(f"outbox {row.key} ended {row.status}: {row.last_error}")
                continue
            for rcpt in list(row.recipients) + list(row.cc):
                if copies[(message_id_for(row.key), rcpt)] == 0:
                    lost += 1
                    problems.append(f"outbox {row.key} marked sent but {rcpt} never got it")
        # Each kill that caught a message between the server's acceptance and the outbox mark may
        # make it go once more (to all its recipients, in one SMTP transaction); nothing else may.
        accepted = Counter(m.message_id for m in self.smtp.messages)
        duplicates = sum(n - 1 for n in accepted.values())
        outside = {mid: n - 1 - self.ledger.window[mid] for mid, n in accepted.items()
                   if n - 1 > self.ledger.window[mid]}
        if outside:
            problems.append(f"duplicates outside the acceptance window: {outside}")
        if files != len(self.files_sent) or distinct != files:
            problems.append(f"received_files holds {files} rows ({distinct} distinct) for {len(self.files_sent)} files")
        if processed != self.mails_sent:
            problems.append(f"{processed} messages recorded processed, {self.mails_sent} were mailed")
        twice = {k: n for k, n in judged.items() if n > 1}
        if twice:
            problems.append(f"a file judged twice for the same request: {twice}")
        return Verdict(self.ledger.kills, lost, duplicates, sum(outside.values()), split_ids, problems)


def reference_outcome(workdir: Path, seed: int, db_url: str | None = None) -> dict[str, Any]:
    """The uninterrupted run of a seed, in this process; its outcome and the cost of each stage."""
    cycle = Cycle(workdir, seed, db_url)
    try:
        times = cycle.timeline()
        for kind, name in STEPS:
            if kind == "wave":
                cycle.wave(int(name))
                continue
            result = cycle.run_here(kind, times[name])
            assert not result["failed"], (name, result)
            cycle.stage_seconds[name] = cycle.stage_seconds.pop(kind)
            cycle.stage_messages[name] = cycle.stage_messages.pop(kind)
        out = cycle.outcome()
        out["seconds"] = dict(cycle.stage_seconds)
        out["messages"] = dict(cycle.stage_messages)
        return out
    finally:
        cycle.close()
