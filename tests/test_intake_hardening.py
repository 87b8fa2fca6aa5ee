"""Issue 17, points 3, 4, 5 and the drop folder's half of 2: intake that no default, CSV row or
dropped entry can stop or fool.

3. A public credential (the shipped token secret, an empty or short one, a demo password) is
   refused at start as soon as mail leaves the machine; loopback (the demo, these tests) keeps working.
4. A multi-unit CSV: each unit is judged on its own rows and the file's own problems, and each
   coordinator hears only about its unit.
5. The drop folder reads regular files only (never a link, a FIFO, a file over the limit), waits
   for a file to settle, tells the operator what it parked in `failed/`; a file counts from when it
   reached the folder, and the collection time is kept beside it.
"""

from __future__ import annotations

import inspect
import os
import random
import resource
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from baocao import runtime
from baocao.devservers.imapserver import DemoImapServer
from baocao.devservers.simulate import figures
from baocao.intake.channels import collect_folder
from baocao.intake.dropfolder import Changed, is_link_error, read_entry, scan
from baocao.intake.pipeline import Incoming, take_in
from baocao.intake.reader import read_submission
from baocao.intake.results import problems_for
from baocao.mail import outbox
from baocao.opening.tokens import make_token
from baocao.rules.config import (
    PUBLIC_SECRETS,
    ConfigError,
    Settings,
    SmtpConfig,
    is_loopback,
    load_config,
    refuse_public_credentials,
)
from baocao.store.db import ReceivedFile, utcnow

DEMO_SECRET = Settings().token_secret.get_secret_value()
STRONG = "k7Qw-2mZp_9xVb4Ls8Nd3Rf6Ty1Hc5Jg0"
REMOTE = "smtp.tinh-thanh.gov.vn"


# ----------------------------------------------------------------------------- 3. public credentials
def _settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


@pytest.mark.parametrize("secret", [DEMO_SECRET, "", "   ", "short-secret-1", "a" * 40])
@pytest.mark.parametrize("host", ["smtp", "imap"])
def test_a_public_empty_or_short_secret_is_refused_when_mail_leaves_the_machine(secret: str, host: str) -> None:
    settings = _settings(token_secret=secret, **{host: {"host": REMOTE, "password": "mat-khau-that-2026"}})
    with pytest.raises(ConfigError) as caught:
        refuse_public_credentials(settings, "config/settings.toml")
    message = str(caught.value)
    assert "token_secret" in message and f"{host}.host = '{REMOTE}'" in message and "BAOCAO_TOKEN_SECRET" in message
    assert message.startswith("config/settings.toml: ")
    if secret.strip():
        assert secret not in message  # the value itself is never printed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]"])
def test_the_demo_defaults_are_accepted_on_loopback(host: str) -> None:
    refuse_public_credentials(_settings(smtp={"host": host}, imap={"host": host}))
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.5", "smtp.example.vn", "127.0.0.1.nip.io", "0.0.0.0", ""])
def test_anything_but_loopback_counts_as_remote(host: str) -> None:
    assert not is_loopback(host)


def test_a_remote_host_with_a_strong_secret_and_real_passwords_is_accepted() -> None:
    settings = _settings(token_secret=STRONG, smtp={"host": REMOTE, "username": "baocao", "password": "Smtp#2026-that"},
                         imap={"host": "imap.tinh-thanh.gov.vn", "password": "Imap#2026-that"})
    refuse_public_credentials(settings)
    # An SMTP relay that takes no login needs no password.
    refuse_public_credentials(_settings(token_secret=STRONG, smtp={"host": REMOTE}))


@pytest.mark.parametrize(("server", "password"), [("imap", "imap-secret-42"), ("imap", ""),
                                                  ("smtp", DEMO_SECRET), ("smtp", "")])
def test_a_demo_or_missing_password_for_a_remote_server_is_refused(server: str, password: str) -> None:
    values: dict[str, Any] = {"host": REMOTE, "password": password}
    if server == "smtp":
        values["username"] = "baocao"
    with pytest.raises(ConfigError) as caught:
        refuse_public_credentials(_settings(token_secret=STRONG, **{server: values}))
    message = str(caught.value)
    assert f"{server}.password" in message and f"BAOCAO_{server.upper()}__PASSWORD" in message
    assert "token_secret" not in message and STRONG not in message
    if password:
        assert password not in message


def test_every_credential_published_with_the_code_is_on_the_public_list() -> None:
    assert DEMO_SECRET in PUBLIC_SECRETS
    assert inspect.signature(DemoImapServer).parameters["password"].default in PUBLIC_SECRETS
    assert load_config(env={}).settings.token_secret.get_secret_value() in PUBLIC_SECRETS  # settings.toml's
    assert SmtpConfig().password.get_secret_value() == ""


def test_config_check_refuses_the_demo_secret_with_a_remote_mail_server_and_never_prints_it() -> None:
    from flows.cli import app

    runner = CliRunner()
    refused = runner.invoke(app, ["config", "check", "--year", "2026"],
                            env={"COLUMNS": "250", "BAOCAO_SMTP__HOST": REMOTE, "BAOCAO_TOKEN_SECRET": DEMO_SECRET})
    assert refused.exit_code == 2
    assert "token_secret" in refused.output and REMOTE in refused.output and DEMO_SECRET not in refused.output
    fine = runner.invoke(app, ["config", "check", "--year", "2026"],
                         env={"COLUMNS": "250", "BAOCAO_SMTP__HOST": REMOTE, "BAOCAO_TOKEN_SECRET": STRONG})
    assert fine.exit_code == 0, fine.output
    assert "configuration OK" in fine.output and STRONG not in fine.output


def test_every_flow_reads_its_configuration_through_the_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAOCAO_IMAP__HOST", "imap.tinh-thanh.gov.vn")
    monkeypatch.setenv("BAOCAO_IMAP__PASSWORD", "Imap#2026-that")
    monkeypatch.setenv("BAOCAO_TOKEN_SECRET", "ngan")
    with pytest.raises(ConfigError, match="token_secret is too short"):
        runtime.config()
    monkeypatch.setenv("BAOCAO_TOKEN_SECRET", STRONG)
    assert runtime.config().settings.imap.host == "imap.tinh-thanh.gov.vn"


@pytest.mark.slow
def test_the_collect_flow_refuses_to_start_with_the_demo_secret_on_a_remote_server(
        prefect_api: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flows.collect import collect

    monkeypatch.setenv("BAOCAO_SMTP__HOST", REMOTE)
    monkeypatch.setenv("BAOCAO_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    monkeypatch.setenv("BAOCAO_DROP_FOLDER", str(tmp_path / "dropbox"))
    monkeypatch.delenv("BAOCAO_TOKEN_SECRET", raising=False)
    runtime.reset()
    try:
        state = collect(return_state=True)
    finally:
        runtime.reset()
    assert state.is_failed()
    with pytest.raises(ConfigError) as caught:
        state.result()
    assert "token_secret is the public demo value" in str(caught.value) and DEMO_SECRET not in str(caught.value)
    assert not (tmp_path / "never.db").exists() and not (tmp_path / "dropbox").exists()  # nothing was touched


# ----------------------------------------------------------------------------- 4. multi-unit CSV
def _csv_rows(unit: str, values: dict[str, int], token: str | None = None) -> list[str]:
    return [f"{unit},2026-H1,{code},{value},{token or ''}" for code, value in values.items()]


def test_a_csv_rows_problems_belong_to_its_unit_and_period_and_the_header_to_the_file(cfg: Any) -> None:
    values = figures(cfg.catalog, random.Random(1)).values
    bad_code = next(iter(values))
    rows = (_csv_rows("A1", values) + _csv_rows("B2", values)
            + [f"C3,2026-H1,{bad_code},mười hai,", "B2,2026-H7,TIN_BAI,1,"])
    data = "\n".join(["ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri,ma_xac_thuc", *rows]).encode()
    data = data.replace(f"B2,2026-H1,{bad_code},".encode(), f"B2,2026-H1,{bad_code},-5".encode(), 1)
    subs, problems = read_submission(data, "tong-hop.csv", cfg.catalog)
    assert sorted((s.unit_code, s.period) for s in subs) == [("A1", "2026-H1"), ("B2", "2026-H1"), ("C3", "2026-H1")]
    errors = [(p.unit, p.period, p.rule) for p in problems if p.severity == "error"]
    assert ("B2", "2026-H1", "non_negative_integer") in errors and ("C3", "2026-H1", "non_negative_integer") in errors
    assert ("B2", None, "bad_period") in errors  # its period is unreadable: every period of B2 in the file
    assert problems_for(problems, "A1", "2026-H1") == []
    assert {p.unit for p in problems_for(problems, "B2", "2026-H1")} == {"B2"}
    assert all("C3" not in p.message_vi for p in problems_for(problems, "B2", "2026-H1"))

    _, header = read_submission(b"ma_don_vi,ky\nA1,2026-H1\n", "tong-hop.csv", cfg.catalog)
    assert [(p.unit, p.rule) for p in header] == [(None, "csv_missing_columns")]
    assert problems_for(header, "A1", "2026-H1") == header  # the file's problem is everyone's


@pytest.mark.slow
def test_one_bad_row_of_a_multi_unit_csv_rejects_its_unit_only_and_each_coordinator_hears_of_its_own(app: Any) -> None:
    from tests.support.tuky import DEPARTMENTS, ON_TIME, open_tu_ky

    tu_ky = open_tu_ky(app)
    cfg = tu_ky.cfg
    secret = cfg.settings.token_secret.get_secret_value()
    values = figures(cfg.catalog, random.Random(7)).values
    bad_unit, bad_code = DEPARTMENTS[1], next(iter(values))
    rows = []
    for unit in DEPARTMENTS:
        token = make_token(secret, unit, "2026-H1", cfg.settings.form_version)
        own = dict(values) | ({bad_code: -12} if unit == bad_unit else {})
        rows += [r.replace(",-12,", ",âm mười hai,") for r in _csv_rows(unit, own, token)]
    data = "\n".join(["ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri,ma_xac_thuc", *rows]).encode()

    outcome = take_in(app.db, cfg, Incoming(data, "tong-hop-tu-ky.csv", "folder", None, ON_TIME))

    by_unit = {u.unit: u for u in outcome.units}
    assert {u: by_unit[u].status for u in DEPARTMENTS} == {u: "accepted" if u != bad_unit else "rejected"
                                                          for u in DEPARTMENTS}
    assert [p.rule for p in by_unit[bad_unit].problems if p.severity == "error"] == ["non_negative_integer"]
    outbox.deliver(app.db, cfg.settings, kinds=["receipt", "problems"])
    replies = tu_ky.replies()
    assert sorted(r.rcpt_tos for r in replies) == sorted((tu_ky.coordinator(u),) for u in DEPARTMENTS)
    bad_line = next(i for i, r in enumerate(rows, start=2) if r.startswith(f"{bad_unit},2026-H1,{bad_code},"))
    for reply in replies:
        text = reply.message.get_body(("plain",)).get_content()
        mine = reply.rcpt_tos == (tu_ky.coordinator(bad_unit),)
        assert (f"dòng {bad_line}" in text) is mine, reply.rcpt_tos
        assert (reply.message["X-Baocao-Kind"] == "problems") is mine


# ----------------------------------------------------------------------------- 5. the drop folder
def _folder_cfg(app: Any, **settings: Any) -> Any:
    cfg = app.cfg
    return type(cfg)(cfg.directory, cfg.settings.model_copy(update=settings), cfg.hierarchy, cfg.catalog,
                     cfg.calendar, cfg.plans)


def _stored(app: Any) -> list[tuple[str, int, bytes]]:
    with app.db.session() as s:
        return [tuple(r) for r in s.execute(select(ReceivedFile.filename, ReceivedFile.size, ReceivedFile.content))]


@pytest.mark.slow
def test_a_symlink_or_a_fifo_in_the_drop_folder_is_parked_unread(app: Any, tmp_path: Path) -> None:
    folder = Path(app.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    secret = tmp_path / "khong-duoc-doc.txt"
    secret.write_bytes(b"ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri\nX11074,2026-H1,TIN_BAI,1\nBI-MAT-CUA-MAY-CHU\n")
    (folder / "bao-cao.csv").symlink_to(secret)
    os.mkfifo(folder / "ong-dan.csv")  # opening it would block the collector for good
    (folder / "thu-muc.xlsx").mkdir()

    report = collect_folder(app.db, app.cfg)

    assert _stored(app) == []  # nothing was read, so nothing of the target reached the database
    assert secret.exists() and not (folder / "bao-cao.csv").is_symlink()
    parked = {p.name: p for p in report.parked}
    assert set(parked) == {"bao-cao.csv", "ong-dan.csv", "thu-muc.xlsx"}
    assert (folder / parked["bao-cao.csv"].moved_to).is_symlink()  # the link itself was moved, not its target
    assert "liên kết (symlink)" in parked["bao-cao.csv"].reason_vi
    assert "không phải tệp thông thường" in parked["ong-dan.csv"].reason_vi
    assert [o.status for _, o in report.outcomes] == ["rejected"] * 3
    assert "bao-cao.csv" in report.summary and "failed" in report.summary and "3 tệp" in report.summary


@pytest.mark.slow
def test_a_file_over_the_limit_is_refused_from_its_size_without_reading_it(app: Any) -> None:
    folder = Path(app.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    big = folder / "ban-quet.xlsx"
    with big.open("wb") as f:  # 1.2 GB, sparse: no disk, but reading it would take 1.2 GB of memory
        f.truncate(1_200_000_000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    report = collect_folder(app.db, app.cfg)

    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 100, f"{grown_mib:.0f} MiB more: the file was read"
    assert _stored(app) == []  # a file that was read would be recorded (name, size, checksum)
    (parked,) = report.parked
    assert parked.size == 1_200_000_000 and "1.200.000.000 byte" in parked.reason_vi
    assert [p.rule for _, o in report.outcomes for u in o.units for p in u.problems] == ["file_too_large"]


@pytest.mark.slow
def test_a_file_still_being_written_waits_for_the_next_run_instead_of_being_parked(app: Any) -> None:
    from tests.support.tuky import ON_TIME, open_tu_ky

    tu_ky = open_tu_ky(app)
    data, _ = tu_ky.fill("X11074-VP")
    folder = Path(app.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "x11074-vp.xlsx"
    path.write_bytes(data[: len(data) // 2])  # the copy is half done

    waiting = collect_folder(app.db, _folder_cfg(app, drop_settle_seconds=30), as_of=ON_TIME)

    assert waiting.waiting == ["x11074-vp.xlsx"] and waiting.outcomes == [] and waiting.parked == []
    assert path.exists() and not (folder / "failed").exists()
    with path.open("ab") as f:  # the copy completes
        f.write(data[len(data) // 2:])
    done = collect_folder(app.db, _folder_cfg(app, drop_settle_seconds=0), as_of=ON_TIME)  # ... and has settled
    assert [o.status for _, o in done.outcomes] == ["accepted"] and done.summary == ""
    assert [p.parent.name for p in folder.rglob("*.xlsx")] == ["done"]


def test_a_file_replaced_or_grown_between_listing_and_reading_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"x" * 100)
    (tmp_path / "b.csv").write_bytes(b"y" * 100)
    (tmp_path / ".c.csv").write_bytes(b"z")  # written under a temporary name: not looked at
    (tmp_path / "d.csv.part").write_bytes(b"z")
    found = scan(tmp_path, settle_seconds=0, max_bytes=1_000)
    assert [e.path.name for e in found.ready] == ["a.csv", "b.csv"]
    a, b = found.ready
    with (tmp_path / "a.csv").open("ab") as f:
        f.write(b"more")
    with pytest.raises(Changed):
        read_entry(a)
    (tmp_path / "b.csv").unlink()
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(OSError) as caught:
        read_entry(b)
    assert is_link_error(caught.value)
    settling = scan(tmp_path, settle_seconds=60, max_bytes=1_000, now=time.time())
    assert settling.ready == [] and settling.waiting == ["a.csv"]  # b.csv is now a link: refused
    assert [r.rule for r in settling.refused] == ["symlink"]


@pytest.mark.slow
def test_a_dropped_file_counts_from_its_arrival_and_the_collection_time_is_kept_beside_it(app: Any) -> None:
    folder = Path(app.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "so-lieu.csv"
    before = utcnow().replace(microsecond=0)
    path.write_bytes(b"ma_don_vi,ky\n")
    old = time.time() - 3 * 86400
    os.utime(path, (old, old))  # copied with its old time kept (cp -p): it did not reach us 3 days ago
    collected = utcnow() + timedelta(hours=6)  # the collector was down; it runs six hours later

    collect_folder(app.db, app.cfg, as_of=collected)

    with app.db.session() as s:
        (row,) = s.scalars(select(ReceivedFile))
        assert before - timedelta(seconds=2) <= row.received_at <= utcnow()
        assert row.collected_at == collected


def test_parked_files_are_summed_up_for_the_operator(tmp_path: Path) -> None:
    from baocao.intake.dropfolder import ParkedFile, parked_summary

    assert parked_summary([], tmp_path) == ""
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "20261204-cu.xlsx").write_bytes(b"x")
    (tmp_path / "failed" / "20261204-moi.xlsx").write_bytes(b"x")
    text = parked_summary([ParkedFile("moi|1.xlsx", "failed/20261204-moi.xlsx", "Tệp «moi.xlsx»: tệp rỗng.")],
                          tmp_path)
    assert "| moi\\|1.xlsx | failed/20261204-moi.xlsx | Tệp «moi.xlsx»: tệp rỗng. |" in text
    assert "hiện có 2 tệp" in text
    assert parked_summary([], tmp_path).count("|") == 0 and "hiện có 2 tệp" in parked_summary([], tmp_path)


def test_the_collect_flow_shows_parked_files_to_the_operator_as_an_artifact(app: Any, prefect_api: Any,
                                                                           tmp_path: Path) -> None:
    """Issue 17.5: files parked in failed/ are named in the run's log and in an artifact in the UI."""
    from prefect.client.orchestration import get_client

    from flows.collect import DROP_FOLDER_ARTIFACT, collect

    folder = Path(app.cfg.settings.drop_folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "ngoai-thu-muc.csv"
    target.write_text("ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri\n", encoding="utf-8")
    (folder / "lien-ket.csv").symlink_to(target)

    state = collect(mailbox=False, return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json={
            "limit": 10, "offset": 0, "sort": "CREATED_DESC",
            "artifacts": {"key": {"any_": [DROP_FOLDER_ARTIFACT]}, "flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}})
        response.raise_for_status()
        (found,) = response.json()
    assert "lien-ket.csv" in found["data"] and "failed" in found["data"]
