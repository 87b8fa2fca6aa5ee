"""The `smtp` concurrency limit: sending tasks carry the tag, and take a slot, only when the limit exists.

Against a real Prefect API (its server keeps state in SQLite, where a tag check with no limit behind
it costs a 503 and a 2 s client retry: see flows/limits.py).
"""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.context import TaskRunContext

from flows.limits import SMTP_TAG, smtp_limited, tag_has_limit

pytestmark = pytest.mark.usefixtures("prefect_api")


def active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


@task
def send() -> tuple[list[str], int | None]:
    """What a sending task sees of the limit while it runs: its tags and the slots taken."""
    tags = sorted(TaskRunContext.get().task_run.tags)
    return tags, active_slots(f"tag:{SMTP_TAG}") if tag_has_limit(SMTP_TAG) else None


@flow
def sending() -> tuple[list[str], int | None]:
    return smtp_limited(send)()


def test_without_a_limit_the_sending_task_has_no_tag_to_check() -> None:
    assert not tag_has_limit(SMTP_TAG)
    assert smtp_limited(send) is send
    assert sending() == ([], None)


def test_with_a_limit_the_sending_task_is_tagged_and_holds_a_slot_while_it_runs(smtp_limit: str) -> None:
    assert tag_has_limit(SMTP_TAG)
    assert sending() == ([SMTP_TAG], 1)
    assert active_slots(smtp_limit) == 0  # released when the task ended
    assert send.tags == set()  # the task itself is left as it was
