"""The production path, proven where operators meet it: a real `prefect server start` from this venv.

The first version of baocao passed every test and still never ran a schedule: the tests called the
flows themselves, and with SQLAlchemy 2.1 the Prefect 3.8.8 server's scheduler failed on every pass
("Can't evaluate bulk DML statement") without a scheduled run ever being created; with fastapi 0.154
the server answered 422 to `prefect flow-run ls`, `deployment ls` and the runner's cancellation
polling. These tests start the server as a subprocess (own PREFECT_HOME, SQLite; then PostgreSQL with
a process work pool and two workers), let the schedules fire, and check the runs, Prefect's own CLI,
a cancellation and the server's log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pendulum
import pytest

from baocao.rules.config import PROJECT_DIR
from tests.support.app import new_pg_database
from tests.support.processes import Processes, base_env, flow_runs, httpx_alive, processes, wait_for
from tests.support.servers import ImapServer, SmtpServer, free_port

pytestmark = [pytest.mark.slow]

TZ = "Asia/Ho_Chi_Minh"


# ----------------------------------------------------------------------------- machinery
def completed_scheduled(api: str, deployment: str) -> list[dict[str, Any]]:
    """Runs the scheduler created (auto_scheduled) for the deployment that ended Completed."""
    return [r for r in flow_runs(api, deployment) if r["auto_scheduled"] and r["state_type"] == "COMPLETED"]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\bERROR\b", line)]


def next_minute_at_least(seconds: float) -> pendulum.DateTime:
    """The first whole local minute at least `seconds` from now (for a daily cron due soon)."""
    at = pendulum.now(TZ).add(seconds=seconds)
    return at.set(second=0, microsecond=0).add(minutes=1)


def cancel_a_running_open(procs: Processes, api: str, deployment: str, params: dict[str, str],
                          smtp: SmtpServer, diagnose: Callable[[], str]) -> None:
    """Start an opening whose sending is slowed, cancel it while it runs: it must end Cancelled."""
    smtp.delay_next_data(10_000, 0.5)
    args = [arg for k, v in params.items() for arg in ("--param", f"{k}={v}")]
    started = procs.run("-m", "prefect", "deployment", "run", deployment, *args)
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout)
    assert run_id, started.stdout
    rid = run_id.group(1)

    def state() -> str:
        return httpx.get(f"{api}/flow_runs/{rid}", timeout=10).json()["state_type"]

    wait_for("the opening to run", lambda: state() == "RUNNING", 120, diagnose=diagnose)
    cancelled = procs.run("-m", "prefect", "flow-run", "cancel", rid)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    wait_for("the cancelled run to end Cancelled", lambda: state() == "CANCELLED", 90, diagnose=diagnose)
    smtp.reset_faults()


def prefect_cli_lists(procs: Processes) -> None:
    """Prefect's own CLI against its own server: these answered 422 with fastapi 0.154."""
    for args in (("flow-run", "ls"), ("deployment", "ls")):
        done = procs.run("-m", "prefect", *args)
        assert done.returncode == 0 and "Unprocessable" not in done.stdout + done.stderr, (args, done.stdout, done.stderr)
    listed = procs.run("-m", "prefect", "deployment", "ls")
    assert "collect/collect" in listed.stdout


# ----------------------------------------------------------------------------- baocao up, SQLite
def test_up_runs_the_schedules_on_a_real_prefect_server(tmp_path):
    """`baocao up` on embedded defaults: its server schedules, its runner runs, Prefect's CLI answers."""
    env = base_env(tmp_path)
    prefect_port, imap_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    cron_at = next_minute_at_least(75)
    env.update({
        "BAOCAO_PREFECT_PORT": str(prefect_port),
        "BAOCAO_IMAP__PORT": str(imap_port),
        "BAOCAO_CHASE_TIME": f"{cron_at:%H:%M}",
        "BAOCAO_CONSOLIDATE_TIME": f"{cron_at:%H:%M}",
    })
    with SmtpServer() as smtp, processes(tmp_path, env) as procs:
        env["BAOCAO_SMTP__PORT"] = str(smtp.port)  # a server already listens there: `up` uses it
        up = procs.start("up", "-m", "flows.cli", "up")

        def diagnose() -> str:
            server_log = tmp_path / "var" / "prefect" / "server.log"
            return procs.log("up")[-4000:] + "\n--- server ---\n" + (
                server_log.read_text(errors="replace")[-3000:] if server_log.exists() else "")

        wait_for("up to serve", lambda: "serving every deployment" in procs.log("up") or up.poll() is not None,
                 240, diagnose=diagnose)
        out = procs.log("up")
        assert up.poll() is None, diagnose()
        assert "the server is creating the scheduled runs" in out, diagnose()
        assert f"a server already listens on 127.0.0.1:{smtp.port}" in out
        assert f"built-in mailbox nopbaocao@bonoivu.example on 127.0.0.1:{imap_port}" in out
        assert f"Prefect UI: http://127.0.0.1:{prefect_port}" in out

        # Scheduled collect runs are created by the server's scheduler, picked up and completed.
        runs = wait_for("three scheduled collect runs to complete", lambda: len(completed_scheduled(api, "collect")) >= 3,
                        120, diagnose=diagnose)
        assert runs
        env["PREFECT_API_URL"] = api
        prefect_cli_lists(procs)

        # `baocao schedule` shows the server's own next runs, all in the future.
        shown = procs.run("-m", "flows.cli", "schedule")
        assert shown.returncode == 0, shown.stderr
        assert "as the Prefect server" in shown.stdout
        now = pendulum.now(TZ)
        dates = [pendulum.from_format(d, "DD/MM/YYYY HH:mm", tz=TZ)
                 for d in re.findall(r"\d\d/\d\d/\d{4} \d\d:\d\d", shown.stdout)]
        assert dates and all(d > now.subtract(minutes=1) for d in dates), shown.stdout

        # A cancellation reaches the runner (its cancellation polling answered 422 with fastapi 0.154).
        cancel_a_running_open(procs, api, "open-period/open-national-h1",
                              {"period": "2026-H1", "as_of": "2026-05-20T08:00:00+07:00", "root": "T31"}, smtp,
                              diagnose)

        # The daily crons fire too.
        for dep in ("chase-daily", "consolidate-daily"):
            wait_for(f"the scheduled {dep} run to complete", lambda dep=dep: completed_scheduled(api, dep),
                     max(30.0, (cron_at - pendulum.now(TZ)).total_seconds() + 90), diagnose=diagnose)

        # SIGTERM stops everything within a few seconds.
        stopping = time.monotonic()
        up.send_signal(signal.SIGTERM)
        up.wait(60)
        took = time.monotonic() - stopping
        out = procs.log("up")
        assert "stopped" in out and not httpx_alive(api)
        print(f"up stopped {took:.1f} s after SIGTERM")
    server_log = (tmp_path / "var" / "prefect" / "server.log").read_text(errors="replace")
    assert not error_lines(server_log), error_lines(server_log)[:5]
    assert "Cancellation polling task failed" not in out and "Traceback" not in out, out[-3000:]


def test_up_stops_within_seconds_when_the_server_went_away_first(tmp_path):
    """Prefect's runner pauses the schedules on the way out and retried a dead server for minutes."""
    env = base_env(tmp_path)
    prefect_port = free_port()
    env.update({"BAOCAO_PREFECT_PORT": str(prefect_port), "BAOCAO_IMAP__PORT": str(free_port()),
                "BAOCAO_SMTP__PORT": str(free_port())})
    with processes(tmp_path, env) as procs:
        up = procs.start("up", "-m", "flows.cli", "up")
        wait_for("up to serve", lambda: "serving every deployment" in procs.log("up") or up.poll() is not None, 240,
                 diagnose=lambda: procs.log("up")[-3000:])
        # The built-in SMTP server files what it receives, and mail to the intake address reaches the mailbox.
        assert "SMTP: built-in server" in procs.log("up")
        server_pid = int(subprocess.run(["pgrep", "-f", f"prefect server start --host 127.0.0.1 --port {prefect_port}"],
                                        capture_output=True, text=True).stdout.split()[0])
        os.kill(server_pid, signal.SIGKILL)
        wait_for("the server to be gone", lambda: not httpx_alive(f"http://127.0.0.1:{prefect_port}/api"), 30)
        stopping = time.monotonic()
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("up did not stop within 30 s of SIGTERM:\n" + procs.log("up")[-3000:]) from None
        print(f"up stopped {time.monotonic() - stopping:.1f} s after SIGTERM, its server gone")
        out = procs.log("up")
        # The pause either gave up after PAUSE_TIMEOUT or was cancelled by the loop's teardown (which one
        # depends on how fast the dead server's connection fails); it never completed against a dead server.
        assert "stopped" in out and "All deployments have been paused" not in out, out[-4000:]


def test_built_in_mail_servers_file_mail_and_feed_the_intake_mailbox(tmp_path, monkeypatch):
    """`up`'s built-in SMTP server files every message; mail to the intake address lands in its IMAP mailbox."""
    import imaplib
    import smtplib
    from email.message import EmailMessage

    from rich.console import Console

    from baocao.rules.config import load_config
    from flows.up import mail_servers

    smtp_port, imap_port = free_port(), free_port()
    env = {"BAOCAO_SMTP__PORT": str(smtp_port), "BAOCAO_IMAP__PORT": str(imap_port),
           "BAOCAO_MAIL_DIR": str(tmp_path / "mail"), "BAOCAO_VAR_DIR": str(tmp_path)}
    cfg = load_config(env=env)
    console = Console(record=True, width=200)
    with mail_servers(cfg, console) as extra:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "xa@donvi.example", cfg.settings.reply_to, "Báo cáo"
        msg.set_content("kèm theo")
        with smtplib.SMTP("127.0.0.1", smtp_port) as s:
            s.send_message(msg)
            s.send_message(msg, to_addrs=["someone@donvi.example"])
        with imaplib.IMAP4("127.0.0.1", imap_port) as conn:
            conn.login(cfg.settings.imap.username, extra["BAOCAO_IMAP__PASSWORD"])
            conn.select("INBOX")
            _, data = conn.search(None, "ALL")
            assert len(data[0].split()) == 1  # only the intake copy
    assert (tmp_path / "mail" / "index.csv").read_text().count("\n") == 3  # header + 2 copies
    assert f"built-in server on 127.0.0.1:{smtp_port}" in console.export_text()


# ----------------------------------------------------------------------------- a broken scheduler is reported
def test_serve_says_so_when_the_server_does_not_schedule(tmp_path):
    """A server whose scheduler does not run accepts the deployments and then does nothing: serve says it."""
    env = base_env(tmp_path)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env.update({"BAOCAO_SCHEDULING_CHECK_SECONDS": "8", "PREFECT_HOME": str(tmp_path / "prefect"),
                "BAOCAO_SMTP__PORT": str(free_port()), "BAOCAO_IMAP__PORT": str(free_port())})
    server_env = env | {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    with processes(tmp_path, env) as procs:
        server = procs.start("server", "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
                             env=server_env)
        wait_for("the server", lambda: httpx_alive(api) or server.poll() is not None, 180)
        env["PREFECT_API_URL"] = api
        assert procs.run("-m", "flows.cli", "init").returncode == 0
        serve = procs.start("serve", "-m", "flows.cli", "serve")
        wait_for("serve's verdict", lambda: "serving every deployment" in procs.log("serve") or serve.poll() is not None,
                 120, diagnose=lambda: procs.log("serve")[-3000:])
        out = procs.log("serve")
        assert "created no scheduled run for" in out and "collect" in out, out[-3000:]
        assert "the server is creating the scheduled runs" not in out


def test_serve_refuses_without_a_prefect_server(tmp_path):
    """Without PREFECT_API_URL Prefect would serve against a temporary server whose scheduler never runs."""
    env = base_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "serve needs a Prefect server" in done.stderr


# ----------------------------------------------------------------------------- PostgreSQL, work pool, two workers
@pytest.mark.postgres
def test_scheduled_runs_on_postgres_with_a_work_pool_and_two_workers(tmp_path, pg_url):
    """The scale-out set-up: a Prefect server on PostgreSQL, `baocao deploy` to a process pool, two workers."""
    env = base_env(tmp_path)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    prefect_db = new_pg_database(pg_url).replace("postgresql+psycopg://", "postgresql+asyncpg://")
    env.update({"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
                "BAOCAO_DATABASE_URL": new_pg_database(pg_url)})
    with SmtpServer() as smtp, ImapServer(username="nopbaocao", password="imap-test-secret") as imap, \
            processes(tmp_path, env) as procs:
        env.update({"BAOCAO_SMTP__PORT": str(smtp.port), "BAOCAO_IMAP__PORT": str(imap.port),
                    "BAOCAO_IMAP__PASSWORD": "imap-test-secret"})
        server = procs.start("server", "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port))
        wait_for("the server", lambda: httpx_alive(api) or server.poll() is not None, 180,
                 diagnose=lambda: procs.log("server")[-3000:])
        env["PREFECT_API_URL"] = api
        for args in (("-m", "flows.cli", "init"), ("-m", "prefect", "work-pool", "create", "baocao", "--type", "process"),
                     ("-m", "flows.cli", "deploy", "--pool", "baocao")):
            done = procs.run(*args, timeout=300)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        workers = [procs.start(f"worker{i}", "-m", "prefect", "worker", "start", "--pool", "baocao", "--name", f"w{i}")
                   for i in (1, 2)]

        def diagnose() -> str:
            return "\n".join(procs.log(n)[-2000:] for n in ("server", "worker1", "worker2"))

        runs = wait_for("four scheduled collect runs to complete", lambda: len(completed_scheduled(api, "collect")) >= 4,
                        180, diagnose=diagnose)
        assert runs
        prefect_cli_lists(procs)
        cancel_a_running_open(procs, api, "open-period/open-national-h1",
                              {"period": "2026-H1", "as_of": "2026-05-20T08:00:00+07:00", "root": "T31"}, smtp,
                              diagnose)
        assert all(w.poll() is None for w in workers), diagnose()
        worker_logs = procs.log("worker1") + procs.log("worker2")
        assert "Cancellation polling task failed" not in worker_logs
    assert not error_lines(procs.log("server")), error_lines(procs.log("server"))[:5]


def test_schedule_shows_future_dates_only():
    """On 04/12/2026 the old yearly crons named 2026's openings: the server scheduled them a year late."""
    from baocao.rules.config import load_config
    from baocao.rules.periods import Period
    from baocao.rules.plans import open_at
    from flows.deployments import computed_next_runs

    cfg = load_config(env={})
    now = pendulum.datetime(2026, 12, 4, 9, 0, tz=TZ)
    runs = {r.deployment: r for r in computed_next_runs(cfg, now)}
    for name, r in runs.items():
        if name == "retry-unit":
            assert r.at is None
            continue
        assert r.at is not None and now < r.at <= now + timedelta(days=400), (name, r)
    # Each opening is the plan's own opening of that period, computed on that year's calendar.
    q1 = runs["open-national-q1"]
    assert q1.parameters == {"plan": "national", "period": "2027-Q1"}
    assert q1.at == open_at(cfg.plan("national"), Period(2027, "Q1"), cfg.hierarchy, cfg.calendar)
    assert runs["collect"].at - now <= timedelta(minutes=cfg.settings.collect_every_minutes)


@pytest.mark.parametrize("command", ["up", "serve"])
def test_up_and_serve_refuse_the_public_secret_with_a_remote_mail_host(tmp_path, command):
    """Issue 17.3 at start: with mail leaving the machine, the demo token secret is refused before anything starts."""
    env = base_env(tmp_path) | {"BAOCAO_SMTP__HOST": "smtp.bonoivu.example", "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    env.pop("BAOCAO_TOKEN_SECRET")  # the default of settings.toml, published with the code
    done = subprocess.run([sys.executable, "-m", "flows.cli", command], env=env, cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "token_secret" in done.stderr and "demo-secret-change-me" not in done.stdout + done.stderr
    assert not (tmp_path / "baocao.db").exists()  # refused before the database was touched
