"""The consolidate flow end to end: real Prefect API, SQLite, a real SMTP server on loopback.

A cycle is opened with the open-period flow, the units fill the forms they were mailed (as
:mod:`baocao.devservers.simulate` does), the files go through the intake, and the consolidate flow sends the
reports up. What reaches the SMTP server, what `baocao figures` prints, what the XLSX appendix and
the Word report say are checked against sums computed here from the numbers the units typed in.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from tests.support.issuing import direct_config, draft_mails, issue, signed_pdf
from tests.support.wards import (
    DEPT_DEADLINE,
    DEPTS,
    DOCX_MIME,
    PERIOD,
    WARD,
    WARD_DUE,
    XLSX_MIME,
    at,
    attachments,
    cli,
    count_header,
    deadlines,
    docx_text,
    draw,
    exempt,
    forms_received,
    open_ward,
    ratio,
    report_mails,
    reports,
    submit,
    xlsx_totals,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

# ----------------------------------------------------------------------------- the ward (nhi-chieu plan)
def test_ward_draft_goes_to_the_ward_and_the_issued_report_reaches_the_city_once(app):
    from flows.consolidate import consolidate

    h = app.cfg.hierarchy
    _, forms, typed = open_ward(app)
    submit(app, forms["X10714-VHXH"], typed["X10714-VHXH"], at(app.cfg, date(2026, 5, 29)))
    submit(app, forms["X10714-TTDVSNC"], typed["X10714-TTDVSNC"], at(app.cfg, DEPT_DEADLINE, 16))
    submit(app, forms["X10714-KT"], typed["X10714-KT"], at(app.cfg, WARD_DUE, 9))  # late
    exempt(app, "X10714-TTHCC")
    # X10714-VP never reports.

    # On the departments' deadline nothing is due: one department is out and the ward's time has not come.
    assert consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, DEPT_DEADLINE, 17)) == {
        f"{PERIOD}/nhi-chieu/{WARD}": {"reports": [], "sent": 0, "failed": {}}}
    assert report_mails(app) == []

    result = consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, WARD_DUE, 17))
    assert result[f"{PERIOD}/nhi-chieu/{WARD}"] == {"reports": [WARD], "sent": 1, "failed": {}}
    city, ward = h["T31"], h[WARD]
    # The plan reviews the ward's report: the draft (Word + appendix) goes to the ward, nothing to the city yet.
    assert report_mails(app) == []
    (draft,) = draft_mails(app, WARD)
    assert set(draft.rcpt_tos) == {*ward.coordinator_emails, *ward.head_emails}
    stem = f"6 tháng đầu năm 2026 - {ward.name}"
    drafted = attachments(draft)
    assert drafted[f"Dự thảo Báo cáo {stem}.docx"][0] == DOCX_MIME
    assert drafted[f"Phụ lục số liệu {stem}.xlsx"][0] == XLSX_MIME

    # The ward numbers and signs it the same day; the report goes up once, to the city.
    pdf = signed_pdf(app, WARD, "15/BC-UBND")
    issue(app, WARD, PERIOD, "nhi-chieu", number="15/BC-UBND", issued_on=WARD_DUE, at=at(app.cfg, WARD_DUE, 18),
          pdf=pdf)
    (mail,) = report_mails(app)
    assert set(mail.rcpt_tos) == {*city.coordinator_emails, *city.head_emails, *ward.coordinator_emails}
    assert city.coordinator_emails[0] in mail.message["To"]
    assert ward.coordinator_emails[0] in mail.message["Cc"]
    assert ward.coordinator_emails[0] not in mail.message["To"]
    subject = mail.message["Subject"]
    assert subject.startswith("Báo cáo số 15/BC-UBND ngày 03/6/2026 của Ủy ban nhân dân phường Nhị Chiểu")
    assert "kết quả thực hiện Kết luận số 226-KL/TW 6 tháng đầu năm 2026" in subject
    assert PERIOD not in subject and "Đính chính" not in subject
    files = attachments(mail)
    assert set(files) == {f"Báo cáo {stem}.pdf", f"Phụ lục số liệu {stem}.xlsx"}
    assert files[f"Báo cáo {stem}.pdf"] == ("application/pdf", pdf)
    assert files[f"Phụ lục số liệu {stem}.xlsx"][0] == XLSX_MIME

    (rep,) = reports(app)
    assert (rep.unit_code, rep.version, rep.correction, rep.status) == (WARD, 1, False, "issued")
    from baocao.consolidation.reporting import report_files

    docx_bytes, xlsx_bytes = report_files(app.db, rep.id)
    assert docx_bytes == drafted[f"Dự thảo Báo cáo {stem}.docx"][1]
    assert xlsx_bytes == drafted[f"Phụ lục số liệu {stem}.xlsx"][1]
    rows, _ = xlsx_totals(files[f"Phụ lục số liệu {stem}.xlsx"][1])  # the issued appendix: the same figures
    assert rows == xlsx_totals(xlsx_bytes)[0]
    c = rep.figures["completeness"]
    assert (c["expected"], c["accepted"], c["on_time"], c["exempt"]) == (4, 3, 2, 1)
    assert rep.figures["missing"] == ["X10714-VP"]
    assert set(rep.figures["late"]) == {"X10714-VP", "X10714-KT"}
    text = docx_text(docx_bytes)
    assert f"Chưa gửi báo cáo (1/4 phòng, đơn vị): {h['X10714-VP'].name}." in text
    assert "Đã nhận báo cáo của 3/4 phòng, đơn vị; gửi đúng hạn: 2/4 phòng, đơn vị" in text
    assert "1 phòng, đơn vị được miễn báo cáo" in text

    # Running again, the same day or later, reports nothing twice and sends no second draft.
    for day in (WARD_DUE, date(2026, 6, 9)):
        again = consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, day, 18))
        assert again[f"{PERIOD}/nhi-chieu/{WARD}"]["reports"] == []
    assert len(report_mails(app)) == 1 and len(reports(app)) == 1 and len(draft_mails(app)) == 1


def test_a_direct_plan_sends_the_report_up_as_made_with_word_xlsx_and_chart(app, monkeypatch):
    """`[report] issue = "direct"` (an internal summary): no draft, the report goes up as made, answered."""
    from baocao.store.db import Request
    from flows.consolidate import consolidate

    direct_config(app, monkeypatch, "nhi-chieu")
    h = app.cfg.hierarchy
    city, ward = h["T31"], h[WARD]
    _, forms, typed = open_ward(app)
    for unit in DEPTS:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 29)))
    result = consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 1), 10))
    assert result[f"{PERIOD}/nhi-chieu/{WARD}"] == {"reports": [WARD], "sent": 1, "failed": {}}
    assert draft_mails(app) == []
    (mail,) = report_mails(app)
    assert set(mail.rcpt_tos) == {*city.coordinator_emails, *city.head_emails, *ward.coordinator_emails}
    assert mail.message["Reply-To"] == ward.coordinator_emails[0]  # a reply reaches the ward, not the robot
    assert mail.message["Subject"] == ("Báo cáo kết quả thực hiện Kết luận số 226-KL/TW 6 tháng đầu năm 2026 - "
                                       "Ủy ban nhân dân phường Nhị Chiểu")
    stem = f"6 tháng đầu năm 2026 - {ward.name}"
    files = attachments(mail)
    assert files[f"Báo cáo {stem}.docx"][0] == DOCX_MIME
    assert files[f"Phụ lục số liệu {stem}.xlsx"][0] == XLSX_MIME
    assert "DỰ THẢO" not in docx_text(files[f"Báo cáo {stem}.docx"][1])
    html = mail.message.get_body(("html",)).get_content()
    assert 'src="cid:chart"' in html
    (chart,) = [p for p in mail.message.walk() if p["Content-ID"] == "<chart>"]
    assert chart.get_content_type() == "image/png" and chart.get_content().startswith(b"\x89PNG")
    assert chart.get_content_disposition() == "inline"
    (rep,) = reports(app)
    assert (rep.status, rep.number, rep.issued_pdf_blob_id) == ("direct", None, None)
    with app.db.session() as s:
        req = s.scalar(select(Request).where(Request.unit_code == WARD, Request.role == "consolidate"))
        assert (req.state, req.on_time) == ("accepted", True) and req.accepted_at is not None
    # Nothing to issue: `baocao report issue` says so, in Vietnamese.
    res = cli("report", "issue", "--unit", WARD, "--period", PERIOD, "--plan", "nhi-chieu",
              "--file", str(_pdf_file(app)), "--number", "12/BC-UBND", "--date", "2026-06-03")
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and ("báo cáo 6 tháng đầu năm 2026 của Ủy ban nhân dân phường Nhị Chiểu được gửi "
                                   "thẳng lên cấp trên ngay khi lập, không qua bước ký ban hành") in said
    assert len(report_mails(app)) == 1


def _pdf_file(app):  # noqa: ANN001, ANN202
    path = app.tmp_path / "bao-cao-da-ky.pdf"
    path.write_bytes(signed_pdf(app, WARD, "12/BC-UBND"))
    return path


def test_all_children_in_or_exempt_before_the_time_consolidates_early(app):
    from flows.consolidate import consolidate

    _, forms, typed = open_ward(app)
    for unit in DEPTS[:4]:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 28)))
    early = at(app.cfg, date(2026, 5, 29), 17)
    assert consolidate(period=PERIOD, plan="nhi-chieu", as_of=early)[f"{PERIOD}/nhi-chieu/{WARD}"]["reports"] == []
    exempt(app, DEPTS[4])
    # Four are in and the fifth is exempt on 01/6: the ward reports then, not on 03/6 (whichever first).
    result = consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 1), 10))
    assert result[f"{PERIOD}/nhi-chieu/{WARD}"]["reports"] == [WARD]
    (draft,) = draft_mails(app)
    assert draft.message["X-Baocao-Unit"] == WARD
    (rep,) = reports(app)
    c = rep.figures["completeness"]
    assert (c["expected"], c["accepted"], c["on_time"], c["exempt"]) == (4, 4, 4, 1)
    assert rep.figures["missing"] == [] and rep.figures["late"] == []
    for ind in app.cfg.catalog.counts:
        assert rep.figures["totals"][ind.code] == sum(typed[u].values[ind.code] for u in DEPTS[:4])
        assert rep.figures["covered"][ind.code] == 4


def test_late_child_after_the_issued_report_then_resend_makes_a_correction_issued_as_dinh_chinh(app):
    from flows.consolidate import consolidate

    h = app.cfg.hierarchy
    _, forms, typed = open_ward(app)
    early = [u for u in DEPTS if u != "X10714-VP"]
    for unit in early:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 29)))
    consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, WARD_DUE, 17))
    issue(app, WARD, PERIOD, "nhi-chieu", number="15/BC-UBND", issued_on=WARD_DUE, at=at(app.cfg, WARD_DUE, 18))
    (v1,) = reports(app)
    assert v1.figures["missing"] == ["X10714-VP"]

    # The missing department sends its form the day after the report went up (before the lock).
    submit(app, forms["X10714-VP"], typed["X10714-VP"], at(app.cfg, date(2026, 6, 4), 9))
    refused = cli("consolidate", "--period", PERIOD, "--resend")
    assert refused.exit_code == 2 and len(reports(app)) == 1
    run = cli("consolidate", "--period", PERIOD, "--plan", "nhi-chieu", "--unit", WARD, "--resend",
              "--as-of", "2026-06-04T17:00")
    assert run.exit_code == 0, run.output

    first, second = reports(app)
    assert (first.id, first.version, first.correction) == (v1.id, 1, False)
    assert (second.unit_code, second.version, second.correction) == (WARD, 2, True)
    assert second.figures["missing"] == [] and "X10714-VP" in second.figures["late"]
    assert second.figures["completeness"]["accepted"] == 5
    for ind in app.cfg.catalog.counts:
        assert second.figures["totals"][ind.code] == sum(typed[u].values[ind.code] for u in DEPTS)
        assert second.figures["totals"][ind.code] == (first.figures["totals"][ind.code]
                                                       + typed["X10714-VP"].values[ind.code])
    online = second.figures["derived"]["TL_HN_TRUC_TUYEN"]["value"]
    assert online == pytest.approx(ratio(typed, DEPTS, "HN_TRUC_TUYEN", "HN_TONG"))

    # The correction is a new draft for the ward, marked so; nothing new reaches the city until it is issued.
    assert len(report_mails(app)) == 1
    first_draft, correction = draft_mails(app, WARD)
    assert "đính chính" in correction.message["Subject"] and "đính chính" not in first_draft.message["Subject"]
    stem = f"6 tháng đầu năm 2026 - {h[WARD].name}"
    text = docx_text(attachments(correction)[f"Dự thảo Báo cáo {stem}.docx"][1])
    assert "đính chính, thay thế báo cáo phiên bản số 1" in text
    assert "Chưa gửi báo cáo" not in text and "Đã nhận báo cáo của 5/5 phòng, đơn vị" in text
    # The first version is issued already: its number stands, the correction is issued under a new one.
    issue(app, WARD, PERIOD, "nhi-chieu", number="16/BC-UBND", issued_on=date(2026, 6, 4),
          at=at(app.cfg, date(2026, 6, 4), 18))
    assert [r.status for r in reports(app)] == ["issued", "issued"]

    mails = report_mails(app)
    assert len(mails) == 2
    subject = mails[1].message["Subject"]
    assert subject.startswith("[Đính chính] Báo cáo số 16/BC-UBND ngày 04/6/2026 của Ủy ban nhân dân phường Nhị Chiểu")
    assert "Đính chính" not in mails[0].message["Subject"]
    assert "ĐÍNH CHÍNH: báo cáo này đính chính" in mails[1].message.get_body(("plain",)).get_content()
    assert set(mails[1].rcpt_tos) == set(mails[0].rcpt_tos)
    files = attachments(mails[1])
    assert set(files) == {f"Báo cáo {stem}.pdf", f"Phụ lục số liệu {stem}.xlsx"}
    rows, _ = xlsx_totals(files[f"Phụ lục số liệu {stem}.xlsx"][1])
    hn = count_header(app.cfg.catalog["HN_TONG"])
    assert rows[WARD][hn] == second.figures["totals"]["HN_TONG"]
    assert rows["X10714-VP"][hn] == typed["X10714-VP"].values["HN_TONG"]

    # The scheduled run afterwards does not send a third version.
    again = consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 5), 17))
    assert again[f"{PERIOD}/nhi-chieu/{WARD}"]["reports"] == [] and len(report_mails(app)) == 2
    assert len(draft_mails(app)) == 2


def test_report_command_writes_the_files_and_sends_nothing(app, tmp_path):
    from baocao.store.db import OutboxMessage

    _, forms, typed = open_ward(app)
    for unit in DEPTS[:3]:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 29)))
    with app.db.session() as s:
        outbox_before = len(list(s.scalars(select(OutboxMessage))))
    delivered_before = len(app.smtp.messages)

    out = tmp_path / "bao-cao"
    run = cli("report", "--unit", WARD, "--period", PERIOD, "--plan", "nhi-chieu", "-o", str(out),
              "--as-of", "2026-06-03T17:00")
    assert run.exit_code == 0, run.output
    stem = f"bao-cao-x10714-{PERIOD.lower()}"
    names = {p.name for p in out.iterdir()}
    assert names == {f"{stem}.docx", f"{stem}-phu-luc.xlsx", f"{stem}-email.html", f"{stem}-email.txt",
                     f"{stem}-bieu-do.png"}
    text = docx_text((out / f"{stem}.docx").read_bytes())
    assert "BÁO CÁO" in text and "Đã nhận báo cáo của 3/5 phòng, đơn vị" in text
    rows, _ = xlsx_totals((out / f"{stem}-phu-luc.xlsx").read_bytes())
    hn = count_header(app.cfg.catalog["HN_TONG"])
    assert rows[WARD][hn] == sum(typed[u].values["HN_TONG"] for u in DEPTS[:3])
    assert 'src="cid:chart"' in (out / f"{stem}-email.html").read_text(encoding="utf-8")

    # Nothing sent, nothing queued, no report version kept.
    assert len(app.smtp.messages) == delivered_before
    with app.db.session() as s:
        assert len(list(s.scalars(select(OutboxMessage)))) == outbox_before
    assert reports(app) == []

    unknown = cli("report", "--unit", "X11074", "--period", PERIOD, "--plan", "nhi-chieu", "-o", str(out))
    assert unknown.exit_code == 2


@pytest.mark.slow
def test_word_report_opens_in_libreoffice_with_the_nd30_header(app, tmp_path):
    import shutil
    import subprocess

    from flows.consolidate import consolidate

    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftotext = shutil.which("pdftotext")
    if not soffice or not pdftotext:
        pytest.skip("LibreOffice (soffice) and pdftotext are needed")
    _, forms, typed = open_ward(app)
    for unit in DEPTS:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 29)))
    consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 1)))
    (draft,) = draft_mails(app, WARD)  # the Word file the ward edits, signs and prints
    docx_path = tmp_path / "report.docx"
    docx_path.write_bytes(attachments(draft)[f"Dự thảo Báo cáo 6 tháng đầu năm 2026 - {app.cfg.hierarchy[WARD].name}.docx"][1])
    profile = tmp_path / "lo-profile"  # a private profile: no clash with another running LibreOffice
    subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(docx_path)], check=True, capture_output=True, timeout=120)
    pdf = tmp_path / "report.pdf"
    assert pdf.exists() and pdf.stat().st_size > 0
    first = subprocess.run([pdftotext, "-f", "1", "-l", "1", "-layout", str(pdf), "-"], check=True,
                           capture_output=True, timeout=60).stdout.decode("utf-8")
    for line in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", "BÁO CÁO",
                 "ỦY BAN NHÂN DÂN", "PHƯỜNG NHỊ CHIỂU", "/BC-UBND", "Nhị Chiểu, ngày 01 tháng 6 năm 2026"):
        assert line in first, line


# ----------------------------------------------------------------------------- the city (national plan, root T31)
@pytest.mark.slow
def test_city_consolidation_bottom_up_with_figures_that_agree_everywhere(app, monkeypatch):
    """Hải Phòng: 114 communes (X10714 and X11074 consolidate their departments) and 2 city departments.

    The city's two reports are rendered as a national cycle's 39 are: at once, in a pool of render
    processes, a parent after its children (the other tests here render in the flow's process).
    """
    import json

    import baocao.consolidation.renderpool

    rendered_there: list[str] = []
    # A pool from two reports due (a national cycle's threshold is 4), of two processes even on one core,
    # rendering both reports in the pool's processes.
    monkeypatch.setattr(baocao.consolidation.renderpool, "PARALLEL_FROM", 2)
    monkeypatch.setattr(baocao.consolidation.renderpool, "cores", lambda: 2)
    monkeypatch.setattr(baocao.consolidation.renderpool, "HERE", 0)  # both in the pool's processes (none in this one)
    render = baocao.consolidation.renderpool.RenderPool.render

    def counted(self, cycle, unit, *args, **kwargs):  # noqa: ANN001, ANN202
        files = render(self, cycle, unit, *args, **kwargs)  # raises if the process failed
        rendered_there.append(unit)
        return files

    monkeypatch.setattr(baocao.consolidation.renderpool.RenderPool, "render", counted)

    from baocao.store.queries import find_cycle
    from baocao.tasks.taskbook import import_appendix
    from flows.consolidate import consolidate
    from flows.open_period import open_period

    cfg, h = app.cfg, app.cfg.hierarchy
    import_appendix(app.db, cfg, cfg.directory / "appendices/nhi-chieu.txt", "nhi-chieu", 2026)
    open_period(period=PERIOD, plan="national", root="T31")
    cycle = find_cycle(app.db, PERIOD, "national", "T31")
    assert cycle is not None
    forms = forms_received(app)
    leaves = [u.code for u in h.walk("T31") if not h.has_children(u.code)]
    assert sorted(forms) == sorted(leaves) and len(leaves) == 112 + 5 + 4 + 2
    dl = deadlines(app, cycle.id)
    # Communes before 05/6, the city before 12/6, departments 3 working days before their parent.
    assert (dl["X10714"], dl["X10714-KT"], dl["T31-SNV"], dl["T31"]) == (
        date(2026, 6, 5), date(2026, 6, 2), date(2026, 6, 9), date(2026, 6, 12))

    typed = draw(app, leaves, seed=31)
    # One big department with a low online share: a mean of percentages would be far off the ratio of sums.
    typed["T31-SNV"].values.update(HN_TONG=1000, HN_TRUC_TUYEN=100)
    typed["T31-SNV"].previous_year.update(HN_TONG=1100, HN_TRUC_TUYEN=100)
    communes = [u.code for u in h.children("T31") if u.level == "commune" and not h.has_children(u.code)]
    missing, exempted, late = communes[0], communes[1], communes[2:5]
    tu_ky = [c.code for c in h.children("X11074")]
    nhi_chieu = [c.code for c in h.children("X10714")]
    statuses = {"X10714-VHXH": "done", "X10714-VP": "in_progress", "X10714-KT": "not_started",
                "X10714-TTHCC": "done", "X10714-TTDVSNC": "in_progress"}

    # Tứ Kỳ's departments are all in on 01/6, before their deadline (02/6): Tứ Kỳ reports that day.
    for u in tu_ky:
        submit(app, forms[u], typed[u], at(cfg, date(2026, 6, 1)))
    first = consolidate(period=PERIOD, plan="national", root="T31", as_of=at(cfg, date(2026, 6, 1), 17))
    assert first[f"{PERIOD}/national/T31"]["reports"] == ["X11074"]
    # Its draft goes to Tứ Kỳ, which issues it the same day; the city's office has it from then on.
    assert [m.message["X-Baocao-Unit"] for m in draft_mails(app)] == ["X11074"]
    issue(app, "X11074", PERIOD, "national", number="21/BC-UBND", issued_on=date(2026, 6, 1),
          at=at(cfg, date(2026, 6, 1), 18))

    for u in nhi_chieu:  # task statuses: every task of the department gets the department's status
        when = at(cfg, date(2026, 6, 3) if u == "X10714-KT" else date(2026, 6, 2))
        submit(app, forms[u], typed[u], when, task_status={n: statuses[u] for n in range(1, 20)})
    for u in communes:
        if u == missing:
            continue
        if u == exempted:
            exempt(app, u)
            continue
        submit(app, forms[u], typed[u], at(cfg, date(2026, 6, 8) if u in late else date(2026, 6, 4)))
    for u in ("T31-SNV", "T31-VPUB"):
        submit(app, forms[u], typed[u], at(cfg, date(2026, 6, 8)))

    as_of = at(cfg, date(2026, 6, 11), 17)  # the city's time: 1 working day after 09/6 is 10/6
    result = consolidate(period=PERIOD, plan="national", root="T31", as_of=as_of)
    assert result[f"{PERIOD}/national/T31"] == {"reports": ["X10714", "T31"], "sent": 2, "failed": {}}
    # Both rendered in the pool's processes, each once (the first run's one report, X11074, was rendered
    # in-process). They render at once, the costliest first, so either may finish first.
    assert sorted(rendered_there) == ["T31", "X10714"]
    drafts = {m.message["X-Baocao-Unit"]: m for m in draft_mails(app)}
    assert sorted(drafts) == ["T31", "X10714", "X11074"]

    # The city issues its report before Nhị Chiểu does; the next run sends both up, children before parents.
    issue(app, "T31", PERIOD, "national", number="120/BC-UBND", issued_on=date(2026, 6, 11),
          at=at(cfg, date(2026, 6, 11), 17), send=False)
    issue(app, "X10714", PERIOD, "national", number="31/BC-UBND", issued_on=date(2026, 6, 11),
          at=at(cfg, date(2026, 6, 11), 17), send=False)
    sent = consolidate(period=PERIOD, plan="national", root="T31", as_of=at(cfg, date(2026, 6, 11), 18))
    assert sent[f"{PERIOD}/national/T31"] == {"reports": [], "sent": 2, "failed": {}}

    # Children before parents: Nhị Chiểu's report was delivered before the city's, whichever was issued first.
    mails = report_mails(app)
    assert [m.message["X-Baocao-Unit"] for m in mails] == ["X11074", "X10714", "T31"]
    by_unit = {r.unit_code: r for r in reports(app)}
    assert by_unit["X11074"].id < min(by_unit["X10714"].id, by_unit["T31"].id)
    city_mail = mails[2]
    assert set(city_mail.rcpt_tos) == {*h["BNV"].coordinator_emails, *h["BNV"].head_emails,
                                       *h["T31"].coordinator_emails}
    assert h["T31"].coordinator_emails[0] in city_mail.message["Cc"]
    assert "của Ủy ban nhân dân thành phố Hải Phòng" in city_mail.message["Subject"]
    for m in mails[:2]:
        assert set(h["T31"].coordinator_emails) <= set(m.rcpt_tos)

    # --- the numbers: by hand, `baocao figures`, the report kept, the XLSX appendix and the Word text
    accepted = [u for u in leaves if u not in (missing, exempted)]
    run = cli("figures", "--unit", "T31", "--period", PERIOD, "--plan", "national", "--as-of", "2026-06-11T17:00",
              "--format", "json")
    assert run.exit_code == 0, run.output
    fig = json.loads(run.stdout)
    # As kept when made, but for the city's own request: answered since, by its issued report (on time).
    assert fig == {**by_unit["T31"].figures, "own": {"state": "accepted", "on_time": True}}
    for ind in cfg.catalog.counts:
        assert fig["totals"][ind.code] == sum(typed[u].values[ind.code] for u in accepted), ind.code
        assert fig["covered"][ind.code] == len(accepted)
    online = fig["derived"]["TL_HN_TRUC_TUYEN"]
    expected_ratio = ratio(typed, accepted, "HN_TRUC_TUYEN", "HN_TONG")
    assert online["value"] == pytest.approx(expected_ratio)
    assert online["basis"] == {"numerator": sum(typed[u].values["HN_TRUC_TUYEN"] for u in accepted),
                               "denominator": sum(typed[u].values["HN_TONG"] for u in accepted),
                               "units": len(accepted)}
    children = [c for c in fig["children"] if c not in (missing, exempted)]
    child_figs = {c: json.loads(cli("figures", "--unit", c, "--period", PERIOD, "--plan", "national",
                                    "--as-of", "2026-06-11T17:00").stdout) for c in ("X10714", "X11074")}
    child_ratios = [child_figs[c]["derived"]["TL_HN_TRUC_TUYEN"]["value"] if c in child_figs
                    else typed[c].values["HN_TRUC_TUYEN"] * 100 / typed[c].values["HN_TONG"] for c in children]
    assert abs(online["value"] - sum(child_ratios) / len(child_ratios)) > 5  # not a mean of percentages
    c = fig["completeness"]
    assert (c["expected"], c["accepted"], c["exempt"]) == (len(leaves) - 1, len(accepted), 1)
    assert c["on_time"] == len(accepted) - len(late) - 1  # the late communes and X10714-KT
    assert fig["missing"] == [missing]
    assert set(fig["late"]) == {missing, *late, "X10714-KT"}
    # Nhị Chiểu issued its report on 11/6, after its deadline (05/6): answered, late.
    assert child_figs["X10714"] == {**by_unit["X10714"].figures, "own": {"state": "accepted", "on_time": False}}

    from baocao.consolidation.reporting import attachment_names

    files = attachments(city_mail)
    rows, sheets = xlsx_totals(files[attachment_names(cfg, cycle, "T31")["xlsx"]][1])
    assert set(rows) == {"T31", *(u.code for u in h.children("T31"))}  # one row per child, then the total
    total = rows["T31"]
    for ind in cfg.catalog_for("national").counts:  # the appendix words them as the cycle's plan does
        assert total[count_header(ind)] == fig["totals"][ind.code]
        assert rows["X10714"][count_header(ind)] == child_figs["X10714"]["totals"][ind.code]
    online_col = "Tỷ lệ hội nghị trực tuyến (%)"
    assert total[online_col] == pytest.approx(online["value"])
    for code, d in fig["derived"].items():
        header = d["label"] + ("" if d["kind"] == "max" else " (%)")
        assert total[header] == pytest.approx(d["value"]), code
    assert rows["X10714"][online_col] == pytest.approx(child_figs["X10714"]["derived"]["TL_HN_TRUC_TUYEN"]["value"])
    assert total["Tình hình báo cáo"] == f"{len(accepted)}/{len(leaves) - 1} đơn vị"
    listed = {r[1]: r[4] for r in sheets["Đơn vị chưa báo cáo, trễ hạn"] if r[1]}
    assert set(listed) == {missing, *late, "X10714-KT"}
    assert listed[missing] != listed[late[0]]  # not reported vs. reported late

    from baocao.rules.formatting import number_vi

    text = docx_text(attachments(drafts["T31"])[attachment_names(cfg, cycle, "T31")["draft"]][1])
    for ind in cfg.catalog.counts:
        assert f"{ind.label}: {number_vi(fig['totals'][ind.code])} {ind.unit}" in text, ind.code
    for d in fig["derived"].values():
        if d["kind"] == "ratio":
            assert f"{d['label']} đạt {number_vi(d['value'], 1)}%" in text, d["label"]
    assert f"Tỷ lệ hội nghị trực tuyến đạt {number_vi(online['value'], 1)}%" in text
    # The city counts its direct children by kind (the exempted commune not expected); its leaves in brackets.
    n_communes = sum(1 for c in h.children("T31") if c.level == "commune") - 1
    # The city's draft was made (11/6 17:00) before Nhị Chiểu issued its own report: a consolidating child
    # counts only once its issued report is in (issue 20 §1), so the draft lists it as not yet in.
    assert f"Đã nhận báo cáo của {n_communes - 2}/{n_communes} xã, phường, đặc khu và 2/2 sở, ngành" in text
    assert f"(tính đến từng cơ quan, đơn vị lập biểu: {len(accepted)}/{len(leaves) - 1} cơ quan, đơn vị đã gửi)" in text
    assert (f"Chưa gửi báo cáo (2/{n_communes} xã, phường, đặc khu): {h[missing].name}, {h['X10714'].name}."
            in text)
    assert "ỦY BAN NHÂN DÂN" in text and "THÀNH PHỐ HẢI PHÒNG" in text

    # --- the city's task table counts Nhị Chiểu's departments (task 1 is past its deadline, 10/5/2026)
    task_rows = {r[0]: r for r in sheets["Nhiệm vụ"]}
    assert set(task_rows) == set(range(1, 20))
    number, _, done, in_progress, not_started, overdue, overdue_units = task_rows[1]
    assert (done, in_progress, not_started, overdue) == (2, 2, 1, 3)
    assert set(overdue_units.split("; ")) == {h["X10714-VP"].name, h["X10714-KT"].name, h["X10714-TTDVSNC"].name}
    assert task_rows[4][2:6] == [2, 2, 1, 0]  # due 30/6: nobody is overdue yet
    # Task 6 goes to "UBND phường" itself and each department. The ward fills no form: it reports through
    # its departments (two done, two in progress, one not started), so it counts as in progress.
    assert task_rows[6][2:5] == [2, 3, 1]

    # --- running again reports nothing twice
    again = consolidate(period=PERIOD, plan="national", root="T31", as_of=at(cfg, date(2026, 6, 12), 17))
    assert again[f"{PERIOD}/national/T31"]["reports"] == []
    assert len(report_mails(app)) == 3 and len(reports(app)) == 3
