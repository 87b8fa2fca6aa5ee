"""baocao's library: each step of a reporting cycle as plain functions, without Prefect.

`flows/` orchestrates these steps (flows, deployments, schedules, what the Prefect UI shows);
nothing here imports Prefect or `flows` (tests/test_layout.py enforces it), so every step runs
and is tested without an orchestrator.
"""
