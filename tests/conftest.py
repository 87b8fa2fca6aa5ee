"""Shared fixtures: the configuration, databases (SQLite and the machine's PostgreSQL), Prefect.

Real parts only: SQLite files in a temporary directory, a fresh PostgreSQL database per test
session on 127.0.0.1:5432 (trust auth), and `prefect_test_harness` for flows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Keep Prefect's state for the test run out of the user's home and quiet.
os.environ.setdefault("PREFECT_HOME", str(Path(__file__).resolve().parent.parent / "var" / "test-prefect"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # before prefect is imported: no warning
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from baocao.rules.config import Config, load_config  # noqa: E402
from baocao.store.db import Database  # noqa: E402
from baocao.store.migrate import upgrade  # noqa: E402
from tests.support.app import PG_ADMIN_URL, App, new_pg_database  # noqa: E402

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(scope="session")
def cfg() -> Config:
    return load_config(env={})


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is not reachable (required in CI)")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    import psycopg

    name = f"baocao_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'baocao.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'baocao.db'}"
    return new_pg_database(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(sqlite_url: str, cfg: Config) -> Iterator[Database]:
    """A migrated SQLite database with the hierarchy loaded."""
    from baocao.store.queries import sync_units

    upgrade(sqlite_url)
    database = Database(sqlite_url)
    sync_units(database, cfg.hierarchy)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real (temporary) Prefect API for flow tests, shared by the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def smtp_limit() -> Iterator[str]:
    """A concurrency limit of 1 on the `smtp` tag, as `prefect concurrency-limit create smtp 1` makes."""
    from prefect.client.orchestration import get_client

    from flows.limits import SMTP_TAG

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=SMTP_TAG, concurrency_limit=1)
    try:
        yield f"tag:{SMTP_TAG}"
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(SMTP_TAG)


# ----------------------------------------------------------------------------- the whole application
@pytest.fixture
def smtp_server():
    from tests.support.servers import SmtpServer

    with SmtpServer() as server:
        yield server


@pytest.fixture
def imap_server():
    from tests.support.servers import ImapServer

    with ImapServer(username="nopbaocao", password="imap-test-secret") as server:
        yield server


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, smtp_server, imap_server) -> Iterator[App]:  # noqa: ANN001
    """SQLite + a real SMTP server + a real IMAP server, configured through the environment."""
    from tests.support.app import started_app

    with started_app(f"sqlite:///{tmp_path / 'app.db'}", smtp_server, imap_server, tmp_path, monkeypatch) as app:
        yield app
