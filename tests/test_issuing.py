"""Issuing a reviewed report (issue 20 §1): draft to the unit, the signed PDF back by mail or CLI, then up.

Real Prefect API, SQLite, the built-in SMTP server and a real IMAP mailbox (pymap); the signed PDFs are made
by baocao.devservers.signedpdf as the demo's offices make them.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from baocao.devservers.signedpdf import make_pdf, signed_report_pdf
from tests.support.issuing import reply_with_pdf
from tests.support.wards import (
    DEPTS,
    PERIOD,
    WARD,
    XLSX_MIME,
    at,
    attachments,
    cli,
    open_ward,
    report_mails,
    reports,
    submit,
)

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


def _ward_draft(app):  # noqa: ANN001, ANN202
    """The ward's departments all report on time; the consolidate flow makes the ward's draft."""
    from flows.consolidate import consolidate

    _, forms, typed = open_ward(app)
    for unit in DEPTS:
        submit(app, forms[unit], typed[unit], at(app.cfg, date(2026, 5, 28)))
    consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 1), 10))
    (draft,) = [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "draft"]
    return draft


def _reply(app, draft, files: list[tuple[str, bytes]], text: str, subject: str | None = None) -> None:  # noqa: ANN001
    """The ward's coordinator answers the draft's mail on 04/6, as a mail client writes it."""
    reply_with_pdf(app, draft, files, text, at=at(app.cfg, date(2026, 6, 4), 9), subject=subject)


def _collect(app):  # noqa: ANN001, ANN202
    from flows.collect import collect

    return collect(as_of=at(app.cfg, date(2026, 6, 4), 10))


def test_review_draft_to_the_unit_then_signed_pdf_by_mail_goes_up_with_reply_to_the_unit(app):
    from flows.consolidate import consolidate

    h = app.cfg.hierarchy
    ward, city = h[WARD], h["T31"]
    draft = _ward_draft(app)
    # The draft goes to the ward itself, not to the city; nothing reaches the city yet.
    assert set(draft.rcpt_tos) == {*ward.coordinator_emails, *ward.head_emails}
    assert not set(draft.rcpt_tos) & {*city.coordinator_emails, *city.head_emails}
    assert report_mails(app) == []
    files = attachments(draft)
    (docx_name,) = [n for n in files if n.endswith(".docx")]
    assert docx_name == "Dự thảo Báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.docx"
    from tests.support.wards import docx_text

    assert "DỰ THẢO" in docx_text(files[docx_name][1])
    body = draft.message.get_body(("plain",)).get_content()
    assert "tô vàng" in body and app.cfg.settings.reply_to in body and "Số: 123/" in body
    (rep,) = reports(app)
    assert rep.status == "draft"

    pdf = signed_report_pdf(["ỦY BAN NHÂN DÂN PHƯỜNG NHỊ CHIỂU", "Số: 123/BC-UBND", "BÁO CÁO"],
                            "Nguyễn Văn A, Chủ tịch UBND phường Nhị Chiểu", "UBND phường Nhị Chiểu")
    _reply(app, draft, [("bao-cao-da-ky.pdf", pdf)], "Gửi bản đã ký. Số: 123/BC-UBND, ngày 03/6/2026")
    _collect(app)
    (rep,) = reports(app)
    assert (rep.status, rep.number, rep.issued_on, rep.signature) == ("issued", "123/BC-UBND", date(2026, 6, 3), "valid")
    assert "Nguyễn Văn A" in rep.signer
    from baocao.store.db import Request

    with app.db.session() as s:
        req = s.scalar(select(Request).where(Request.unit_code == WARD, Request.role == "consolidate"))
        assert (req.state, req.on_time) == ("accepted", True)
    (receipt,) = [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "receipt"
                  and "123/BC-UBND" in m.message["Subject"]]
    assert "hợp lệ" in receipt.message.get_body(("plain",)).get_content()

    consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 4), 17))
    (mail,) = report_mails(app)
    assert set(mail.rcpt_tos) >= {*city.coordinator_emails}
    assert mail.message["Reply-To"] == ward.coordinator_emails[0]
    assert "[" not in mail.message["Subject"] and "123/BC-UBND" in mail.message["Subject"]
    got = attachments(mail)
    assert got["Báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.pdf"] == ("application/pdf", pdf)
    xlsx = got["Phụ lục số liệu 6 tháng đầu năm 2026 - Phường Nhị Chiểu.xlsx"]
    assert xlsx[0] == XLSX_MIME
    import io

    from openpyxl import load_workbook

    line = load_workbook(io.BytesIO(xlsx[1])).worksheets[0]["A3"].value
    assert line.startswith("(Kèm theo Báo cáo số 123/BC-UBND ngày 03/6/2026 của Ủy ban nhân dân phường Nhị Chiểu")
    text = mail.message.get_body(("plain",)).get_content()
    assert "Kính gửi: Ủy ban nhân dân thành phố Hải Phòng" in text


def test_unsigned_tampered_bad_token_and_missing_number(app):
    draft = _ward_draft(app)
    # Missing number: a problems reply naming the field; nothing issued.
    _reply(app, draft, [("bc.pdf", make_pdf(["BÁO CÁO"]))], "Gửi bản đã ký.")
    # A forged token: refused.
    _reply(app, draft, [("bc.pdf", make_pdf(["BÁO CÁO"]))], "Số: 5/BC-UBND ngày 03/6/2026",
           subject="Re: Dự thảo (mã bc-1-aaaaaaaaaaaaaaaaaaaaaaaaaa)")
    _collect(app)
    problems = [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "problems"]
    texts = " ".join(m.message.get_body(("plain",)).get_content() for m in problems)
    assert "thiếu số của báo cáo" in texts and "không đúng" in texts
    (rep,) = reports(app)
    assert rep.status == "draft"
    # Both refused mails are kept whole, as received, with why (nothing that reached us is lost).
    from baocao.store.db import ProcessedMessage

    with app.db.reading() as s:
        kept = [m for m in s.scalars(select(ProcessedMessage)) if m.problem]
    assert len(kept) == 2 and all(m.raw and b"bc.pdf" in m.raw for m in kept)
    # A tampered signed PDF is accepted and marked "invalid".
    pdf = bytearray(signed_report_pdf(["BÁO CÁO"], "Nguyễn Văn A", "UBND phường Nhị Chiểu"))
    pdf[pdf.find(b"stream\n") + 10] ^= 1
    _reply(app, draft, [("bc.pdf", bytes(pdf))], "Số: 7/BC-UBND, ngày 03/6/2026")
    _collect(app)
    (rep,) = reports(app)
    assert (rep.status, rep.number, rep.signature) == ("issued", "7/BC-UBND", "invalid")


def test_cli_report_issue_records_an_unsigned_pdf(app, tmp_path):
    _ward_draft(app)
    pdf = tmp_path / "bc.pdf"
    pdf.write_bytes(make_pdf(["BÁO CÁO"]))
    res = cli("report", "issue", "--unit", WARD, "--period", PERIOD, "--plan", "nhi-chieu", "--file", str(pdf),
              "--number", "12/BC-UBND", "--date", "2026-06-03")
    assert res.exit_code == 0, res.output
    (rep,) = reports(app)
    assert (rep.status, rep.number, rep.signature, rep.issued_via[:4]) == ("issued", "12/BC-UBND", "unsigned", "cli:")
    (mail,) = report_mails(app)
    assert "Báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.pdf" in attachments(mail)
    receipt = [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "receipt" and "12/BC-UBND" in m.message["Subject"]]
    assert "không có chữ ký số" in receipt[0].message.get_body(("plain",)).get_content()
    bad = tmp_path / "bc.docx"
    bad.write_bytes(b"PK\x03\x04 not a pdf")
    res = cli("report", "issue", "--unit", WARD, "--period", PERIOD, "--plan", "nhi-chieu", "--file", str(bad),
              "--number", "13/BC-UBND", "--date", "2026-06-03")
    assert res.exit_code == 2 and "“bc.docx” không phải tệp PDF" in res.output


def test_issued_by_mail_on_sqlite_and_postgresql_then_another_pdf_is_refused(app_any_db, tmp_path):
    """The whole review path on both databases: the reply with the signed PDF is taken in, the report goes up
    naming whom to call at the ward (issue 21.8), and a second, different PDF for the issued report is refused
    in Vietnamese with nothing changed; the same file again is recognised, not sent twice."""
    from flows.consolidate import consolidate

    app = app_any_db
    ward = app.cfg.hierarchy[WARD]
    draft = _ward_draft(app)
    pdf = signed_report_pdf(["ỦY BAN NHÂN DÂN PHƯỜNG NHỊ CHIỂU", "Số: 123/BC-UBND", "BÁO CÁO"],
                            "Nguyễn Văn A, Chủ tịch UBND phường Nhị Chiểu", "UBND phường Nhị Chiểu")
    reply_with_pdf(app, draft, [("bao-cao-da-ky.pdf", pdf)], "Gửi bản đã ký. Số: 123/BC-UBND, ngày 03/6/2026",
                   at=at(app.cfg, date(2026, 6, 4), 9))
    _collect(app)
    consolidate(period=PERIOD, plan="nhi-chieu", as_of=at(app.cfg, date(2026, 6, 4), 17))
    (mail,) = report_mails(app)
    assert mail.message["Reply-To"] == ward.coordinator_emails[0]
    text = " ".join(mail.message.get_body(("plain",)).get_content().split())
    # Nhị Chiểu sets no contact of its own: the office that collects for it under the plan answers for it.
    assert ("Đầu mối liên hệ của Ủy ban nhân dân phường Nhị Chiểu: Phạm Thị Lan, Phòng Văn hóa - Xã hội phường "
            f"Nhị Chiểu, điện thoại 0220.3000.158, thư điện tử {ward.coordinator_emails[0]}.") in text
    html = mail.message.get_body(("html",)).get_content()
    assert "Phạm Thị Lan" in html and "0220.3000.158" in html

    other = tmp_path / "bao-cao-khac.pdf"
    other.write_bytes(make_pdf(["BÁO CÁO", "bản khác"]))
    res = cli("report", "issue", "--unit", WARD, "--period", PERIOD, "--plan", "nhi-chieu", "--file", str(other),
              "--number", "124/BC-UBND", "--date", "2026-06-05")
    said = " ".join(res.output.split())
    assert res.exit_code == 2
    assert ("báo cáo này đã được ban hành (Số: 123/BC-UBND, ngày 03/6/2026) và đã gửi lên cấp trên; tệp "
            "“bao-cao-khac.pdf” không thay thế báo cáo đó") in said
    (rep,) = reports(app)
    assert (rep.status, rep.number, rep.issued_on) == ("issued", "123/BC-UBND", date(2026, 6, 3))
    same = tmp_path / "bao-cao-da-ky.pdf"
    same.write_bytes(pdf)
    res = cli("report", "issue", "--unit", WARD, "--period", PERIOD, "--plan", "nhi-chieu", "--file", str(same),
              "--number", "123/BC-UBND", "--date", "2026-06-03")
    assert res.exit_code == 0 and "already recorded" in res.output
    assert len(report_mails(app)) == 1


def test_the_report_mail_names_the_units_own_contact_when_configured(app, monkeypatch):
    """`person` and `phone` of `[unit_contacts.CODE]` in config/hierarchy.toml come before the collecting office."""
    from tests.support.issuing import direct_config, issue

    direct_config(app, monkeypatch, unit_contacts={WARD: {"person": "Đỗ Thị Mai, chuyên viên Văn phòng",
                                                          "phone": "0220.3838.714"}})  # no plan changed
    _ward_draft(app)
    issue(app, WARD, PERIOD, "nhi-chieu", number="9/BC-UBND", issued_on=date(2026, 6, 3),
          at=at(app.cfg, date(2026, 6, 3), 15))
    (mail,) = report_mails(app)
    text = " ".join(mail.message.get_body(("plain",)).get_content().split())
    assert ("Đầu mối liên hệ của Ủy ban nhân dân phường Nhị Chiểu: Đỗ Thị Mai, chuyên viên Văn phòng, điện thoại "
            "0220.3838.714, thư điện tử") in text
    assert "Phạm Thị Lan" not in text
