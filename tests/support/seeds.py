"""Where the tests read the five seed plans: copies of ../shared/seeds kept in tests/data/seeds.

Tests cite the seeds' own words; the copies let a clone without ../shared beside it run them
(tests/test_appendix.py checks the copies against ../shared/seeds when that folder is there).
"""

from __future__ import annotations

from pathlib import Path

SEEDS = Path(__file__).resolve().parents[1] / "data" / "seeds"
