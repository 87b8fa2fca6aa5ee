"""One answer per incoming mail, and no more than a few an hour to one address.

The mailbox collector takes in each file of a mail on its own: a file's submission and its reply
are written in one transaction, so a crash loses neither. Those replies are written ``held``
(:attr:`baocao.intake.pipeline.Incoming.hold_replies`). When the whole mail is taken in, :func:`release`
runs in the transaction that records the mail as processed and turns them into what is sent:

- the replies are grouped by their recipients (the sender, or the unit's coordinators when the
  mail had no usable From);
- a group of one reply goes out as it is (the receipt or list of problems of that one file);
- a group of several (many files, a file of several units, a file and the mail's own refusal) is
  merged into one message that lists every file of the mail with its result and then gives each
  reply in full; the replies merged are kept, marked ``merged`` (``last_error`` names the key of
  the merged message);
- a message to an address that already had ``max_replies_per_address_per_hour`` replies in the
  last hour is stored ``throttled`` instead of ``pending``: kept and logged, never sent, so that a
  forged From cannot turn the service into a mail cannon.

A crash before the release leaves the replies held; the mail is not recorded processed, so the
next run takes it again (its files are duplicates by then and add nothing) and releases them.
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from baocao.mail import outbox, threads
from baocao.mail.kinds import REPLIES, Kind
from baocao.mail.letters import letter, system_letter
from baocao.rules.config import Config
from baocao.rules.formatting import number_vi
from baocao.safetext import clean_text
from baocao.store.db import Cycle, OutboxMessage, utcnow

log = logging.getLogger("baocao.replies")
REPLY_KINDS = REPLIES
TECHNICAL = "Mã kỹ thuật: "  # how baocao.mail.letters.technical_line starts the operator's line
NOT_SENT = ("held", "merged", "throttled")  # statuses of replies that do not count against the limit


@dataclass(frozen=True)
class Part:
    """One reply to be released: an outbox row held, or the mail's own reply (``row`` None)."""

    subject: str
    text: str
    kind: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    stage: str = ""
    unit: str | None = None
    period: str | None = None
    cycle_id: int | None = None
    row: OutboxMessage | None = None
    headers: dict[str, Any] | None = None  # In-Reply-To/References: the merged message keeps the thread


@dataclass
class Released:
    """What :func:`release` did for one mail: outbox keys by fate."""

    sent: list[str] = field(default_factory=list)  # pending now (one reply, or the merged one)
    merged: list[str] = field(default_factory=list)  # held replies folded into a merged message
    throttled: list[tuple[str, str]] = field(default_factory=list)  # (key, address over the limit)


def over_limit(addresses: Iterable[str], recent: Counter[str], limit: int) -> str | None:
    """The first address that already had `limit` replies in the window, if any (pure)."""
    for address in addresses:
        if recent[address.lower()] >= limit:
            return address
    return None


def _inner(text: str) -> tuple[str, str | None]:
    """A held reply's text without its greeting and signature (the merged message has its own), and
    its operator's line ("Mã kỹ thuật: …"), which the merged message gathers at its end."""
    lines = text.rstrip().splitlines()
    technical = None
    if lines and lines[-1].startswith(TECHNICAL):
        technical = lines.pop()[len(TECHNICAL):]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) >= 2 and lines[-1].startswith("Đầu mối liên hệ: "):
        del lines[-2:]
    if lines and lines[0].startswith("Kính gửi:"):
        del lines[0]
    return "\n".join(lines).strip("\n"), technical


def merge(files: Sequence[tuple[str, str]], parts: Sequence[Part],
          addressing: Mapping[str, Any] | None = None) -> tuple[str, str, str]:
    """One message (subject, text, html) from the replies to one mail's files (pure).

    `files`: (file name, stage) of every file of the mail, in order; a file with no reply among
    `parts` was taken in before (the same bytes) and is listed as such. Parts that answer no file
    (the mail's own refusal) come first: they say why some files were not read. `addressing`: the
    keywords of :func:`baocao.mail.letters.letter` (one unit) or ``system_letter`` (none known), so
    the merged message greets and is signed as a single reply would be; each part loses its own.
    """
    addressing = addressing or {}
    addressee = addressing.get("addressee") or "Quý đơn vị"
    sender = addressing.get("sender")
    technicals = [addressing["technical"][len(TECHNICAL):]] if addressing.get("technical") else []
    by_stage: dict[str, list[Part]] = {}
    for p in parts:
        by_stage.setdefault(p.stage, []).append(p)
    stages = {stage for _, stage in files}
    general = [p for p in parts if p.stage not in stages]
    lines: list[tuple[str, list[Part]]] = [("Về thư", [p]) for p in general]
    lines += [(f"Tệp “{clean_text(name)[:120]}”", by_stage.get(stage, [])) for name, stage in files]
    n = len(files)
    subject = (f"Kết quả xử lý {number_vi(n)} tệp đính kèm của thư" if n else "Kết quả tiếp nhận thư")
    summary = []
    for i, (what, ps) in enumerate(lines, 1):
        result = "; ".join(p.subject for p in ps) or "trùng với tệp đã nhận trước đây; không có thay đổi"
        summary.append((i, what, result))
    intro = (f"Hệ thống đã xử lý {number_vi(n)} tệp đính kèm của thư quý đơn vị gửi. "
             "Kết quả tóm tắt như sau; chi tiết từng mục ở phần dưới.")
    text = [f"Kính gửi: {addressee}", "", intro, ""]
    text += [f"{i}. {what}: {result}" for i, what, result in summary]
    body = [f"<p><strong>Kính gửi:</strong> {html.escape(addressee)}</p>", "<p>" + html.escape(intro) + "</p>", "<ol>"]
    body += [f"<li>{html.escape(what)}: {html.escape(result)}</li>" for _, what, result in summary]
    body.append("</ol>")
    for i, (what, ps) in enumerate(lines, 1):
        for p in ps:
            inner, technical = _inner(p.text)
            if technical and technical not in technicals:
                technicals.append(technical)
            text += ["", f"—— {i}. {what} ——", inner]
            body += [f"<h3>{i}. {html.escape(what)}</h3>",
                     f'<pre style="white-space: pre-wrap; font-family: inherit;">{html.escape(inner)}</pre>']
    if sender is not None:
        text += ["", sender.body, f"{sender.contact_line}."]
        link = (f', thư điện tử <a href="mailto:{html.escape(sender.email)}">{html.escape(sender.email)}</a>'
                if sender.email else "")
        body += [f'<p style="margin-top: 20px;"><strong>{html.escape(sender.body)}</strong></p>',
                 f'<p style="font-size: 14px;">{html.escape(sender.contact_intro)}{link}.</p>']
    if technicals:
        technical = TECHNICAL + " | ".join(technicals)
        text += ["", technical]
        body.append(f'<p class="ma-ky-thuat" style="font-size: 10px; color: #999;">{html.escape(technical)}</p>')
    page = ('<!DOCTYPE html>\n<html lang="vi">\n<head><meta charset="utf-8"></head>\n'
            '<body style="font-family: \'Times New Roman\', Times, serif; font-size: 15px; max-width: 720px;">\n'
            + "\n".join(body) + "\n</body>\n</html>\n")
    return subject, "\n".join(text) + "\n", page


def recent_replies(s: Session, since: datetime) -> Counter[str]:
    """Replies written to each address (lower case) since `since`, throttled and held ones apart."""
    counts: Counter[str] = Counter()
    for to, cc in s.execute(select(OutboxMessage.recipients, OutboxMessage.cc).where(
            OutboxMessage.kind.in_(REPLY_KINDS), OutboxMessage.status.notin_(NOT_SENT),
            OutboxMessage.created_at >= since)):
        for address in {a.lower() for a in [*(to or []), *(cc or [])]}:
            counts[address] += 1
    return counts


def release(s: Session, *, ref: str, files: Sequence[tuple[str, str]], extra: dict[str, Any] | None,
            limit: int, now: datetime | None = None, cfg: Config | None = None) -> Released:
    """Release the held replies to one mail (and its own reply `extra`, outbox keywords); see the module.

    `ref`: a stable reference of the mail (the merged message's key is built from it, so a rerun
    writes nothing new); `files`: (file name, stage = the file's SHA-256 prefix) of its files.
    `cfg`: to greet and sign a merged message as the single replies are (see :func:`merge`).
    """
    now = now or utcnow()
    stages = list(dict.fromkeys(stage for _, stage in files))
    rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.stage.in_(stages),
                                                      OutboxMessage.status == "held")
                          .order_by(OutboxMessage.id))) if stages else []
    parts = [Part(r.subject, r.body_text, r.kind, tuple(r.recipients or ()), tuple(r.cc or ()), r.stage,
                  r.unit_code, r.period, r.cycle_id, r, r.headers) for r in rows]
    if extra is not None:
        parts.insert(0, Part(extra["subject"], extra["text"], extra["kind"], tuple(extra["to"]),
                             tuple(extra.get("cc", ())), extra.get("stage", ""), headers=extra.get("headers")))
    groups: dict[tuple[str, ...], list[Part]] = {}
    for p in parts:
        groups.setdefault(tuple(sorted({a.lower() for a in p.to})), []).append(p)
    recent = recent_replies(s, now - timedelta(hours=1))
    done = Released()
    for recipients, group in groups.items():
        message: dict[str, Any] | None = None  # a message to write; None: release the one held row
        if len(group) == 1 and group[0].row is not None:
            key = group[0].row.key
        elif len(group) == 1:
            assert extra is not None
            message, key = dict(extra), str(extra["key"])
        else:
            subject, text, page = merge(files, group, _addressing(s, cfg, group))
            key = outbox.message_key("message", "", ref, "replies", hashlib.sha256(
                "\n".join(recipients).encode()).hexdigest()[:8])
            units = {p.unit for p in group}
            first = group[0] if len(units) == 1 else None
            message = {"key": key, "kind": Kind.RECEIPT if all(p.kind == Kind.RECEIPT for p in group) else Kind.PROBLEMS,
                       "stage": ref[:40], "to": list(dict.fromkeys(a for p in group for a in p.to)),
                       "cc": list(dict.fromkeys(a for p in group for a in p.cc)), "subject": subject,
                       "text": text, "html": page, "unit": first.unit if first else None,
                       "period": first.period if first else None, "cycle_id": first.cycle_id if first else None,
                       "headers": threads.shared_headers(p.headers for p in group)}
            for p in group:
                if p.row is not None:
                    p.row.status, p.row.last_error = "merged", f"merged into {key}"
                    done.merged.append(p.row.key)
                elif extra is not None:  # the mail's own reply is kept too, as what was merged
                    outbox.enqueue(s, **extra, status="merged")
                    s.execute(update(OutboxMessage).where(OutboxMessage.key == extra["key"],
                                                          OutboxMessage.status == "merged")
                              .values(last_error=f"merged into {key}"))
                    done.merged.append(str(extra["key"]))
        addresses = list(recipients) + [a.lower() for p in group for a in p.cc]
        blocked = over_limit(addresses, recent, limit)
        status = "throttled" if blocked else "pending"
        if message is not None:
            outbox.enqueue(s, **message, status=status)
            if blocked:
                s.flush()
                row = s.scalar(select(OutboxMessage).where(OutboxMessage.key == key))
                if row is not None and row.status == "throttled":
                    row.last_error = _limit_note(blocked, limit)
        else:
            row = group[0].row
            assert row is not None
            row.status = status
            if blocked:
                row.last_error = _limit_note(blocked, limit)
        if blocked:
            log.warning("reply %s to %s not sent: over %d replies per address per hour", key, blocked, limit)
            done.throttled.append((key, blocked))
        else:
            done.sent.append(key)
            for address in set(addresses):
                recent[address] += 1
    return done


def _addressing(s: Session, cfg: Config | None, group: Sequence[Part]) -> dict[str, Any] | None:
    """The letter of a merged message: its unit's (addressee, the collecting office signs) when every
    part is about one unit of one cycle, else the answer of the intake itself (no unit named)."""
    if cfg is None:
        return None
    units = {(p.unit, p.period, p.cycle_id) for p in group}
    if len(units) == 1:
        unit, period, cycle_id = next(iter(units))
        cycle = s.get(Cycle, cycle_id) if cycle_id is not None else None
        if unit and unit in cfg.hierarchy and cycle is not None:
            return letter(cfg, cycle.plan, unit, period or cycle.period)
    return system_letter(cfg)


def _limit_note(address: str, limit: int) -> str:
    return f"not sent: {address} had {limit} replies in the last hour (max_replies_per_address_per_hour)"
