"""`baocao demo` (the README's first command) runs a whole cycle whose reports are issued on time.

The demo is run as a user runs it (a subprocess: its own SQLite, ephemeral Prefect, built-in SMTP and IMAP
servers), then read as its users would: the summary it prints and writes, the mails filed under
``mail/`` (the draft each consolidator received, the signed version its coordinator sent back, the report
that went up) and the store. Every consolidator's report must be issued with a number and a valid
signature by its own deadline, and a parent's report made and sent only after its children's issued ones.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from baocao.consolidation.issuing import read_signature
from baocao.rules.config import PROJECT_DIR, load_config

pytestmark = pytest.mark.slow
ROOT = "T31"
WARDS = ("X10714", "X11074")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BAOCAO_"))}
    env |= {"COLUMNS": "250", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--workdir", str(workdir)], env=env,
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return workdir, done.stdout


def _mails(workdir: Path) -> list[tuple[str, email.message.EmailMessage]]:
    """(recipient, message) of every mail the built-in SMTP server filed, in order of arrival."""
    with (workdir / "mail" / "index.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [(r["recipient"], email.message_from_bytes((workdir / "mail" / r["path"]).read_bytes(),
                                                      policy=email.policy.default)) for r in rows]


def test_every_consolidator_issues_a_numbered_signed_report_by_its_deadline(demo):
    workdir, stdout = demo
    cfg = load_config(env={})
    h = cfg.hierarchy
    summary = json.loads((workdir / "summary.json").read_text(encoding="utf-8"))
    rows = {r["unit"]: r for r in summary["reports"]}
    assert set(rows) == {*WARDS, ROOT}
    db = sqlite3.connect(workdir / "baocao.db")
    for unit, r in rows.items():
        deadline = date.fromisoformat(r["deadline"])
        assert r["status"] == "issued" and re.fullmatch(r"\d+/BC-UBND", r["number"]), r
        assert r["signature"] == "valid" and h[unit].head_name in r["signer"], r
        assert date.fromisoformat(r["drafted"]) < date.fromisoformat(r["received"]) <= deadline, r
        assert date.fromisoformat(r["issued_on"]) <= deadline and date.fromisoformat(r["sent_up"]) <= deadline, r
        assert r["on_time"] is True
        # The store says the same: issued, and the consolidator's own request answered on time.
        status, number, signature = db.execute(
            "SELECT status, number, signature FROM reports WHERE unit_code = ? ORDER BY version DESC", (unit,)).fetchone()
        assert (status, number, signature) == ("issued", r["number"], "valid")
        state, on_time = db.execute("SELECT state, on_time FROM requests WHERE unit_code = ? AND role = 'consolidate'",
                                    (unit,)).fetchone()
        assert (state, bool(on_time)) == ("accepted", True)
        assert r["number"] in stdout  # the printed summary lists it
    # The city's draft is made once the wards' issued reports have gone up to it.
    assert all(date.fromisoformat(rows[w]["sent_up"]) <= date.fromisoformat(rows[ROOT]["drafted"]) for w in WARDS)
    assert (workdir / "reports" / "bao-cao-t31-da-ky.pdf").exists()


def test_the_draft_the_signed_reply_and_the_report_read_right_in_order(demo):
    workdir, _ = demo
    cfg = load_config(env={})
    h = cfg.hierarchy
    city, ministry = h[ROOT], h["BNV"]
    summary = {r["unit"]: r for r in json.loads((workdir / "summary.json").read_text(encoding="utf-8"))["reports"]}
    mails = _mails(workdir)
    position: dict[tuple[str, str], int] = {}
    for i, (rcpt, msg) in enumerate(mails):
        position.setdefault((str(msg.get("X-Baocao-Kind", "reply")), rcpt), i)
    for unit in (*WARDS, ROOT):
        u = h[unit]
        coordinator = u.coordinator_emails[0]
        (draft,) = [m for r, m in mails if r == coordinator and m.get("X-Baocao-Kind") == "draft"]
        token = re.search(r"bc-\d+-[a-z0-9]{26}", str(draft["Subject"]), re.IGNORECASE)
        assert token, draft["Subject"]
        # The coordinator's answer, as its mail client wrote it, reached the intake mailbox.
        (reply,) = [m for r, m in mails if r == cfg.settings.reply_to.lower() and m.get("In-Reply-To") == draft["Message-ID"]]
        assert reply["From"] == coordinator and reply["Message-ID"] and reply["Date"]
        assert token.group(0) in str(reply["Subject"])
        number, issued_on = summary[unit]["number"], date.fromisoformat(summary[unit]["issued_on"])
        assert f"Số: {number}, ngày {issued_on.day:02d}/{issued_on.month}/{issued_on.year}" in \
            reply.get_body(("plain",)).get_content()
        # The issued report went up with the signed PDF, Reply-To the unit.
        parent = h.parent(unit)
        assert parent is not None
        (report,) = [m for r, m in mails if r == parent.coordinator_emails[0] and m.get("X-Baocao-Kind") == "report"
                     and number in str(m["Subject"])]
        assert report["Reply-To"] == coordinator
        (pdf,) = [p.get_content() for p in report.iter_attachments() if (p.get_filename() or "").endswith(".pdf")]
        assert pdf == next(p.get_content() for p in reply.iter_attachments())
        signature = read_signature(pdf)
        assert signature.state == "valid" and u.head_name in (signature.signer or "")
    # Order of arrival: the wards' issued reports reach the city before its draft is made, and the
    # city's own report reaches Bộ Nội vụ after it.
    ward_reports = [i for i, (r, m) in enumerate(mails) if r == city.coordinator_emails[0]
                    and m.get("X-Baocao-Kind") == "report" and m["Reply-To"] != city.coordinator_emails[0]]
    city_draft = position[("draft", city.coordinator_emails[0])]
    city_report = position[("report", ministry.coordinator_emails[0])]
    assert len(ward_reports) == len(WARDS) and max(ward_reports) < city_draft < city_report
