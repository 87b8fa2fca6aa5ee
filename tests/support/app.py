"""The application wired to real servers, and PostgreSQL databases, for the fixtures in tests/conftest.py.

Tests that build their own environment (subprocesses, several apps) import these directly.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from baocao.rules.config import Config
from baocao.store.db import Database

PG_ADMIN_URL = os.environ.get("BAOCAO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def new_pg_database(pg_url: str) -> str:
    """Another empty database on the same server (for tests that need a clean schema)."""
    import psycopg

    name = f"{pg_url.rsplit('/', 1)[1]}_{uuid.uuid4().hex[:6]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url.rsplit("/", 1)[0] + "/" + name


class App:
    """The application wired to real servers on loopback, for flow and integration tests."""

    def __init__(self, cfg: Config, db: Database, smtp, imap, tmp_path: Path) -> None:  # noqa: ANN001
        self.cfg, self.db, self.smtp, self.imap, self.tmp_path = cfg, db, smtp, imap, tmp_path

    def config(self) -> Config:
        from baocao import runtime

        return runtime.config()


def app_env(url: str, smtp_port: int, imap_port: int | None, tmp_path: Path) -> dict[str, str]:
    env = {
        "BAOCAO_DATABASE_URL": url,
        "BAOCAO_SMTP__PORT": str(smtp_port),
        "BAOCAO_SMTP__BACKOFF_BASE": "0.01",
        "BAOCAO_SMTP__MAX_ATTEMPTS": "3",
        "BAOCAO_SMTP__TIMEOUT": "10",
        "BAOCAO_DROP_FOLDER": str(tmp_path / "dropbox"),
        "BAOCAO_DROP_SETTLE_SECONDS": "0",  # tests drop a file and collect at once
        "BAOCAO_VAR_DIR": str(tmp_path),
        "BAOCAO_TOKEN_SECRET": "test-token-secret-0123456789",
    }
    if imap_port is not None:
        env |= {"BAOCAO_IMAP__PORT": str(imap_port), "BAOCAO_IMAP__USERNAME": "nopbaocao",
                "BAOCAO_IMAP__PASSWORD": "imap-test-secret", "BAOCAO_IMAP__TIMEOUT": "10"}
    return env


@contextlib.contextmanager
def started_app(url: str, smtp: Any, imap: Any, tmp_path: Path, monkeypatch: Any,
                extra_env: Mapping[str, str] | None = None) -> Iterator[App]:
    """The application on database `url` and these servers: configured through the environment (as
    production is), the schema migrated and the hierarchy copied in; the process's runtime reset after."""
    from baocao import runtime
    from baocao.store.migrate import upgrade
    from baocao.store.queries import sync_units

    env = app_env(url, smtp.port, imap.port if imap is not None else None, tmp_path) | dict(extra_env or {})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    cfg = runtime.config()
    upgrade(url)
    db = runtime.database(cfg)
    sync_units(db, cfg.hierarchy)
    try:
        yield App(cfg, db, smtp, imap, tmp_path)
    finally:
        runtime.reset()
