"""Prefect's concurrency limit on sending: the ``smtp`` tag, put on a sending task only when it limits.

Operators cap the tasks that talk SMTP across all workers with ``prefect concurrency-limit create
smtp N`` (README, "Production"). Prefect takes a slot for every tag of a task before the task runs,
asking the API, and remembers "this tag has no limit" for 5 seconds only. On a Prefect server that
keeps its state in SQLite (the demo, the tests, a one-machine install) that request races the
server's own recording of the task's Pending state: SQLite refuses the request's write ("database is
locked"), the server answers 503 and the client retries after about 2 seconds. Measured: a collect
run of the national benchmark waited 1.6 to 2.4 s there before sending its receipts; a task tagged
``smtp`` run every 6 seconds waited about 2 s each time after the first.

So a flow asks once, with a read that takes no lock, whether the limit exists, and tags its sending
task only then. A limit created while a flow runs applies from the next run. If the question cannot
be answered, the task is tagged: a limit that exists is never skipped.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from prefect import Task
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

log = logging.getLogger("baocao.limits")

SMTP_TAG = "smtp"

T = TypeVar("T", bound=Task[Any, Any])


def tag_has_limit(tag: str) -> bool:
    """Whether the Prefect API holds a concurrency limit for ``tag`` (True when it cannot tell)."""
    try:
        with get_client(sync_client=True) as client:
            client.read_concurrency_limit_by_tag(tag)
    except ObjectNotFound:
        return False
    except Exception as exc:  # noqa: BLE001 - an API that cannot answer: keep the limit's protection
        log.warning("could not read the concurrency limit of tag %r (%s); tagging the task", tag, exc)
    return True


def smtp_limited(task: T) -> T:
    """``task`` tagged ``smtp`` if a concurrency limit on that tag exists, else ``task`` itself."""
    if tag_has_limit(SMTP_TAG):
        return task.with_options(tags={*task.tags, SMTP_TAG})
    return task
