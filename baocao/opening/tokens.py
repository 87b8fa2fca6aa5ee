"""Submission tokens: a short code printed on each unit's form that ties the file to a unit and period.

A token is ``v{form_version}-`` followed by 26 lowercase base32 characters: the first 128 bits of
HMAC-SHA256(secret, form_version, unit, period). It proves that a returned form was issued by us for
that unit and that period (a unit cannot forge another's form without the secret), and the prefix
says which form layout was sent, so a file filled in an old template is recognised before reading.

Base32 (not base64) because people sometimes copy the token by hand or read it over the phone: it has
no ``+``, ``/``, ``-`` or case to get wrong, and verification ignores case and surrounding spaces.
The secret is never logged or put in an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["find_report_token", "make_report_token", "make_token", "token_version", "verify_report_token", "verify_token"]

_TOKEN_RE = re.compile(r"^v(?P<version>[0-9]{1,6})-(?P<mac>[a-z2-7]{26})$")
_MAC_BYTES = 16  # 128 bits: 26 base32 characters without padding


def _secret_bytes(secret: str) -> bytes:
    # Accept a pydantic SecretStr too, so callers never need to unwrap it into a variable that a
    # logger might print.
    get = getattr(secret, "get_secret_value", None)
    value = get() if callable(get) else secret
    if not isinstance(value, str) or not value:
        raise ValueError("token secret is empty or not a string")
    return value.encode("utf-8")


def _mac(secret: str, unit: str, period: str, form_version: int) -> str:
    # Fields are joined with a newline, which cannot occur in a unit or period code, so that
    # ("A1", "2026-H1") and ("A", "12026-H1") never sign the same message.
    message = f"baocao-form\n{int(form_version)}\n{unit.strip()}\n{period.strip()}".encode()
    digest = hmac.new(_secret_bytes(secret), message, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def make_token(secret: str, unit: str, period: str, form_version: int) -> str:
    """The token printed on the form of ``unit`` for ``period``, e.g. ``v1-k5x...`` (29+ characters)."""
    if isinstance(form_version, bool) or not isinstance(form_version, int) or form_version < 0:
        raise ValueError(f"form_version must be a non-negative integer, got {form_version!r}")
    return f"v{form_version}-{_mac(secret, unit, period, form_version)}"


def token_version(token: object) -> int | None:
    """The form version a token claims (None if it is not shaped like a token): lets the collector say
    "you filled an old form" instead of "your token is wrong"."""
    if not isinstance(token, str):
        return None
    match = _TOKEN_RE.match(token.strip().lower())
    return int(match["version"]) if match else None


def verify_token(secret: str, token: object, unit: str, period: str, form_version: int) -> bool:
    """True if ``token`` is the one issued for this unit, period and form version.

    The comparison is constant-time over the whole token; anything that is not a string or not
    shaped like a token is simply False (never an exception: the token comes from a user's file).
    """
    if not isinstance(token, str) or not isinstance(unit, str) or not isinstance(period, str):
        return False
    expected = make_token(secret, unit, period, form_version).encode("ascii")
    given = token.strip().lower().encode("utf-8", errors="replace")
    return hmac.compare_digest(expected, given)


# ----------------------------------------------------------------------------- issued reports
# A draft report's mail carries a token of its own ("bc-<report id>-<mac>"), signed for another purpose
# ("baocao-report"), so that a form's token can never issue a report nor a report's token file a form.
REPORT_TOKEN_RE = re.compile(r"\bbc-(?P<report>[0-9]{1,12})-(?P<mac>[a-z2-7]{26})\b", re.IGNORECASE)


def make_report_token(secret: str, report_id: int, unit: str, period: str) -> str:
    """The token of one draft report (the report row, its unit and period), e.g. ``bc-12-k5x...``."""
    message = f"baocao-report\n{int(report_id)}\n{unit.strip()}\n{period.strip()}".encode()
    digest = hmac.new(_secret_bytes(secret), message, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"bc-{int(report_id)}-" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def find_report_token(text: str) -> tuple[int, str] | None:
    """(report id, token) of the first report token in `text` (a reply's subject or body), else None."""
    match = REPORT_TOKEN_RE.search(text or "")
    return (int(match["report"]), match.group(0).lower()) if match else None


def verify_report_token(secret: str, token: object, report_id: int, unit: str, period: str) -> bool:
    """True if `token` is the one made for this draft report (constant-time, never raises)."""
    if not isinstance(token, str):
        return False
    expected = make_report_token(secret, report_id, unit, period).encode("ascii")
    return hmac.compare_digest(expected, token.strip().lower().encode("utf-8", errors="replace"))
