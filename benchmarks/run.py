"""The benchmark's driver: servers, memory sampling, the scales, the table and the JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from benchmarks.memory import MemorySampler
from benchmarks.servers import start_sink
from benchmarks.table import evaluate, render_table

NATIONAL_ROOT = "BNV"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor() or "?",
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
    }


def _warm_up() -> None:
    """Start Prefect's ephemeral API, and pay once what the first flow of the first scale would pay:
    the task runner's threads, persisted results, the imports of the report's renderers."""
    import docxtpl  # noqa: F401
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    from prefect import flow, task
    from prefect.futures import wait

    @task(name="benchmark-warm-up-task", persist_result=True)
    def warm_task(n: int) -> int:
        return n

    @flow(name="benchmark-warm-up")
    def warm_up() -> int:
        futures = [warm_task.submit(i) for i in range(2)]
        wait(futures)
        return warm_task(2) + sum(f.result() for f in futures)

    warm_up()


def _prefect_server_pid() -> int | None:
    try:
        from prefect.server.api.server import SubprocessASGIServer

        proc = SubprocessASGIServer().server_process
        return proc.pid if proc is not None else None
    except Exception:
        return None


def _stop_prefect_server() -> None:
    try:
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().stop()
    except Exception:
        pass


def run(args: argparse.Namespace, tmp: Path) -> int:
    console = Console(stderr=True)
    info = machine()
    roles: dict[int, str] = {}

    def classify(p: psutil.Process) -> str:
        if p.pid in roles:
            return roles[p.pid]
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            cmd = ""
        if "prefect.server.api.server" in cmd:
            return "prefect server"
        if "multiprocessing" in cmd:  # the reader and render processes (spawned) and their resource tracker
            return "pool processes"
        return "other"

    sampler = MemorySampler(classify).start()
    sink = start_sink()
    roles[sink.pid] = "smtp sink"
    os.environ.update({"BAOCAO_SMTP__HOST": "127.0.0.1", "BAOCAO_SMTP__PORT": str(sink.port)})
    started = time.perf_counter()
    results = []
    try:
        from baocao import runtime
        from benchmarks import cycle
        from benchmarks.cycle import run_scale

        cycle.PROFILE_DIR = args.profile.resolve() if args.profile else None

        runtime.reset()
        console.print("[bold]baocao benchmark[/bold]: starting Prefect's ephemeral API (a subprocess) ...")
        _warm_up()
        pid = _prefect_server_pid()
        server = psutil.Process(pid) if pid else None
        if pid:
            roles[pid] = "prefect server"

        def server_cpu() -> float:
            try:
                t = server.cpu_times() if server else None
            except psutil.Error:
                return 0.0
            return (t.user + t.system) if t else 0.0

        def progress(msg: str) -> None:
            console.print(f"[{time.perf_counter() - started:6.1f}s] {msg}", highlight=False)

        def register(pid: int, role: str) -> None:
            roles[pid] = role

        scales = []
        if args.scale in ("small", "both"):
            scales.append(("small", args.small_root))
        if args.scale in ("national", "both"):
            scales.append(("national", NATIONAL_ROOT))
        for scale, root in scales:
            limit = args.mail_messages if scale == "national" else 10**9
            results.append(run_scale(scale, root, tmp, args.seed, sink, register, mail_limit=limit,
                                     progress=progress, server_cpu=server_cpu))
    finally:
        sink.stop()
        _stop_prefect_server()
        sampler.stop()
    info["load_after"] = os.getloadavg()
    info["benchmark_seconds"] = time.perf_counter() - started
    memory = {"peak_by_role": dict(sampler.peak), "peak_system": sampler.peak_system, "peak_all": sampler.peak_all,
              "benchmark_maxrss": MemorySampler.self_maxrss(), "sample_interval": sampler.interval}
    verdicts = evaluate(results, memory, info)
    out = Console(width=max(230, Console().width))  # one row per line, also in a log file
    out.print(render_table(results, memory, info, verdicts))
    if args.json:
        doc = {"machine": info, "memory": memory, "scales": [r.to_dict() for r in results], "targets": verdicts,
               "argv": sys.argv[1:]}
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return 0
