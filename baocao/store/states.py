"""The states of a request, and the groupings the steps ask about, written once.

A request moves pending -> sent (its form went out) -> accepted or late (a report was accepted,
on time or not) / rejected (the file had errors) / returned (an operator sent it back) /
exempt (not expected this period). Every "is this unit done?" question used to spell its own
tuple of state names; a misspelt one silently matched nothing. Here the names are an enum, so a
typo fails at import, and :func:`baocao.store.queries.set_state` refuses a string that is not one.

The aggregation speaks a second vocabulary, :class:`Standing`: there "late" means *overdue with
nothing accepted*, not "accepted after the deadline". :func:`standing` translates, in one place.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

__all__ = ["ANSWERED", "AWAITING", "DONE", "TO_REDO", "RequestState", "Standing", "standing"]


class RequestState(StrEnum):
    """A request's state as stored in ``requests.state`` (the values are the stored strings)."""

    PENDING = "pending"
    SENT = "sent"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    LATE = "late"
    REJECTED = "rejected"
    RETURNED = "returned"
    EXEMPT = "exempt"

    @property
    def label_vi(self) -> str:
        """How the operators' dashboards name the state."""
        return _LABELS_VI[self]


_LABELS_VI = {
    RequestState.PENDING: "chưa gửi yêu cầu",
    RequestState.SENT: "chưa nộp",
    RequestState.RECEIVED: "đã nhận",
    RequestState.ACCEPTED: "đã nộp",
    RequestState.LATE: "nộp muộn",
    RequestState.REJECTED: "tệp có lỗi",
    RequestState.RETURNED: "bị trả lại",
    RequestState.EXEMPT: "miễn nộp",
}

ANSWERED = frozenset({RequestState.ACCEPTED, RequestState.LATE})
"""An accepted report stands (on time or late): it counts, it can be returned, it feeds the figures."""
DONE = ANSWERED | {RequestState.EXEMPT}
"""Nothing more is expected of the unit: it is not chased, and a rejected file does not change it."""
AWAITING = frozenset({RequestState.PENDING, RequestState.SENT})
"""The unit has sent nothing yet."""
TO_REDO = frozenset({RequestState.REJECTED, RequestState.RETURNED})
"""The unit must send again; the reason is told in its reminders."""


class Standing(StrEnum):
    """A request as the aggregation counts it (see :func:`standing`)."""

    ACCEPTED = "accepted"
    OVERDUE = "late"
    EXEMPT = "exempt"


def standing(state: str, deadline: date, today: date | None) -> str:
    """The request's state in the aggregation's vocabulary.

    Accepted on time or late are both ``accepted`` there (timeliness travels in ``on_time``); a
    unit that has sent nothing by a past deadline is ``late`` (overdue); anything else is kept.
    """
    state = RequestState(state)
    if state in ANSWERED:
        return Standing.ACCEPTED.value
    if state in AWAITING and today is not None and today > deadline:
        return Standing.OVERDUE.value
    return state.value
