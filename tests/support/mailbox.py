"""One real IMAP server and one SQLite database for mailbox tests that run many messages through `collect_mailbox`.

Shared by test_mail_hardening and test_reply_floods.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import func, select

from baocao.rules.config import Config, ImapConfig
from baocao.store.db import Database, ProcessedMessage, ReceivedFile
from baocao.store.migrate import upgrade
from baocao.store.queries import sync_units
from tests.support.servers import ImapServer


class Mailbox:
    """One IMAP server and one database for every example (Hypothesis runs many in one test)."""

    def __init__(self, cfg: Config, tmp: Path) -> None:
        self.imap = ImapServer().__enter__()
        url = f"sqlite:///{tmp / 'fuzz.db'}"
        upgrade(url)
        self.db = Database(url)
        sync_units(self.db, cfg.hierarchy)
        imap = ImapConfig(host="127.0.0.1", port=self.imap.port, username=self.imap.username,
                          password=self.imap.password, timeout=10)
        self.cfg = dataclasses.replace(cfg, settings=cfg.settings.model_copy(update={"imap": imap}))
        self.n = 0

    def close(self) -> None:
        self.db.dispose()
        self.imap.__exit__(None, None, None)

    def processed(self) -> dict[int, ProcessedMessage]:
        with self.db.session() as s:
            return {m.uid: m for m in s.scalars(select(ProcessedMessage))}

    def stored(self, content: bytes) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(ReceivedFile).where(ReceivedFile.content == content)) or 0
