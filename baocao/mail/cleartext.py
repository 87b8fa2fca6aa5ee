"""Credentials in clear: the decision before an IMAP or SMTP login on a connection without TLS.

Both clients upgrade with STARTTLS whenever the server offers it (:mod:`baocao.intake.inbox`,
:mod:`baocao.mail.smtp`). When the connection is still plain text, a password sent to another
machine can be read on the way; on loopback (the demo, the tests) it never leaves this one. The
setting ``plaintext_credentials`` says what happens with a non-loopback host: ``"warn"`` (the
default: logged, then sent) or ``"refuse"`` (no login; the run fails with a message saying why).

The decision is a plain function of its inputs; the test of "another host" injects the
classification (`local`), since no test can reach another machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from baocao.errors import CleartextRefused
from baocao.rules.config import is_loopback

log = logging.getLogger("baocao.mail")
POLICIES = ("warn", "refuse")
Verdict = Literal["ok", "warn", "refuse"]


def verdict(host: str, *, encrypted: bool, credentials: bool, policy: str,
            local: Callable[[str], bool] = is_loopback) -> Verdict:
    """What to do before logging in to `host`: ok, warn (then log in) or refuse."""
    if encrypted or not credentials or local(host):
        return "ok"
    return "refuse" if policy == "refuse" else "warn"


def check(service: str, host: str, port: int, *, encrypted: bool, credentials: bool, policy: str,
          local: Callable[[str], bool] = is_loopback) -> Verdict:
    """Apply :func:`verdict`: log the warning, or raise :class:`CleartextRefused`."""
    decided = verdict(host, encrypted=encrypted, credentials=credentials, policy=policy, local=local)
    what = (f"{service} server {host}:{port} offers no TLS (no SSL, no STARTTLS): the login would send the "
            "password in clear over the network")
    if decided == "refuse":
        raise CleartextRefused(f"{what}; refused (plaintext_credentials = \"refuse\"). Use the server's SSL port "
                               "or enable STARTTLS on it, or set plaintext_credentials = \"warn\".")
    if decided == "warn":
        log.warning("%s; sending it anyway (plaintext_credentials = \"warn\"; \"refuse\" stops this)", what)
    return decided
