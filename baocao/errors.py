"""Every error baocao raises on purpose, in one hierarchy under :class:`BaocaoError`.

A caller that wants "anything baocao refused" catches :class:`BaocaoError`; one that wants a
kind catches its class. Each class keeps the builtin base it had before the hierarchy existed, so
the ``except ValueError`` / ``except RuntimeError`` already written around them still catch them.
The modules that raised them re-export them under their old names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baocao.tasks.appendix import AppendixProblem

__all__ = [
    "AppendixImportError",
    "BaocaoError",
    "Changed",
    "CleartextRefused",
    "ConfigError",
    "DuePhraseError",
    "MailboxError",
    "MailboxLoginError",
    "OperationError",
    "PeriodError",
    "ScheduleError",
    "StaleState",
    "TaskBodiesError",
    "UnitsFailed",
    "UpError",
]


class BaocaoError(Exception):
    """Something baocao detected and refused (as opposed to a bug or a library's own failure)."""


class ConfigError(BaocaoError, ValueError):
    """A problem in a configuration file: which file, which key, what is wrong."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, problem
        super().__init__(f"{self.file}: {key}: {problem}" if key else f"{self.file}: {problem}")


class TaskBodiesError(ConfigError):
    """A problem in ``config/task_bodies.toml`` (part of the configuration): which file, which key, what is wrong."""


class PeriodError(BaocaoError, ValueError):
    """A period code or period setting that cannot be used.

    ``str(error)`` is English for logs; ``message_vi`` is what a user is shown.
    """

    def __init__(self, message: str, message_vi: str) -> None:
        super().__init__(message)
        self.message_vi = message_vi


class DuePhraseError(BaocaoError, ValueError):
    """A deadline phrase that cannot be read; ``message_vi`` says what is wrong, in Vietnamese."""

    def __init__(self, phrase: str, reason: str, reason_vi: str) -> None:
        super().__init__(f"Cannot read deadline phrase {phrase!r}: {reason}")
        self.phrase = phrase
        self.message_vi = f"Không đọc được thời hạn «{phrase}»: {reason_vi}"


class ScheduleError(BaocaoError, ValueError):
    """A plan's schedule that cannot produce the units' deadlines."""


class AppendixImportError(BaocaoError, ValueError):
    """The appendix cannot be imported; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[AppendixProblem], *, source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        lines = [f"{head}Phụ lục có {len(self.problems)} lỗi, chưa nhập nhiệm vụ nào:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class OperationError(BaocaoError, ValueError):
    """An operator's action that does not apply (unknown unit, no such request, nothing to return)."""


class IssueError(BaocaoError, ValueError):
    """An issued report that cannot be recorded (not a PDF, no number, a wrong or expired token); the
    message is Vietnamese, for the unit, naming the file and the field."""


class StaleState(BaocaoError, RuntimeError):
    """Another worker changed the request first; re-read and decide again."""


class UnitsFailed(BaocaoError, RuntimeError):
    """Some units failed; the others were done. Names every failed unit with its reason.

    A persisted task result can hold one, pickled before this module existed under the name
    ``flows.failures.UnitsFailed``; flows/failures.py re-exports this class under that name so such
    results still load.
    """

    def __init__(self, failed: Mapping[str, str], where: str) -> None:
        self.failed = dict(failed)
        self.where = where
        super().__init__(f"{len(self.failed)} unit(s) failed in {where}: "
                         + "; ".join(f"{u}: {r}" for u, r in sorted(self.failed.items())))

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from its parts when a persisted result is read back (the default pickling
        calls ``__init__`` with the message alone)."""
        return type(self), (self.failed, self.where)


class MailboxError(BaocaoError):
    """The intake mailbox cannot be read (connection, protocol, missing folder). Never holds the password."""


class MailboxLoginError(MailboxError):
    """The IMAP server refused the configured credentials."""


class CleartextRefused(BaocaoError):
    """A login would send credentials in clear to another host and the setting says refuse."""


class Changed(BaocaoError):
    """The file changed (or was replaced) between the listing and the read: leave it for the next run."""


class UpError(BaocaoError, RuntimeError):
    """`baocao up` cannot start: the message says what to change."""
