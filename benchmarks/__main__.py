"""``python -m benchmarks``: a national-scale benchmark of a whole simulated H1 cycle.

    python -m benchmarks [--scale small|national|both] [--seed N] [--json FILE] [--mail-messages N]
                         [--profile DIR] [--keep]

Everything happens in a temporary directory (SQLite databases, drop folders, PREFECT_HOME with
the ephemeral Prefect server's database) that is removed at the end; nothing under var/ is read or
written. PREFECT_API_URL is ignored: the flows run against Prefect's ephemeral API server, which
Prefect starts as a subprocess of this one and which is counted in the peak memory.
Prints one table; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=("small", "national", "both"), default="both",
                   help="small: one province (T31 Hải Phòng); national: Bộ Nội vụ and its whole tree")
    p.add_argument("--seed", type=int, default=2026, help="seed of the simulated units' figures")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    p.add_argument("--mail-messages", type=int, default=1200,
                   help="requests re-sent to the 50 ms SMTP server (national; the small scale sends all of its own)")
    p.add_argument("--small-root", default="T31", help="root of the small scale (default T31, Hải Phòng)")
    p.add_argument("--profile", type=Path, default=None,
                   help="write a pyinstrument profile of each plain-run stage to this directory (slows them down)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (its path is printed)")
    return p.parse_args(argv)


def prepare_environment(tmp: Path) -> None:
    """Before Prefect or the flows are imported: everything under `tmp`, quiet Prefect, no outside API."""
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.update({
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "BAOCAO_VAR_DIR": str(tmp),
        "BAOCAO_DATABASE_URL": f"sqlite:///{tmp / 'setup.db'}",
        "BAOCAO_DROP_FOLDER": str(tmp / "dropbox"),
        "BAOCAO_TOKEN_SECRET": "benchmark-token-secret-0123456789",
        "BAOCAO_DROP_SETTLE_SECONDS": "0",  # the benchmark's files are complete when dropped: no settling wait
        "BAOCAO_MAX_REPLIES_PER_ADDRESS_PER_HOUR": "1000000",  # simulated units share few addresses
        "BAOCAO_SMTP__BACKOFF_BASE": "0.05",
        "BAOCAO_SMTP__TIMEOUT": "30",
    })
    for name in [k for k in os.environ if k.startswith(("BAOCAO_IMAP__", "BAOCAO_SMTP__PORT", "BAOCAO_SMTP__HOST",
                                                        "BAOCAO_SMTP__USE", "BAOCAO_SMTP__USERNAME",
                                                        "BAOCAO_SMTP__PASSWORD", "BAOCAO_SMTP__START"))]:
        del os.environ[name]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="baocao-bench-"))
    prepare_environment(tmp)
    try:
        from benchmarks.run import run

        return run(args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
