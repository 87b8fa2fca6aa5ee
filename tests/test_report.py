"""The consolidated report: Word (ND 30/2020), XLSX appendix, email and chart (baocao/consolidation/report.py, baocao/consolidation/charts.py)."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from docx import Document

from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.charts import MAX_UNITS, chart_derived, chart_png, chart_units
from baocao.consolidation.report import (
    FORMULA_TRIGGERS,
    ReportContext,
    issuer_lines_for,
    place_for,
    render_all,
    render_docx,
    render_email,
    render_xlsx,
    report_context,
    report_text,
    signer_title_for,
    symbol_for,
)
from baocao.rules.formatting import parse_vi_int
from tests.support.reports import (
    H1,
    docx_paragraphs,
    haiphong_context,
    half_up,
    small_context,
)

FIGURES_SHEET = "Số liệu theo đơn vị"
HEADER_ROW, FIRST_ROW = 4, 6


@pytest.fixture(scope="module")
def haiphong(cfg) -> ReportContext:
    """Hải Phòng's real tree (114 communes, departments under two of them) with random figures."""
    return haiphong_context(cfg)


# ----------------------------------------------------------------------------- who issues it
def test_issuer_place_symbol_and_signer_from_the_hierarchy(cfg):
    h = cfg.hierarchy
    assert issuer_lines_for(h["BNV"], h) == ("BỘ NỘI VỤ",)
    assert issuer_lines_for(h["T31"], h) == ("ỦY BAN NHÂN DÂN", "THÀNH PHỐ HẢI PHÒNG")
    assert issuer_lines_for(h["T12"], h) == ("ỦY BAN NHÂN DÂN", "TỈNH LAI CHÂU")  # listed as plain "Lai Châu"
    assert issuer_lines_for(h["X10714"], h) == ("ỦY BAN NHÂN DÂN", "PHƯỜNG NHỊ CHIỂU")
    assert issuer_lines_for(h["T12-VPUB"], h) == ("UBND TỈNH LAI CHÂU", "VĂN PHÒNG")
    assert issuer_lines_for(h["X11074-VHXH"], h) == ("UBND XÃ TỨ KỲ", "PHÒNG VĂN HÓA - XÃ HỘI")
    assert issuer_lines_for(h["X11074-VP"], h) == ("UBND XÃ TỨ KỲ", "VĂN PHÒNG HĐND VÀ UBND")
    assert issuer_lines_for(h["T12-VPUB-HCQT"], h) == ("VĂN PHÒNG UBND TỈNH LAI CHÂU", "PHÒNG HÀNH CHÍNH - QUẢN TRỊ")
    assert [place_for(h[c], h) for c in ("BNV", "T31", "X10714", "X11074-VHXH", "T12-VPUB", "T79")] == [
        "Hà Nội", "Hải Phòng", "Nhị Chiểu", "Tứ Kỳ", "Lai Châu", "Thành phố Hồ Chí Minh"]
    assert symbol_for(h["T31"], h) == "BC-UBND" and symbol_for(h["T12-VPUB"], h) == "BC-VPUBND"
    assert signer_title_for(h["X10714"], h) == ("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH")
    assert signer_title_for(h["T46-SNV"], h) == ("GIÁM ĐỐC",)


# ----------------------------------------------------------------------------- Word
def test_docx_has_the_nd30_parts_and_the_hand_computed_sentences(cfg):
    ctx = small_context(cfg, signer_name="Lãnh Duy Tiên")
    paragraphs = docx_paragraphs(render_docx(ctx))
    text = "\n".join(paragraphs)
    for line in ("ỦY BAN NHÂN DÂN", "THÀNH PHỐ HẢI PHÒNG", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                 "Độc lập - Tự do - Hạnh phúc", "BÁO CÁO", "Hải Phòng, ngày 05 tháng 6 năm 2026",
                 "Nơi nhận:", "TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Lãnh Duy Tiên"):
        assert line in paragraphs, line
    assert any(p.startswith("Số:") and p.endswith("/BC-UBND") for p in paragraphs)
    assert "Kết quả thực hiện Kết luận số 226-KL/TW" in text and "6 tháng đầu năm 2026" in text
    assert "- Tổng số hội nghị, cuộc họp đã tổ chức: 1.234 cuộc (giảm 12,0% so với cùng kỳ)." in paragraphs
    assert "- Tỷ lệ hội nghị trực tuyến đạt 64,2%, vượt chỉ tiêu (≥ 60%)." in paragraphs
    assert "- Tỷ lệ giảm số lượng hội nghị so với cùng kỳ đạt 12,0%, vượt chỉ tiêu (≥ 10%)." in paragraphs
    assert ("- Tỷ lệ hồ sơ thủ tục hành chính xử lý trên môi trường số đạt 92,5%, chưa đạt chỉ tiêu (≥ 95%)."
            in paragraphs)
    assert "- Số hội nghị, cuộc họp vượt thời gian quy định: không có cuộc nào, đạt yêu cầu." in paragraphs
    assert ("Tình hình tổng hợp báo cáo: Đã nhận báo cáo của 2/3 xã, phường; gửi đúng hạn: 1/3 xã, phường."
            in paragraphs)
    assert "- Chưa gửi báo cáo (1/3 xã, phường): Xã Ba." in paragraphs
    assert "- Gửi báo cáo trễ hạn (1/3 xã, phường): Xã Hai." in paragraphs
    assert paragraphs[paragraphs.index("Nơi nhận:") + 1] == "- Lưu: VT."  # the root has no parent to tell
    assert "ĐÍNH CHÍNH" not in paragraphs
    assert not any("{{" in p or "{%" in p for p in paragraphs)


def test_children_meeting_a_target_are_named(cfg):
    paragraphs = docx_paragraphs(render_docx(small_context(cfg)))
    # online: Phường Một 700/1.000 = 70 % (met), Xã Hai 92/234 = 39,3 % (missed)
    online = paragraphs.index("- Tỷ lệ hội nghị trực tuyến đạt 64,2%, vượt chỉ tiêu (≥ 60%).")
    assert paragraphs[online + 1] == "- Có 1/3 xã, phường đạt chỉ tiêu; chưa đạt: Xã Hai; 1/3 xã, phường chưa có số liệu."


def test_correction_is_marked_and_recipients_end_with_the_archive(cfg):
    ctx = small_context(cfg, correction_of=2, recipients=("Sở Nội vụ (b/c);", "- Các phòng chuyên môn;"))
    paragraphs = docx_paragraphs(render_docx(ctx))
    assert "ĐÍNH CHÍNH" in paragraphs
    assert "Báo cáo này đính chính, thay thế báo cáo phiên bản số 2 đã gửi trước đó." in paragraphs
    start = paragraphs.index("Nơi nhận:")
    assert paragraphs[start + 1: start + 4] == ["- Sở Nội vụ (b/c);", "- Các phòng chuyên môn;", "- Lưu: VT."]
    ctx = small_context(cfg, recipients=("- Sở Nội vụ;", "- Lưu: VT, VHXH."))
    paragraphs = docx_paragraphs(render_docx(ctx))
    assert paragraphs[paragraphs.index("Nơi nhận:") + 2] == "- Lưu: VT, VHXH."


def test_department_report_uses_its_own_header(cfg):
    h = cfg.hierarchy
    figs = consolidate_tree("T12-VPUB", h, cfg.catalog, pd.DataFrame(columns=["unit_code", "indicator", "value",
                                                                             "previous_year"]),
                            pd.DataFrame(columns=["unit_code", "state", "on_time"]), plan="lai-chau-vp")
    ctx = report_context(figs, "T12-VPUB", h, cfg.catalog, H1, "Kế hoạch của Văn phòng UBND tỉnh Lai Châu",
                         date(2026, 6, 3))
    paragraphs = docx_paragraphs(render_docx(ctx))
    assert {"UBND TỈNH LAI CHÂU", "VĂN PHÒNG", "CHÁNH VĂN PHÒNG", "Lai Châu, ngày 03 tháng 6 năm 2026"} <= set(paragraphs)
    assert any(p.endswith("/BC-VPUBND") for p in paragraphs)
    assert "- Tổng số hội nghị, cuộc họp đã tổ chức: chưa có số liệu." in paragraphs


# ----------------------------------------------------------------------------- docx, XLSX and JSON agree
def _docx_number(paragraphs: list[str], label: str, kind: str) -> float | None:
    prefix = f"- {label}"
    for p in paragraphs:
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix):]
        if kind == "count" and rest.startswith(": "):
            m = re.match(r": ([\d.]+) ", rest)
            return float(parse_vi_int(m.group(1))) if m else None
        if kind == "max" and rest.startswith(": "):
            if rest.startswith(": không có"):
                return 0.0
            m = re.match(r": ([\d.]+)", rest)
            return float(parse_vi_int(m.group(1))) if m else None
        if kind in ("ratio", "cut"):
            m = re.match(r" đạt (-?[\d.]+,\d)%", rest) or re.match(r": không giảm mà tăng ([\d.]+,\d)%", rest)
            if m:
                number = float(m.group(1).replace(".", "").replace(",", "."))
                return -number if "không giảm" in rest else number
            if rest.startswith(": chưa đủ số liệu"):
                return None
    raise AssertionError(f"no sentence for {label!r}")


def test_numbers_in_docx_xlsx_and_json_agree(haiphong, cfg):
    d = haiphong.figures.to_dict()
    paragraphs = docx_paragraphs(render_docx(haiphong))
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(haiphong)))
    ws = wb[FIGURES_SHEET]
    headers = {ws.cell(HEADER_ROW, j).value: j for j in range(1, ws.max_column + 1)}
    total_row = ws.max_row
    assert ws.cell(total_row, 2).value == "T31"
    assert ws.cell(total_row, 3).value == "Tổng cộng: Thành phố Hải Phòng"
    assert ws.max_row - FIRST_ROW == len(haiphong.figures.children)  # one row per child, then the total

    for ind in cfg.catalog.counts:
        in_json = d["totals"][ind.code]
        in_xlsx = ws.cell(total_row, headers[f"{ind.label} ({ind.unit})"]).value
        in_docx = _docx_number(paragraphs, ind.label, "count")
        assert in_json == in_xlsx == in_docx, ind.code

    for code, entry in d["derived"].items():
        header = entry["label"] + ("" if entry["kind"] == "max" else " (%)")
        in_xlsx = ws.cell(total_row, headers[header]).value
        in_docx = _docx_number(paragraphs, entry["label"], entry["kind"])
        assert in_xlsx == pytest.approx(entry["value"]), code
        assert in_docx == half_up(entry["value"]), code
        status = ws.cell(total_row, headers[header] + 1).value
        assert status == {True: "Đạt", False: "Chưa đạt", None: "Không đặt chỉ tiêu"}[entry["met"]], code

    # each child's row carries that child's own figures
    for r in range(FIRST_ROW, total_row):
        child = haiphong.child_figures[ws.cell(r, 2).value].to_dict()
        assert ws.cell(r, headers["Tổng số hội nghị, cuộc họp đã tổ chức (cuộc)"]).value == child["totals"]["HN_TONG"]


def test_xlsx_sheets_and_conditional_formatting(haiphong):
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(haiphong)))
    assert wb.sheetnames == [FIGURES_SHEET, "Đơn vị chưa báo cáo, trễ hạn", "Nhiệm vụ", "Ý kiến của đơn vị",
                             "Tổng hợp"]
    ws = wb[FIGURES_SHEET]
    online_col = next(j for j in range(1, ws.max_column + 1) if ws.cell(HEADER_ROW, j).value
                      == "Tỷ lệ hội nghị trực tuyến (%)")
    letter = openpyxl.utils.get_column_letter(online_col)
    rules = {}
    for cf in ws.conditional_formatting:
        for rule in cf.rules:
            rules[rule.formula[0]] = (str(cf.sqref), rule.dxf.fill.fgColor.rgb[-6:])
    area = f"{letter}{FIRST_ROW}:{openpyxl.utils.get_column_letter(online_col + 1)}{ws.max_row}"
    assert rules[f"AND(ISNUMBER(${letter}{FIRST_ROW}),${letter}{FIRST_ROW}<60.0)"] == (area, "FFC7CE")  # red
    assert rules[f"AND(ISNUMBER(${letter}{FIRST_ROW}),${letter}{FIRST_ROW}>=60.0)"] == (area, "C6EFCE")  # green
    with_target = [e for e in haiphong.figures.derived.values() if e["has_target"]]
    assert len(rules) == 2 * len(with_target) < 2 * len(haiphong.figures.derived)  # no target, no colour
    missing = wb["Đơn vị chưa báo cáo, trễ hạn"]
    missing_codes = [missing.cell(r, 2).value for r in range(2, missing.max_row + 1)]
    f = haiphong.figures
    assert missing_codes[:4] == f.missing and set(missing_codes) == set(f.missing) | set(f.late)
    assert missing.cell(2, 5).value == "Chưa gửi báo cáo, đã quá hạn"
    tasks = wb["Nhiệm vụ"]
    assert [c.value for c in tasks[2]] == [1, "Quán triệt Kết luận 226-KL/TW", 80, 30, 9, 2,
                                          "Phường Nhị Chiểu; Xã Tứ Kỳ"]


def test_units_proposals_are_said_once_in_an_annex_for_the_city_not_as_its_own(haiphong):
    """Two communes propose the same thing to the city: one point, 2 of 114, in the annex addressed to the
    city; the city's own section IV keeps only its placeholder and a pointer to the annex."""
    text = report_text(haiphong)
    names = [haiphong.hierarchy[u["unit"]].name for u in haiphong.figures.texts["KIEN_NGHI"]]
    assert [(g["text"], g["count"], g["names"]) for g in text.proposals] == [
        ("Đề nghị thành phố bổ sung kinh phí số hóa", "2/114 xã, phường, đặc khu", f"{names[0]}, {names[1]}")]
    assert "proposals" not in text.sections and text.annexes["proposals"] == "IV"
    paragraphs = docx_paragraphs(render_docx(haiphong))
    four = paragraphs.index("IV. KIẾN NGHỊ, ĐỀ XUẤT")
    assert paragraphs[four + 1] == "[Kiến nghị, đề xuất của đơn vị (nếu có): …]"
    assert paragraphs[four + 2] == ("Kiến nghị, đề xuất của các đơn vị gửi UBND thành phố Hải Phòng được tổng hợp "
                                    "tại Phụ lục IV để xem xét, giải quyết theo thẩm quyền.")
    assert "KIẾN NGHỊ, ĐỀ XUẤT CỦA CÁC ĐƠN VỊ GỬI UBND THÀNH PHỐ HẢI PHÒNG" in paragraphs
    assert (f"1. Đề nghị thành phố bổ sung kinh phí số hóa (2/114 xã, phường, đặc khu: {names[0]}, {names[1]})"
            in paragraphs)


# ----------------------------------------------------------------------------- untrusted text
EVIL_NAME = '=HYPERLINK("http://evil.example","bấm vào đây")'
EVIL_TEXTS = ["+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "<script>alert('x')</script> & <b>đậm</b>"]


def evil_context(cfg) -> ReportContext:
    texts = pd.DataFrame([{"unit_code": "X1", "indicator": "KIEN_NGHI", "text": t} for t in EVIL_TEXTS])
    return small_context(cfg, child_names=("Phường Một", "Xã Hai", EVIL_NAME), texts=texts)


def test_xlsx_never_stores_units_text_as_formula(cfg):
    data = render_xlsx(evil_context(cfg))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets and not any(b"<f>" in z.read(n) or b"<f " in z.read(n) for n in sheets)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    risky = [c for ws in wb for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.value.startswith(FORMULA_TRIGGERS)]
    values = {c.value for c in risky}
    assert EVIL_NAME in values and "@SUM(A1:A9)" in values and "=1+1" in values and "-2+3" in values
    assert all(c.data_type == "s" and c.quotePrefix for c in risky)


def test_html_email_escapes_units_text(cfg):
    plain, html, png = render_email(evil_context(cfg))
    assert "<script>" not in html and "<b>đậm</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;đậm&lt;/b&gt;" in html
    assert 'src="cid:chart"' in html
    assert "<script>alert('x')</script>" in plain  # plain text is not HTML: shown as written
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_docx_keeps_units_markup_as_text(cfg):
    paragraphs = docx_paragraphs(render_docx(evil_context(cfg)))
    assert "5. <script>alert('x')</script> & <b>đậm</b> (1/3 xã, phường: Phường Một)" in paragraphs


# ----------------------------------------------------------------------------- email, chart, files
def test_email_says_what_the_report_says(cfg):
    ctx = small_context(cfg)
    plain, html, _ = render_email(ctx)
    for sentence in ("Tỷ lệ hội nghị trực tuyến đạt 64,2%, vượt chỉ tiêu (≥ 60%).",
                     "Đã nhận báo cáo của 2/3 xã, phường; gửi đúng hạn: 1/3 xã, phường.",
                     "Tổng số hội nghị, cuộc họp đã tổ chức: 1.234 cuộc (giảm 12,0% so với cùng kỳ)."):
        assert sentence in plain and sentence in html
    assert "Ủy ban nhân dân thành phố Hải Phòng gửi báo cáo kết quả thực hiện Kết luận số 226-KL/TW" in plain
    assert ">Chưa đạt<" in html and ">Đạt<" in html


def _png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def test_chart_takes_the_ratios_with_targets_and_caps_the_units(haiphong, cfg):
    codes = chart_derived(haiphong.figures)
    ratios_with_target = [d.code for d in cfg.catalog.derived if d.kind == "ratio" and d.applies_to("nhi-chieu")
                          and not d.plans]
    assert codes == ratios_with_target and "TL_KY_NANG_SO" not in codes  # a Huế-only target
    shown, total = chart_units(haiphong, codes)
    assert total == len(haiphong.figures.children) > MAX_UNITS and len(shown) == MAX_UNITS
    # worst first, computed here from the figures: most targets missed, then the furthest below them
    def badness(f) -> tuple[int, float]:  # noqa: ANN001
        missed = [c for c in codes if f.derived[c]["met"] is False and f.derived[c]["value"] is not None]
        return len(missed), sum(abs(f.derived[c]["value"] - f.derived[c]["target"]) for c in missed)

    keys = [badness(f) for f in shown]
    assert keys == sorted(keys, reverse=True) and keys[0] > keys[-1]
    left_out = [badness(f) for c, f in haiphong.child_figures.items() if c not in {s.unit for s in shown}]
    assert min(keys) >= max(left_out)
    data = chart_png(haiphong)
    width, height = _png_size(data)
    assert data.startswith(b"\x89PNG") and width < 1400 and height < 1000 and len(data) < 300_000


def test_render_all_writes_every_file(cfg, tmp_path):
    paths = render_all(small_context(cfg, correction_of=1), tmp_path / "out")
    assert set(paths) == {"docx", "xlsx", "html", "txt", "png"}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    assert paths["docx"].name == "bao-cao-t31-2026-h1-dinh-chinh-1.docx"
    assert Document(str(paths["docx"])).sections[0].page_width.mm == pytest.approx(210, abs=0.5)


# ----------------------------------------------------------------------------- LibreOffice
def test_docx_converts_to_pdf_with_the_national_motto(cfg, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    source = tmp_path / "bao-cao.docx"
    source.write_bytes(render_docx(small_context(cfg)))
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(source)], check=True, capture_output=True, timeout=180)
    pdf = tmp_path / "bao-cao.pdf"
    assert pdf.exists()
    first_page = subprocess.run(["pdftotext", "-layout", "-f", "1", "-l", "1", str(pdf), "-"], check=True,
                                capture_output=True, text=True, timeout=60).stdout
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in first_page
    assert "Hải Phòng, ngày 05 tháng 6 năm 2026" in first_page
    assert "BÁO CÁO" in first_page


def test_module_paths_exist():
    from baocao.consolidation.report import DOCX_TEMPLATE, TEMPLATES_DIR

    assert DOCX_TEMPLATE.exists() and (TEMPLATES_DIR / "report_sentences.j2").exists()
    assert Path(TEMPLATES_DIR / "make_report_template.py").exists()


def test_chart_bars_are_drawn_in_the_colour_of_each_unit_s_result(haiphong):
    """The bars are one collection of rectangles per panel (cheaper than a patch per bar): each row's
    bar must be there, blue for the consolidated figure, green for a target met, red for one missed."""
    import io

    from PIL import Image

    from baocao.consolidation.charts import BLUE, GREEN, RED

    codes = chart_derived(haiphong.figures)
    shown, _ = chart_units(haiphong, codes)
    pixels = np.asarray(Image.open(io.BytesIO(chart_png(haiphong))).convert("RGB")).reshape(-1, 3)

    def count(colour: str) -> int:
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int((pixels == rgb).all(axis=1).sum())

    met = sum(1 for f in shown for c in codes if f.derived[c]["met"] is True and f.derived[c]["value"])
    missed = sum(1 for f in shown for c in codes if f.derived[c]["met"] is False and f.derived[c]["value"])
    assert count(BLUE) > 0
    assert (count(GREEN) > 0) == (met > 0) and (count(RED) > 0) == (missed > 0)
    assert count(RED) > missed * 20  # each missed bar is a solid block, not a line
