"""`baocao up`: run baocao for real on the embedded defaults, in one command.

It does what an operator would otherwise do by hand, in order, and undoes it on the way out:

1. create or upgrade the database and load the hierarchy (`baocao init`);
2. start a Prefect server (SQLite under `var/prefect/`, its log in `var/prefect/server.log`) unless
   `PREFECT_API_URL` names one, or one already answers on `prefect_port`;
3. start the built-in SMTP server (every message filed under `mail_dir`) and the built-in IMAP
   mailbox on the ports of `config/settings.toml`, unless the configured host is not this machine
   or a server already listens there (then that one is used); mail sent to the intake address
   (`reply_to`) through the built-in SMTP server lands in the built-in mailbox;
4. serve every deployment with its schedules, print the UI's address, the mail folder and what is
   scheduled next, and check that the server actually creates the scheduled runs.

Ctrl-C or SIGTERM stops the runner, the mail servers and the Prefect server it started within a few
seconds, also when the Prefect server went away first (`deployments.BoundedRunner`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from baocao.errors import UpError
from baocao.rules.config import Config

SERVER_START_TIMEOUT = 180.0
"""Seconds to wait for a new Prefect server to answer /health (its first start migrates its database)."""


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (a loopback address or the name `localhost`)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def prefect_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class PrefectServer:
    """The Prefect API `up` uses: one it started (with its process and log) or one that was running."""

    api_url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def ui_url(self) -> str:
        return self.api_url.rstrip("/").removesuffix("/api")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server this command started (its whole process group), never one it found running."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass


def start_prefect_server(cfg: Config, console: Console) -> PrefectServer:
    """A Prefect server to talk to: `PREFECT_API_URL`'s, one already on `prefect_port`, or a new one."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not prefect_healthy(configured):
            raise UpError(f"PREFECT_API_URL={configured} does not answer (GET /health). Start that server, or unset "
                          "PREFECT_API_URL to let `baocao up` start a local one.")
        console.print(f"Prefect server: {configured} (PREFECT_API_URL)")
        return PrefectServer(configured)
    port = cfg.settings.prefect_port
    api_url = f"http://127.0.0.1:{port}/api"
    if prefect_healthy(api_url):
        console.print(f"Prefect server: already running at {api_url}")
        return PrefectServer(api_url)
    if listening("127.0.0.1", port):
        raise UpError(f"port {port} is taken by something that is not a Prefect server; set prefect_port "
                      "(BAOCAO_PREFECT_PORT) or PREFECT_API_URL")
    home = cfg.settings.resolve(cfg.settings.var_dir) / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_API_URL": api_url}
    env.pop("PREFECT_API_URL", None)
    with log_path.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = PrefectServer(api_url, proc, log_path)
    with console.status(f"starting a Prefect server on 127.0.0.1:{port} (SQLite in {home})"):
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not prefect_healthy(api_url):
            if proc.poll() is not None:
                raise UpError(f"the Prefect server exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                server.stop()
                raise UpError(f"the Prefect server did not answer within {SERVER_START_TIMEOUT:.0f} s; see {log_path}")
            time.sleep(0.5)
    console.print(f"Prefect server: started at {api_url} (log: {log_path})")
    return server


@contextmanager
def mail_servers(cfg: Config, console: Console) -> Iterator[dict[str, str]]:
    """The built-in SMTP and IMAP servers where the settings point at this machine and nothing listens yet.

    Yields the environment overrides the flows need (the built-in mailbox's password, generated when
    none is configured).
    """
    from baocao.devservers.imapserver import DemoImapServer
    from baocao.devservers.mailserver import DemoMailServer

    s = cfg.settings
    env: dict[str, str] = {}
    with ExitStack() as stack:
        imap = None
        if not is_loopback(s.imap.host):
            console.print(f"IMAP: {s.imap.host}:{s.imap.port} (configured)")
        elif listening(s.imap.host, s.imap.port):
            console.print(f"IMAP: a server already listens on {s.imap.host}:{s.imap.port}; using it")
        else:
            password = s.imap.password.get_secret_value()
            if not password:
                password = secrets.token_urlsafe(12)
                env["BAOCAO_IMAP__PASSWORD"] = password
            imap = DemoImapServer(s.imap.username, password, host=s.imap.host, port=s.imap.port).start()
            stack.callback(imap.stop)
            console.print(f"IMAP: built-in mailbox {s.reply_to} on {s.imap.host}:{imap.port} (kept in memory)")
        if not is_loopback(s.smtp.host):
            console.print(f"SMTP: {s.smtp.host}:{s.smtp.port} (configured)")
        elif listening(s.smtp.host, s.smtp.port):
            console.print(f"SMTP: a server already listens on {s.smtp.host}:{s.smtp.port}; using it")
        else:
            intake = s.reply_to.lower()

            def deliver(stored: Any, raw: bytes) -> None:
                if imap is not None and stored.recipient == intake:
                    imap.append(raw)

            mail = DemoMailServer(s.resolve(s.mail_dir), host=s.smtp.host, port=s.smtp.port, on_message=deliver).start()
            stack.callback(mail.stop)
            console.print(f"SMTP: built-in server on {s.smtp.host}:{mail.port}; every message is filed under "
                          f"{mail.directory}/<recipient>/ (index: {mail.directory / 'index.csv'})")
        yield env


def init_database(cfg: Config, console: Console) -> None:
    from sqlalchemy.engine import make_url

    from baocao.store.db import Database
    from baocao.store.migrate import upgrade
    from baocao.store.queries import sync_units

    cfg.settings.resolve(cfg.settings.var_dir).mkdir(parents=True, exist_ok=True)
    url = cfg.settings.database_url_resolved
    upgrade(url)
    db = Database(url)
    try:
        n = sync_units(db, cfg.hierarchy)
    finally:
        db.dispose()
    shown = make_url(url).render_as_string(hide_password=True)
    console.print(f"database ready ({shown}); {n} units loaded")


def print_next_runs(cfg: Config, console: Console) -> None:
    """What is scheduled next, as the server holds it."""
    from rich.table import Table

    from flows.deployments import server_next_runs

    runs = asyncio.run(server_next_runs(cfg))
    table = Table(title=f"scheduled next ({cfg.calendar.settings.timezone})")
    for col in ("deployment", "next run", "parameters", "schedule"):
        table.add_column(col)
    for r in sorted(runs, key=lambda r: (r.at is None, r.at or 0)):
        when = f"{r.at:%d/%m/%Y %H:%M:%S}" if r.at else "-"
        if r.at and r.source != "server":
            when += " (not yet created by the server)"
        params = ", ".join(f"{k}={v}" for k, v in r.parameters.items())
        table.add_row(f"{r.flow}/{r.deployment}", when, params, r.when)
    console.print(table)


def report_scheduling(cfg: Config, spec_list: list[Any], console: Console) -> list[str]:
    """Check that the server schedules what it owes; print a clear error if it does not."""
    from flows.deployments import check_scheduling

    try:
        missing = asyncio.run(check_scheduling(cfg, spec_list))
    except Exception as exc:  # noqa: BLE001 - the server went away: say so, keep serving
        console.print(f"[red]error: could not ask the Prefect server for its scheduled runs: {exc}[/red]")
        return ["?"]
    if missing:
        console.print(
            f"[bold red]error: the Prefect server created no scheduled run for {', '.join(missing)} within "
            f"{cfg.settings.scheduling_check_seconds:g} s.[/bold red] Its scheduler is not running or fails: nothing will run on its own. "
            "Look for ERROR lines in the server's log (a known cause: SQLAlchemy 2.1 with Prefect 3.8.8; "
            "`pip install -e .` restores the pinned versions), and check that "
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED is not false. Runs started by hand still work.")
    else:
        console.print("[green]the server is creating the scheduled runs[/green]")
    return missing


def announce(cfg: Config, spec_list: list[Any], console: Console) -> list[str]:
    """Once the deployments are registered: check the scheduler, print what is next (serve and up)."""
    missing = report_scheduling(cfg, spec_list, console)
    try:
        print_next_runs(cfg, console)
    except Exception as exc:  # noqa: BLE001 - printed, serving goes on
        console.print(f"[red]could not read the scheduled runs: {exc}[/red]")
    console.print("serving every deployment; Ctrl-C or SIGTERM stops everything")
    return missing


def up(cfg: Config, console: Console) -> None:
    """Run everything until Ctrl-C or SIGTERM (see the module's docstring)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import serve

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    init_database(cfg, console)
    server = start_prefect_server(cfg, console)
    try:
        with mail_servers(cfg, console) as env:
            os.environ.update(env)
            os.environ["PREFECT_API_URL"] = server.api_url  # flow runs are subprocesses: they read the env
            from baocao import runtime

            runtime.reset()
            cfg = runtime.config()
            console.print(f"Prefect UI: {server.ui_url} (flow runs, logs and artifacts)")

            def started(spec_list: list[Any]) -> None:
                with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                    announce(cfg, spec_list, console)

            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                try:
                    serve(cfg, on_started=started)
                except KeyboardInterrupt:
                    pass
    finally:
        console.print("stopping…")
        server.stop()
        console.print("stopped")
