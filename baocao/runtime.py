"""Process-wide handles for flows and tasks: the configuration and the database.

A task may run in a worker thread or, after a retry, in a new process; it asks here instead of
receiving unpicklable objects as parameters. Parameters stay plain (codes, periods, ids), which
is also what the Prefect UI shows and lets an operator change.
"""

from __future__ import annotations

import threading

from baocao.rules.config import Config, load_config, refuse_public_credentials
from baocao.store.db import Database

_lock = threading.Lock()
_databases: dict[str, Database] = {}


def config() -> Config:
    """The configuration every flow and task reads; refused when it would mail out with a public secret.

    Every flow passes through here before it reads, sends or stores anything, so this is the one
    place that keeps all of them from starting with the demo token secret on a real mail server.
    """
    cfg = load_config()
    refuse_public_credentials(cfg.settings, cfg.directory / "settings.toml")
    return cfg


def database(cfg: Config | None = None) -> Database:
    url = (cfg or config()).settings.database_url_resolved
    with _lock:
        if url not in _databases:
            _databases[url] = Database(url)
        return _databases[url]


def reset() -> None:
    """Forget cached handles (tests switch databases between runs)."""
    with _lock:
        for db in _databases.values():
            db.dispose()
        _databases.clear()
