"""Run one stage of a reporting cycle, as the scheduled flow would, in a process that may be killed.

    python -m tests.support.crash.stage open|chase|collect|collect-folder-first|consolidate --as-of ISO [--flow]

Configuration comes from the BAOCAO_* environment (database, SMTP, IMAP, drop folder, config
directory). Without ``--flow`` the stage calls the library functions the flow's tasks call, in
the same order (fast: no Prefect import); with ``--flow`` it runs the Prefect flow itself against
the API named by PREFECT_API_URL. The process prints ``ready`` once its imports are done (the
test's kill timer starts there) and ``result {json}`` at the end. Exit status 0 when every unit
was served, 3 when some unit failed (named in the result), anything else is a crash.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from typing import Any

from tests.support.crash.tree import PERIOD, PLAN, ROOT

STAGES = ("open", "chase", "collect", "collect-folder-first", "consolidate")


def run_library(stage: str, as_of: datetime) -> dict[str, Any]:
    """One stage through the library: the steps of the flow's tasks, without Prefect."""
    from baocao import runtime
    from baocao.chasing.reminders import chase_cycle
    from baocao.chasing.steps import send_notices
    from baocao.consolidation.reporting import make_report
    from baocao.consolidation.steps import reports_due, send_reports
    from baocao.intake.channels import collect_folder, collect_mailbox
    from baocao.intake.steps import send_replies
    from baocao.opening import dispatch
    from baocao.opening.forms import FormBuilder
    from baocao.opening.steps import send_requests
    from baocao.rules.periods import Period
    from baocao.store.queries import find_cycle, open_cycle, open_cycles

    cfg = runtime.config()
    db = runtime.database(cfg)
    failed: dict[str, str] = {}
    out: dict[str, Any] = {"stage": stage}
    if stage == "open":
        info = open_cycle(db, cfg, Period.parse(PERIOD), PLAN, ROOT)
        builder = FormBuilder(cfg.catalog)
        for units in dispatch.cascade_batches(cfg, info.root):
            failed.update(dispatch.prepare_requests(db, cfg, info, units, builder).failed)
        delivery = send_requests(db, cfg, info)
    elif stage == "chase":
        for info in open_cycles(db):
            chase_cycle(db, cfg, info, as_of)
        delivery = send_notices(db, cfg)
    elif stage in ("collect", "collect-folder-first"):
        if stage == "collect":
            mailbox = collect_mailbox(db, cfg, as_of=as_of)
            folder = collect_folder(db, cfg, as_of=as_of)
        else:  # a second collector that starts with the folder: the two meet on the same units
            folder = collect_folder(db, cfg, as_of=as_of)
            mailbox = collect_mailbox(db, cfg, as_of=as_of)
        out["errors"] = mailbox.errors + folder.errors
        out["statuses"] = sorted(u.status for r in (mailbox, folder) for _, o in r.outcomes for u in o.units)
        delivery = send_replies(db, cfg)
    elif stage == "consolidate":
        info = find_cycle(db, PERIOD, PLAN, ROOT)
        assert info is not None
        units, figures = reports_due(db, cfg, info, as_of)
        for unit in units:  # children before parents
            make_report(db, cfg, info, unit, figures, as_of)
        out["reports"] = units
        delivery = send_reports(db, cfg, info)  # a level at a time, deepest first, as the flow sends
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    failed.update(delivery.units_failed)
    out.update(sent=len(delivery.sent), failed=failed)
    return out


def run_flow(stage: str, as_of: datetime) -> dict[str, Any]:
    """One stage through its Prefect flow (a flow run on the API of PREFECT_API_URL)."""
    if stage == "open":
        from flows.open_period import open_period

        res = open_period(period=PERIOD, plan=PLAN, root=ROOT, as_of=as_of)
        return {"stage": stage, "sent": res["sent"], "failed": res["failed"]}
    if stage == "chase":
        from flows.chase import chase

        res = chase(as_of=as_of)
        return {"stage": stage, "sent": res["sent"], "failed": {}}
    if stage == "collect":
        from flows.collect import collect

        res = collect(as_of=as_of)
        return {"stage": stage, "sent": res["replies"]["sent"], "failed": {}}
    if stage == "consolidate":
        from flows.consolidate import consolidate

        res = consolidate(period=PERIOD, plan=PLAN, root=ROOT, as_of=as_of)
        (one,) = res.values()
        return {"stage": stage, "sent": one["sent"], "failed": one["failed"], "reports": one["reports"]}
    raise SystemExit(f"unknown stage {stage!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.crash.stage")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--as-of", required=True, type=datetime.fromisoformat)
    parser.add_argument("--flow", action="store_true", help="run the Prefect flow instead of the library steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    if args.flow:
        import flows.chase  # noqa: F401 - imports (Prefect's included) before the kill timer starts
        import flows.collect  # noqa: F401
        import flows.consolidate  # noqa: F401
        import flows.open_period  # noqa: F401
    else:
        import baocao.chasing.steps  # noqa: F401
        import baocao.consolidation.steps  # noqa: F401
        import baocao.intake.channels  # noqa: F401
        import baocao.intake.steps  # noqa: F401
        import baocao.opening.steps  # noqa: F401
    print("ready", flush=True)
    try:
        result = (run_flow if args.flow else run_library)(args.stage, args.as_of)
    except Exception as exc:  # a flow that ends Failed raises; report what it named
        failed = getattr(exc, "failed", None) or {"*": f"{type(exc).__name__}: {exc}"}
        result = {"stage": args.stage, "sent": None, "failed": failed, "error": f"{type(exc).__name__}: {exc}"}
        logging.getLogger("baocao.crash").exception("stage %s failed", args.stage)
    print("result " + json.dumps(result, default=str, ensure_ascii=False), flush=True)
    return 3 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
