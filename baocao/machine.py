"""What this machine gives the process: its cores.

One place, because three pools size themselves by it (reading forms, rendering reports, building
forms) and none of them should import the others, nor the database, to learn it: the render and read
pools start in fresh processes, where every import is paid again.
"""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or `taskset` narrows).

    More processes or threads than this only contend: they hold the GIL or compete for the same CPU.
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
