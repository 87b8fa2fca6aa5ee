"""Process-wide handles for flows and tasks: the configuration and the database.

A task may run in a worker thread or, after a retry, in a new process; it asks here instead of
receiving unpicklable objects as parameters. Parameters stay plain (codes, periods, ids), which
is also what the Prefect UI shows and lets an operator change.
"""

from __future__ import annotations

import threading

from flows.config import Config, load_config
from flows.db import Database

_lock = threading.Lock()
_databases: dict[str, Database] = {}


def config() -> Config:
    return load_config()


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
