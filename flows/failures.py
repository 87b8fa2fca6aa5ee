"""How a run that failed for some units ends: a short state message, the detail kept elsewhere.

A unit the mail server refuses (550) is an expected business failure, not a bug. Raising it from a
flow put every unit's SMTP error in the state message, again in the "Encountered exception" log
line, and a traceback under it, for each run. Instead the flow returns a Failed state whose message
counts the units, names the first few and points to the run's failures artifact; each unit's detail
is logged once by the task that met it and kept in that artifact. The state carries the exception,
so calling the flow directly still raises it (with every unit) and Retry works as before.
Unexpected exceptions are not handled here: they still fail the run with their traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.states import Failed, State

from baocao.errors import UnitsFailed
from baocao.rules.hierarchy import Hierarchy

__all__ = ["UnitsFailed", "failed_state", "failure_message"]  # UnitsFailed: old pickles name flows.failures

MESSAGE_LIMIT = 300
"""Characters of a failed run's state message: the UI shows it in the run list and the header."""

NAMED = 3
"""Units named in the message at most; the rest are counted."""


def failure_message(failed: Mapping[str, str], hierarchy: Hierarchy, what: str, artifact: str,
                    limit: int = MESSAGE_LIMIT) -> str:
    """`3 đơn vị chưa nhận được yêu cầu: A, B, C và 2 đơn vị khác. Chi tiết: artifact «key».`

    Units are named by name and code (the name to recognise, the code for the retry-unit form), higher levels first, as
    many as fit in `limit` characters and at most `NAMED`; the artifact key is always kept whole.
    """
    codes = sorted(failed, key=lambda c: (hierarchy.depth(c) if c in hierarchy else 99, c))
    names = [f"{hierarchy[c].name} ({c})" if c in hierarchy else c for c in codes]  # the code: for retry-unit
    tail = f". Chi tiết: artifact «{artifact}»."
    head = f"{len(codes)} đơn vị {what}"
    for shown in range(min(NAMED, len(names)), 0, -1):
        rest = len(names) - shown
        message = head + ": " + ", ".join(names[:shown]) + (f" và {rest} đơn vị khác" if rest else "") + tail
        if len(message) <= limit:
            return message
    return (head + tail)[:limit]


def failed_state(failed: Mapping[str, str], hierarchy: Hierarchy, what: str, artifact: str,
                 where: str) -> State[Any]:
    """The Failed state a flow returns when units failed: short message, the exception as data."""
    return Failed(message=failure_message(failed, hierarchy, what, artifact), data=UnitsFailed(failed, where))
