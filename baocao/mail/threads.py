"""Thread headers of a reply: In-Reply-To and References taken from the unit's own mail.

A mail client shows our receipt (or list of problems, or a return for correction) under what the
unit sent only when the reply names the unit's Message-ID (RFC 5322 §3.6.4). Those ids come from
the unit's mail, i.e. from anyone: only what is a well-formed ``msg-id`` (``<left@right>``, dot-atoms
or a domain literal, no spaces, quotes or comments) is ever copied into a header of ours; anything
else (a forged or broken header) is dropped, never repaired or passed on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# RFC 5322 atext, dot-atom-text and dtext (without the obsolete forms).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
MSG_ID = re.compile(rf"<{_DOT_ATOM}@(?:{_DOT_ATOM}|{_LITERAL})>")
MAX_ID_LENGTH = 250  # a real id is under 100 characters; a longer one is noise
MAX_REFERENCES = 20  # enough for any client to thread; a longer chain is trimmed from the start
_CANDIDATE = re.compile(r"<[^<>]*>")


def valid_id(value: str | None) -> str | None:
    """``value`` when it is one well-formed msg-id (surrounding spaces allowed), else None."""
    if not value:
        return None
    value = value.strip()
    return value if len(value) <= MAX_ID_LENGTH and MSG_ID.fullmatch(value) else None


def parse_references(value: str | None) -> tuple[str, ...]:
    """The well-formed msg-ids of a References (or In-Reply-To) header, in order, duplicates once.

    Each ``<...>`` token is judged on its own: a broken one among good ones is left out, the
    others kept (real clients append; one bad id should not cut the unit off its thread).
    """
    if not value:
        return ()
    found = (valid_id(token) for token in _CANDIDATE.findall(value))
    return tuple(dict.fromkeys(i for i in found if i))[-MAX_REFERENCES:]


def reply_headers(message_id: str | None, references: Sequence[str] = ()) -> dict[str, Any]:
    """The outbox ``headers`` of a reply to a mail with this Message-ID and References.

    In-Reply-To is the mail's Message-ID; References is the mail's References followed by it (RFC
    5322 §3.6.4). Whatever is not a well-formed id is dropped; no valid id at all: no headers.
    """
    own = valid_id(message_id)
    chain = [i for i in (valid_id(r) for r in references) if i and i != own]
    if own:
        chain.append(own)
    headers: dict[str, Any] = {}
    if own:
        headers["In-Reply-To"] = own
    if chain:
        headers["References"] = list(dict.fromkeys(chain))[-MAX_REFERENCES:]
    return headers


def shared_headers(candidates: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The thread headers of merged replies: those of the first reply that has any.

    Every reply merged into one message answers the same incoming mail, so they carry the same
    thread; only Reply-To and the like are a message's own and are not taken over.
    """
    for headers in candidates:
        if headers and (headers.get("In-Reply-To") or headers.get("References")):
            return {k: headers[k] for k in ("In-Reply-To", "References") if headers.get(k)}
    return {}
