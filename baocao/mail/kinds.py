"""The kinds of message the outbox holds, and which step sends each.

A kind is written where a message is enqueued and read where the step's send call selects what
to deliver. Both name the same `Kind`, and every kind belongs to exactly one step, so a kind that is
enqueued is also sent. (The strings were repeated at eight call sites before, and the crash harness
and the benchmark each kept their own copies of the lists.)
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """An outbox message's `kind` column; the values are what is stored."""

    REQUEST = "request"  # the request and form of a unit, at opening
    RECEIPT = "receipt"  # a file was accepted
    PROBLEMS = "problems"  # a file (or a message without one) could not be accepted
    RETURNED = "returned"  # an operator returned an accepted report to its unit
    REMINDER = "reminder"  # before the deadline
    OVERDUE = "overdue"  # after the deadline, to the unit
    ESCALATION = "escalation"  # after the deadline, to the parent, listing the overdue children
    REPORT = "report"  # a consolidated report, sent up the chain
    DRAFT = "draft"  # a draft report (Dự thảo) to its own unit, to check, number, sign and send back


REPLIES: tuple[Kind, ...] = (Kind.RECEIPT, Kind.PROBLEMS)
"""The answers to a file a unit sent (sent by the collect step, by `baocao submit` and by a retry)."""

OPERATOR: tuple[Kind, ...] = (Kind.RETURNED,)
"""What an operator's action writes (`baocao return`); the collect step sends it with the replies."""

NOTICES: tuple[Kind, ...] = (Kind.REMINDER, Kind.OVERDUE, Kind.ESCALATION)
"""What chasing late units writes."""

STEP_KINDS: dict[str, tuple[Kind, ...]] = {
    "open": (Kind.REQUEST,),
    "collect": REPLIES + OPERATOR,
    "chase": NOTICES,
    "consolidate": (Kind.REPORT, Kind.DRAFT),
}
"""The kinds each step sends; every kind is in exactly one step (tests/test_layout.py checks it)."""
