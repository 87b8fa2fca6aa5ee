"""One Jinja2 environment for every e-mail and text the system writes.

HTML templates are autoescaped (units' words cannot inject markup); plain-text templates are
not. Vietnamese formatting of numbers and dates is available as filters, so that no template
formats a number by hand.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from baocao.paths import TEMPLATES_DIR
from baocao.rules import formatting
from baocao.safetext import short_name


def row_number(cell: str | None) -> str:
    """The form's row of a figure ("D5" -> "5", CSV "dòng 12" -> "12"): receipts name a figure by its
    row and its words, never by the indicator's code."""
    return "".join(ch for ch in (cell or "") if ch.isdigit())


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2", "htm"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates ship with the code and do not change while it runs: no stat() of every template
        # (and of the layout it extends) for each of the thousands of mails of a cycle.
        auto_reload=False,
    )
    env.filters.update(
        number=formatting.number_vi,
        percent=formatting.percent_vi,
        date_vi=formatting.date_vi,
        date_long=formatting.date_long_vi,
        datetime_vi=formatting.datetime_vi,
        short_name=short_name,  # a sender's file name in a subject: capped, without bidi controls
        row_number=row_number,
    )
    return env


@cache
def template(name: str) -> Template:
    """The template `name`, loaded once per process.

    Jinja's own cache takes a lock on every lookup. Under a flow's task threads (six building forms
    at once) that lock convoyed: its holder waited for the GIL while the others waited for it, and
    the lookups took more of the open-period run than rendering did. Templates ship with the code
    and do not change while it runs, so each is looked up here without a lock.
    """
    return environment().get_template(name)


def render(name: str, **context: Any) -> str:
    return template(name).render(**context)


def render_mail(name: str, **context: Any) -> tuple[str, str, str]:
    """(subject, text, html) of `templates/email/<name>.{subject,txt,html}.j2`.

    The subject is rendered on one line: line breaks a unit's text might carry are folded
    away, so no header can be injected through it.
    """
    subject = " ".join(render(f"email/{name}.subject.j2", **context).split())
    context.setdefault("title", subject)
    return subject, render(f"email/{name}.txt.j2", **context), render(f"email/{name}.html.j2", **context)
