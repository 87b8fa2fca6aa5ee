"""The `collect` flow: take in what units sent, by the mailbox and the drop folder.

Scheduled every few minutes. Each channel is one task (a mailbox read is sequential by nature);
every file with a problem is logged with its unit and the problem, accepted files are counted (and
the first few named), and the replies go out through the outbox at the end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from baocao import runtime
from baocao.intake import steps
from baocao.intake.channels import CollectReport, collect_folder, collect_mailbox
from baocao.intake.inbox import MailboxLoginError
from baocao.rules.config import ConfigError
from flows import dashboards, runnames
from flows.limits import smtp_limited

DROP_FOLDER_ARTIFACT = "drop-folder-failed"
"""Artifact listing the drop folder's files parked in `failed/` (updated by each run that finds some)."""

SHOWN_ACCEPTED = 20
"""Accepted files named one by one in a run's log; beyond that they are counted (the status tables
name every unit). A Prefect log line costs about 0.6 ms of the run's process, and a national cycle's
3,351 accepted files made 2 s of lines nobody reads; a file with a problem always gets its line."""


def _log_report(report: CollectReport, channel: str) -> dict[str, Any]:
    logger = get_run_logger()
    counts: dict[str, int] = {}
    fine: list[str] = []
    for _source, outcome in report.outcomes:
        for u in outcome.units:
            counts[u.status] = counts.get(u.status, 0) + 1
            line = f"{u.status} unit {u.unit or '?'} period {u.period or '?'}{' (late)' if u.late else ''}"
            if u.status in ("accepted", "duplicate"):
                fine.append(line)
                continue
            detail = "; ".join(p.message_vi for p in u.problems if p.severity == "error")[:300]
            logger.warning("%s: %s%s", channel, line, f" — {detail}" if detail else "")
    for line in fine[:SHOWN_ACCEPTED]:
        logger.info("%s: %s", channel, line)
    if len(fine) > SHOWN_ACCEPTED:
        logger.info("%s: %d more files accepted or already stored (each unit's state: the status tables)",
                    channel, len(fine) - SHOWN_ACCEPTED)
    if report.outcomes:
        logger.info("%s: %d file(s): %s", channel, report.files,
                    ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for e in report.errors:
        logger.error("%s: %s", channel, e)
    for note in report.throttled:
        logger.warning("%s: %s", channel, note)
    for parked in report.parked:
        logger.warning("%s: %s moved to %s: %s", channel, parked.name, parked.moved_to, parked.reason_vi[:300])
    if report.waiting:
        logger.info("%s: %d file(s) still being written, left for the next run", channel, len(report.waiting))
    return {"messages": report.messages, "files": report.files, "by_status": counts, "errors": report.errors,
            "parked": len(report.parked), "summary": report.summary, "throttled": report.throttled}


def _worth_retrying(task: Any, task_run: Any, state: State) -> bool:
    """A refused login fails again ten seconds later (the password changed): fail at once, say why.

    A dropped connection or a server that is briefly away is worth the retries; a configuration
    refused at start (a public token secret on a real mail server) is not.
    """
    return not isinstance(state.data, MailboxLoginError | ConfigError)


@task(name="collect-mailbox", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10,
      retry_condition_fn=_worth_retrying, task_run_name="read the mailbox")
def read_mailbox(as_of: datetime | None) -> dict[str, Any]:
    cfg = runtime.config()
    return _log_report(collect_mailbox(runtime.database(cfg), cfg, as_of=as_of), "mailbox")


@task(name="collect-folder", cache_policy=NO_CACHE, task_run_name="read the drop folder")
def read_folder(as_of: datetime | None) -> dict[str, Any]:
    cfg = runtime.config()
    report = collect_folder(runtime.database(cfg), cfg, as_of=as_of)
    if report.summary:  # files waiting in failed/: the operator sees them in the UI, not only in a log line
        create_markdown_artifact(key=DROP_FOLDER_ARTIFACT, markdown=report.summary,
                                 description="Tệp trong thư mục failed/ của thư mục nhận báo cáo, cần xử lý")
    return _log_report(report, "folder")


@task(name="send-replies", cache_policy=NO_CACHE, task_run_name="send replies")
def send_replies() -> dict[str, Any]:
    cfg = runtime.config()
    delivery = steps.send_replies(runtime.database(cfg), cfg)
    for key, reason in delivery.failed.items():
        get_run_logger().error("reply %s not sent: %s", key, reason)
    return {"sent": len(delivery.sent), "failed": len(delivery.failed)}


@flow(name="collect", flow_run_name=runnames.namer("collect", runnames.collect_name))
def collect(as_of: datetime | None = None, mailbox: bool = True, folder: bool = True) -> dict[str, Any]:
    """Read the intake mailbox and the drop folder, store and check every file, reply to each sender."""
    result: dict[str, Any] = {}
    if mailbox:
        result["mailbox"] = read_mailbox(as_of)
    if folder:
        result["folder"] = read_folder(as_of)
    replies = smtp_limited(send_replies).submit()  # the dashboards are published while the replies go out
    dashboards.publish_progress(as_of)
    result["replies"] = replies.result()
    return result
