"""Quiet consoles: no Prefect noise on stderr when a `baocao` command runs a flow.

With `PREFECT_API_URL` unset, each command that runs a flow (`cycle open`, `collect`, `chase`,
`consolidate`, ...) gets a temporary Prefect server in a subprocess. That server starts Prefect's
telemetry service (`prefect.server.services.telemetry`, a `send_telemetry_heartbeat` task run by
docket), which printed on every command:

- `ERROR | prefect.server.services.telemetry - Failed to send telemetry: [Errno -2] Name or service
  not known` wherever the machine has no way out to the internet (a government network), and
- now and then a 100-line traceback from `docket.dependencies` ("↩ send_telemetry_heartbeat()",
  `sqlite3.OperationalError: database is locked`): the heartbeat's first write races the temporary
  server's own start-up writes to its SQLite database.

Neither has anything to do with the command; the flow runs the same. Both are removed at their
source by turning the server's telemetry off (`PREFECT_SERVER_ANALYTICS_ENABLED=false`, which also
turns off the client's usage events), as `baocao up` and `baocao demo` already do for the servers
they start. Nothing is filtered out of the logs, so a real error (a flow that fails, a server that
cannot start) still prints its message and traceback. An operator who sets the variable keeps
their value. The temporary server inherits this process's environment when the first flow starts,
so setting it here, before any flow runs, is enough.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

TELEMETRY = "PREFECT_SERVER_ANALYTICS_ENABLED"


def quiet_prefect(environ: MutableMapping[str, str] = os.environ) -> None:
    """Turn Prefect's telemetry off for this process and the servers it starts, unless set."""
    environ.setdefault(TELEMETRY, "false")
