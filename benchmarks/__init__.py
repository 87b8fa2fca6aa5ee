"""National-scale benchmark of a reporting cycle: ``python -m benchmarks`` (``make bench``).

Builds the configured tree (Bộ Nội vụ, 34 provinces, 3,321 communes and the departments of
config/hierarchy.toml), runs a whole simulated H1 cycle with the Prefect flows and again with the
same stages as plain functions, and prints one table: forms/s, mails/s against a server answering
after 50 ms next to the bound the connection limit sets, submissions/s (drop folder and IMAP),
aggregation time, end-to-end times and the orchestration overhead, peak RSS, and per-unit costs of
a small scale (one province) beside the national ones.

Modules: :mod:`benchmarks.__main__` (options, temporary environment), :mod:`benchmarks.run`
(servers, memory sampling, the scales), :mod:`benchmarks.cycle` (one scale), :mod:`benchmarks.units`
(simulated units filling their forms), :mod:`benchmarks.servers` and :mod:`benchmarks.smtpsink`
(loopback SMTP and IMAP servers in child processes), :mod:`benchmarks.memory`, :mod:`benchmarks.table`.
"""
