"""Helpers of the crash, fault and concurrency tests: a small multi-level tree, the stage runner
(`python -m tests.support.crash.stage`), the seeded units' side of a cycle and the delivery ledger."""
