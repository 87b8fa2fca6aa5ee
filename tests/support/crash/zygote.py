"""A parent process that imports the application once and forks a stage process per request.

    python -m tests.support.crash.zygote [--flows]

Importing the flows (pandas, openpyxl, SQLAlchemy and, with ``--flows``, Prefect) takes seconds
on a small machine; a crash test kills and restarts stages dozens of times. So this process
imports everything, opens nothing (no engine, no socket, no thread), and forks: each stage runs
in a real child process with its own environment, which the test SIGKILLs by pid. The zygote
reaps the children and reports how each ended.

Protocol, one JSON object per line on stdin, one answer per line on stdout:
  {"op": "run", "stage": ..., "as_of": ISO, "flow": bool, "env": {...}, "log": path}  -> {"pid": n}
  {"op": "wait", "pid": n}  -> {"pid": n, "code": exit status or null, "signal": signal number or null}
  {"op": "exit"}
The child's stdout and stderr (the stage's `ready`/`result` lines and its log) go to `log`.
With ``--flows`` the zygote must be started with PREFECT_API_URL already set: Prefect reads its
settings when it is imported.
"""

from __future__ import annotations

import os

# Before numpy is imported: no BLAS thread pools in a process that forks.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402


def _child(cmd: dict) -> int:
    from tests.support.crash import stage

    fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.environ.clear()
    os.environ.update(cmd["env"])
    args = [cmd["stage"], "--as-of", cmd["as_of"]] + (["--flow"] if cmd.get("flow") else [])
    return stage.main(args)


def main() -> int:
    with_flows = "--flows" in sys.argv[1:]
    import docxtpl  # noqa: F401 - the report's Word template engine, imported on first use otherwise

    import tests.support.crash.stage  # noqa: F401
    from baocao.chasing import reminders  # noqa: F401
    from baocao.consolidation import charts  # noqa: F401
    from baocao.consolidation import reporting as consolidation  # noqa: F401
    from baocao.intake import channels  # noqa: F401
    from baocao.opening import dispatch  # noqa: F401

    if with_flows:
        from flows import chase, collect, consolidate, open_period  # noqa: F401
    if threading.active_count() != 1:  # forking a process with threads copies only one of them
        raise SystemExit(f"zygote has threads after its imports: {threading.enumerate()}")
    out = sys.stdout
    print(json.dumps({"ready": os.getpid()}), file=out, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "run":
            pid = os.fork()
            if pid == 0:
                code = 70
                try:
                    code = _child(cmd)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            answer: dict = {"pid": pid}
        elif cmd["op"] == "wait":
            pid, status = os.waitpid(cmd["pid"], 0)
            answer = {"pid": pid, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                      "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
        elif cmd["op"] == "exit":
            break
        else:
            answer = {"error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(answer), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
