"""Smoke test of `python -m benchmarks`: the small scale (one province) runs end to end.

No timing is asserted (CI machines differ); what must hold is that the table has every row and
that the counts add up: one form per form unit, one stored reply per form unit, one report per
consolidator, in the flow run and in the plain-function run alike. The benchmark runs as a child
process, as `make bench` runs it: it points Prefect at its own temporary PREFECT_HOME before
Prefect is imported, which cannot be done inside this test process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from baocao.devservers.simulate import figures as draw_figures
from baocao.devservers.simulate import fill_form
from baocao.intake.reader import read_submission
from baocao.opening.forms import FormBuilder, FormSpec, FormTask
from baocao.rules.periods import Period
from benchmarks.table import ROW_KEYS
from benchmarks.units import FastFiller

ROOT = Path(__file__).resolve().parent.parent


def test_fast_filler_reads_like_the_openpyxl_filler(cfg):
    """The benchmark's units fill forms by patching XML; the reader must see what fill_form would give."""
    from datetime import date

    unit = cfg.hierarchy["X10714-VHXH"]
    spec = FormSpec(unit=unit, period=Period.parse("2026-H1"), deadline=date(2026, 6, 5), token="v1-TEST",
                    form_version=1, coordinator_name="Phường Nhị Chiểu", coordinator_email="a@b.example",
                    reply_to="r@b.example", previous_year={cfg.catalog.counts[0].code: 7},
                    tasks=[FormTask(1, "Quán triệt Kết luận", "Năm 2026", "lead"),
                           FormTask(2, "Rà soát văn bản", "Quý IV/2026", "partner")])
    form = FormBuilder(cfg.catalog).build(spec)
    filled = draw_figures(cfg.catalog, random.Random(5))
    slow = fill_form(form, cfg.catalog, filled, random.Random(9))
    fast = FastFiller(cfg.catalog).fill(form, filled, random.Random(9))
    (a,), pa = read_submission(slow, "a.xlsx", cfg.catalog)
    (b,), pb = read_submission(fast, "b.xlsx", cfg.catalog)
    assert pa == pb == []
    assert (a.unit_code, a.period, a.token) == (b.unit_code, b.period, b.token)
    assert a.values == b.values and a.previous_year == b.previous_year
    assert a.texts == b.texts and a.tasks == b.tasks
    assert set(a.contact) == {"preparer", "phone", "head"}, a.contact  # the demo's clerks sign their forms


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_small_scale_runs_and_counts_add_up(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAOCAO_", "PREFECT_"))}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--scale", "small", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(out.read_text())

    (scale,) = doc["scales"]
    assert scale["scale"] == "small" and scale["root"] == "T31"
    units, forms, consolidators = scale["units"], scale["form_units"], scale["consolidators"]
    assert units == forms + consolidators and forms > 100 and consolidators >= 2
    for run in ("flow", "plain"):
        c = scale["counts"][run]
        assert c["forms_built"] == forms, (run, c)
        assert c["requests_written"] == c["requests_sent"] == units, (run, c)
        assert c["replies_stored"] == forms, (run, c)
        assert c["receipts_sent"] == forms, (run, c)
        assert c["reports_made"] == c["reports_sent"] == consolidators, (run, c)
    assert scale["counts"]["flow"]["reports_in_run"] == consolidators
    assert scale["counts"]["plain"]["files_collected"] == scale["intake"]["files"] == forms
    assert scale["mail"]["messages"] == units and scale["mail"]["failed"] == 0
    assert scale["mail"]["bound"] == scale["mail"]["concurrency"] / 0.05
    assert scale["imap"]["messages"] == scale["imap"]["accepted"] == min(200, forms)
    assert scale["aggregation"]["units"] == units
    for stage in ("open", "collect", "consolidate", "total"):
        assert scale["flow"][stage] > 0 and scale["plain"][stage] > 0
    assert doc["memory"]["peak_system"] > 0 and doc["memory"]["peak_by_role"].get("prefect server", 0) > 0
    assert doc["machine"]["nproc"] >= 1
    assert set(doc["targets"]) >= {"e2e", "overhead", "forms", "validation", "aggregation", "sending", "rss"}

    # One table with every row, and nothing of the run left behind.
    table = proc.stdout
    assert table.count("baocao benchmark") == 1
    for label in ("cores (nproc)", "units in tree", "forms built per second", "FormBuilder.build",
                  "mails sent per second", "bound = connections", "drop folder", "reading + validating the same files", "IMAP path",
                  "consolidate_tree", "loading the frames", "reports made (Word", "end-to-end cycle with Prefect",
                  "as plain functions", "orchestration overhead", "open: open-period", "collect: collect flow",
                  "consolidate: consolidate flow", "units filling", "peak RSS", "benchmark process",
                  "Prefect ephemeral API server", "test servers", "per unit: open-period", "per unit: collect",
                  "per unit: consolidate", "per unit: end-to-end with flows", "per unit: end-to-end plain",
                  "forms built (flow / plain", "replies stored", "reports made"):
        assert label in table, label
    assert len(ROW_KEYS) == 31
    assert f"{forms} / {forms} of {forms} ✓" in table
    assert f"{consolidators} / {consolidators} of {consolidators} ✓" in table
