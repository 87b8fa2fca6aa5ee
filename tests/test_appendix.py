"""The task appendix (Phụ lục): reading the seeds' tables, resolving bodies to units, all or nothing."""

from __future__ import annotations

import io
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook

from baocao.rules.config import PROJECT_DIR
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.tasks.appendix import (
    AppendixImportError,
    AppendixRow,
    read_appendix,
    read_appendix_text,
    read_appendix_xlsx,
    resolve_tasks,
)
from baocao.tasks.names import join_continuation
from baocao.tasks.taskbodies import BodyRules, TaskBodiesError, load_task_bodies

SEEDS = Path(__file__).resolve().parent / "data" / "seeds"  # copies of ../shared/seeds, checked below
SHARED_SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
NHI_CHIEU = SEEDS / "001_cedded2c61e77593.txt"
HUE = SEEDS / "003_990ddbe88c7e4d67.txt"
TASK_BODIES = PROJECT_DIR / "config" / "task_bodies.toml"

NC_DEPARTMENTS = ("X10714-VHXH", "X10714-VP", "X10714-KT", "X10714-TTHCC", "X10714-TTDVSNC")



@pytest.fixture(scope="module")
def rules() -> dict[str, BodyRules]:
    return load_task_bodies(TASK_BODIES)


def _tasks(path: Path, plan: str, root: str, cfg, rules):
    rows = read_appendix(path)
    return rows, {t.number: t for t in resolve_tasks(
        rows, plan=plan, root=root, hierarchy=cfg.hierarchy, rules=rules[plan], year=2026
    )}


def _line_of(text: str, prefix: str) -> int:
    """1-based number of the first line starting with ``prefix``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))


# ----------------------------------------------------------------------------- reading the seeds


def test_nhi_chieu_appendix_has_19_rows_numbered_in_order():
    rows = read_appendix(NHI_CHIEU)
    assert [r.number for r in rows] == list(range(1, 20))
    # repeated headers after page breaks are not rows
    assert not any(r.content.startswith("Nội dung") for r in rows)


def test_hue_appendix_has_12_rows_numbered_in_order():
    rows = read_appendix(HUE)
    assert [r.number for r in rows] == list(range(1, 13))
    assert rows[0].lead == "Các sở, ban, ngành; UBND các xã, phường"
    assert rows[0].deadline == "Tháng 5/2026"


def test_rows_split_across_page_breaks_are_merged():
    text = NHI_CHIEU.read_text(encoding="utf-8")
    rows = {r.number: r for r in read_appendix_text(text)}
    r12 = rows[12]
    assert "thống nhất hệ thống biểu mẫu, chỉ tiêu báo cáo" in r12.content
    assert r12.lead == "Văn phòng HĐND và UBND phường"
    assert r12.partners == "Các phòng, đơn vị"
    assert r12.product == "Ban hành hướng dẫn chế độ báo cáo thống nhất"
    assert r12.deadline == "Năm 2026"
    r17 = rows[17]
    assert r17.lead == "Phòng VHXXH"
    assert r17.content.startswith("Chỉ đạo, hướng dẫn các cơ quan đơn vị, Cổng Thông tin điện tử phường")
    assert r17.product == "Số lượng, số lượt tin bài, chuyên đề, chuyên mục được đăng phát"
    r6 = rows[6]
    assert r6.product.endswith("báo cáo kết quả về UBND phường (qua phòng VHXH)")
    assert r6.deadline == "Hàng năm, từ năm 2026"
    # a row starts where its STT is, not where its continuation is
    assert r6.line == _line_of(text, "6\t")
    assert r17.line == _line_of(text, "17\t")


def test_markdown_emphasis_and_spacing_are_cleaned():
    text = NHI_CHIEU.read_text(encoding="utf-8")
    text = text.replace("1\tXây dựng, ban hành kế hoạch", "**1**\t*Xây dựng,   ban hành* kế hoạch")
    row = read_appendix_text(text)[0]
    assert row.number == 1
    assert row.content.startswith("Xây dựng, ban hành kế hoạch của UBND phường")


# ----------------------------------------------------------------------------- resolving the seeds


def test_nhi_chieu_bodies_resolve_to_units(cfg, rules):
    _, tasks = _tasks(NHI_CHIEU, "nhi-chieu", "X10714", cfg, rules)
    assert len(tasks) == 19
    assert tasks[1].lead_units == ("X10714-VHXH",)  # "Phòng Văn hóa - Xã hội (VHXH)"
    assert tasks[1].partner_units == NC_DEPARTMENTS  # "Các phòng, đơn vị": each department
    # "Văn phòng HĐND và UBND, Trung tâm ... phường" is two bodies, not "Văn phòng HĐND" and "UBND"
    assert tasks[2].lead_units == ("X10714-VP", "X10714-TTHCC")
    assert tasks[3].lead_units == NC_DEPARTMENTS and tasks[3].partner_units == ()
    # "UBND phường; Các phòng, cơ quan, đơn vị": the ward itself and each of its departments
    assert tasks[6].lead_units == ("X10714", *NC_DEPARTMENTS)
    # "... phường và các phòng, đơn vị": "và" between two known names separates them
    assert set(tasks[8].lead_units) == set(NC_DEPARTMENTS)
    assert tasks[8].lead_units[0] == "X10714-VP"
    assert tasks[11].partner_units == ("X10714-VHXH", "X10714-VP")
    for n in range(13, 20):  # the office's typo "Phòng VHXXH"
        assert tasks[n].lead_units == ("X10714-VHXH",), n
    assert tasks[17].lead_units == ("X10714-VHXH",)
    assert tasks[17].partner_units == ("X10714-TTDVSNC",)
    assert all(t.external_bodies == () for t in tasks.values())
    assert all(t.plan == "nhi-chieu" for t in tasks.values())


def test_hue_bodies_resolve_to_departments_communes_and_external(cfg, rules):
    _, tasks = _tasks(HUE, "hue", "T46", cfg, rules)
    assert len(tasks) == 12
    h = cfg.hierarchy
    departments = [u.code for u in h.children("T46") if u.level == "department"]
    communes = [u.code for u in h.children("T46") if u.level == "commune"]
    assert len(communes) == 40 and "T46-SNV" in departments
    assert tasks[3].lead_units == tuple(departments + communes)
    assert tasks[2].lead_units == tuple(departments)
    assert tasks[2].partner_units == ("T46-STP",)
    assert tasks[6].partner_units == ("T46-SKHCN", "T46-VPUB")
    assert tasks[10].lead_units == ("T46-SNV",)
    assert tasks[10].partner_units == ("T46-SKHCN",)
    assert tasks[10].external_bodies == ("Trường Chính trị Nguyễn Chí Thanh",)
    assert set(tasks[11].partner_units) == set(departments + communes)
    assert tasks[12].lead_units == ("T46-SKHCN",)
    assert tasks[12].partner_units == ()
    assert tasks[12].external_bodies == (
        "Ban Tuyên giáo và Dân vận Thành ủy", "các cơ quan báo chí, truyền thông"
    )


def test_deadlines_are_read_and_recurring_ones_flagged(cfg, rules):
    _, nc = _tasks(NHI_CHIEU, "nhi-chieu", "X10714", cfg, rules)
    assert nc[1].deadline_text == "Trước 10/5/2026"
    assert nc[1].due.due_date == date(2026, 5, 10) and nc[1].due.recurrence is None
    assert nc[4].due.due_date == date(2026, 6, 30)  # Quý II/2026
    assert nc[7].due.due_date == date(2026, 12, 31)  # Quý IV/2026
    assert nc[2].due.recurrence == "continuous" and nc[2].due.due_date is None
    assert nc[3].due.recurrence == "yearly" and nc[3].due.from_year == 2026
    assert nc[15].due.recurrence == "on_event"
    assert nc[19].due.recurrence == "continuous" and nc[19].due.from_year == 2026
    _, hue = _tasks(HUE, "hue", "T46", cfg, rules)
    assert hue[1].due.due_date == date(2026, 5, 31)  # Tháng 5/2026
    assert hue[6].due.due_date == date(2026, 12, 31)  # Đến cuối 2026
    assert hue[10].due.recurrence == "continuous"  # Từ 2026 và thường xuyên
    assert hue[11].due.recurrence == "periodic"  # Định kỳ hằng năm, but its product asks every period (issue 19)


# ----------------------------------------------------------------------------- XLSX


def _xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize("seed, plan, root", [(NHI_CHIEU, "nhi-chieu", "X10714"), (HUE, "hue", "T46")])
def test_xlsx_round_trip_gives_the_same_tasks(tmp_path, cfg, rules, seed, plan, root):
    text_rows, text_tasks = _tasks(seed, plan, root, cfg, rules)
    # Another column order, a title above the header, STT as numbers, one row split in two.
    order = ["deadline", "number", "lead", "content", "partners", "product"]
    labels = {"number": "STT", "content": "Nội dung công việc", "lead": "Cơ quan chủ trì",
              "partners": "Cơ quan phối hợp", "product": "Sản phẩm/ Kết quả", "deadline": "Thời hạn"}
    sheet: list[list[object]] = [["PHÂN CÔNG NHIỆM VỤ CỤ THỂ"], [], [labels[f] for f in order]]
    for r in text_rows:
        values = {f: getattr(r, f) for f in order}
        if r.number == 2:
            head, _, tail = r.content.partition(" ")
            first = dict(values, content=head)
            rest = {f: "" for f in order} | {"content": tail}
            sheet += [[first[f] for f in order], [rest[f] for f in order]]
        else:
            sheet.append([values[f] for f in order])
    path = tmp_path / "phu-luc.xlsx"
    path.write_bytes(_xlsx(sheet))
    xlsx_rows = read_appendix(path)
    strip = [(r.number, r.content, r.lead, r.partners, r.product, r.deadline) for r in xlsx_rows]
    assert strip == [(r.number, r.content, r.lead, r.partners, r.product, r.deadline) for r in text_rows]
    assert xlsx_rows[0].line == 4  # sheet row of STT 1
    xlsx_tasks = resolve_tasks(
        xlsx_rows, plan=plan, root=root, hierarchy=cfg.hierarchy, rules=rules[plan], year=2026
    )
    assert xlsx_tasks == list(text_tasks.values())


def test_xlsx_dates_and_numbers_read_as_a_person_sees_them():
    data = _xlsx([
        ["TT", "Nội dung công việc", "Cơ quan chủ trì", "Thời hạn"],
        [1.0, "Việc một", "Phòng VHXH", date(2026, 5, 10)],
    ])
    (row,) = read_appendix_xlsx(data)
    assert row.number == 1 and row.deadline == "10/05/2026" and row.partners == "" and row.line == 2


def test_xlsx_that_is_not_a_workbook_is_reported():
    with pytest.raises(AppendixImportError, match="không đọc được tệp Excel"):
        read_appendix_xlsx(b"not a zip file", source="x.xlsx")


# ----------------------------------------------------------------------------- all or nothing


def test_broken_appendix_lists_every_problem_and_imports_nothing(cfg, rules):
    text = NHI_CHIEU.read_text(encoding="utf-8")
    text = text.replace(
        "Văn bản của UBND phường\tThường xuyên", "Văn bản của UBND phường\tSớm nhất có thể"
    )  # row 5: unreadable deadline
    text = text.replace("Phòng Văn hóa - Xã hội\tCác phòng, đơn vị\tCông văn",
                        "Phòng Ngoại vụ, Phòng VHXH\tCác phòng, đơn vị\tCông văn")  # row 4: unknown body
    text = text.replace("9\tĐánh giá việc thực hiện", "8\tĐánh giá việc thực hiện")  # duplicate 8, no 9
    rows = read_appendix_text(text)
    result = None
    with pytest.raises(AppendixImportError) as info:
        result = resolve_tasks(rows, plan="nhi-chieu", root="X10714", hierarchy=cfg.hierarchy,
                               rules=rules["nhi-chieu"], year=2026)
    assert result is None
    found = {(p.line, p.number, p.column, p.text) for p in info.value.problems}
    line4, line5, line9 = _line_of(text, "4\t"), _line_of(text, "5\t"), _line_of(text, "8\tĐánh giá")
    assert found == {
        (line4, 4, "Cơ quan chủ trì", "Phòng Ngoại vụ"),
        (line5, 5, "Thời hạn", "Sớm nhất có thể"),
        (line9, 8, "STT", "8"),
        (_line_of(text, "10\t"), 9, "STT", ""),
    }
    message = str(info.value)
    assert len(message.splitlines()) == 1 + 4
    for line in (line4, line5, line9):
        assert f"dòng {line}," in message
    assert "«Phòng Ngoại vụ»" in message and "«Sớm nhất có thể»" in message
    assert "STT 8 bị trùng" in message and "thiếu nhiệm vụ STT 9" in message


def test_structural_problems_when_reading_are_all_reported():
    text = "PHỤ LỤC\nSTT\tNội dung công việc\tCơ quan chủ trì\tThời hạn\n" \
           "\tmồ côi\tPhòng VHXH\tNăm 2026\n" \
           "1a\tViệc\tPhòng VHXH\tNăm 2026\n"
    with pytest.raises(AppendixImportError) as info:
        read_appendix_text(text, source="phu-luc.txt")
    assert [(p.line, p.column) for p in info.value.problems] == [(3, "STT"), (4, "STT")]
    assert str(info.value).startswith("phu-luc.txt: ")


def test_text_without_a_header_row_is_an_error():
    with pytest.raises(AppendixImportError, match="không tìm thấy dòng tiêu đề"):
        read_appendix_text("PHỤ LỤC\n1\tViệc\tPhòng VHXH\tNăm 2026\n")


def test_unsupported_file_type_is_an_error(tmp_path):
    path = tmp_path / "phu-luc.docx"
    path.write_bytes(b"")
    with pytest.raises(AppendixImportError, match="định dạng tệp không được hỗ trợ"):
        read_appendix(path)


# ----------------------------------------------------------------------------- reading details


def test_markdown_pipe_table_with_section_row(tmp_path):
    path = tmp_path / "phu-luc.md"
    path.write_text(
        "Kế hoạch ... (Có Phụ lục kèm theo)\n\n## PHỤ LỤC\n\n"
        "| **TT** | **Nội dung công việc** | **Cơ quan chủ trì** | **Cơ quan phối hợp** | **Thời hạn** |\n"
        "|---|---|---|---|---|\n"
        "| I | **Tuyên truyền** | | | |\n"
        "| 1 | Việc _một_ | Phòng VHXH | | Quý II/2026 |\n"
        "| 2 | Việc hai | Văn phòng HĐND- | | Năm 2026 |\n"
        "|  |  | UBND phường | | |\n",
        encoding="utf-8",
    )
    rows = read_appendix(path)
    assert [(r.number, r.content, r.lead, r.deadline) for r in rows] == [
        (1, "Việc một", "Phòng VHXH", "Quý II/2026"),
        (2, "Việc hai", "Văn phòng HĐND-UBND phường", "Năm 2026"),
    ]
    assert rows[0].line == 8


def test_continuation_join_keeps_spaced_dashes_and_glues_hyphenated_words():
    assert join_continuation("hướng dẫn các cơ", "quan đơn vị") == "hướng dẫn các cơ quan đơn vị"
    assert join_continuation("Phòng Văn hóa -", "Xã hội") == "Phòng Văn hóa - Xã hội"
    assert join_continuation("HĐND-", "UBND") == "HĐND-UBND"
    assert join_continuation("", "UBND") == "UBND" and join_continuation("UBND", "") == "UBND"


# ----------------------------------------------------------------------------- resolving details


def _row(lead: str, partners: str = "", deadline: str = "Năm 2026", number: int = 1) -> AppendixRow:
    return AppendixRow(number, "Việc", lead, partners, "", deadline, line=10 + number)


def _resolve(cfg, rules, *rows: AppendixRow, plan: str = "nhi-chieu", root: str = "X10714"):
    return resolve_tasks(
        list(rows), plan=plan, root=root, hierarchy=cfg.hierarchy, rules=rules[plan], year=2026
    )


@pytest.mark.parametrize("lead", [
    "Phòng Văn hoá - Xã hội",  # old tone placement
    unicodedata.normalize("NFD", "Phòng Văn hóa - Xã hội"),  # decomposed
    "phòng   VĂN HÓA–XÃ HỘI",  # case, spaces, en dash
    "Phòng VHXXH",
    "Phòng Văn hóa - Xã hội phường Nhị Chiểu.",
])
def test_names_match_despite_typing_variants(cfg, rules, lead):
    (task,) = _resolve(cfg, rules, _row(lead))
    assert task.lead_units == ("X10714-VHXH",)


def test_spelled_out_ubnd_and_hdnd_match_abbreviations(cfg, rules):
    lead = "Văn phòng Hội đồng nhân dân và Ủy ban nhân dân phường; Ủy ban nhân dân phường"
    (task,) = _resolve(cfg, rules, _row(lead))
    assert task.lead_units == ("X10714-VP", "X10714")


def test_names_outside_the_plans_subtree_do_not_resolve(cfg, rules):
    # Phòng Kinh tế of Xã Tứ Kỳ has the same alias, but Tứ Kỳ is not under Nhị Chiểu.
    (task,) = _resolve(cfg, rules, _row("Phòng Kinh tế"))
    assert task.lead_units == ("X10714-KT",)
    with pytest.raises(AppendixImportError) as info:
        _resolve(cfg, rules, _row("Sở Tư pháp"))
    assert [p.text for p in info.value.problems] == ["Sở Tư pháp"]


def test_unknown_text_stops_at_the_next_known_name(cfg, rules):
    with pytest.raises(AppendixImportError) as info:
        partners = "Hội Cựu chiến binh, Hội Nông dân và Trung tâm Dịch vụ sự nghiệp công"
        _resolve(cfg, rules, _row("Phòng VHXH", partners))
    (problem,) = info.value.problems
    assert (problem.line, problem.number, problem.column) == (11, 1, "Cơ quan phối hợp")
    assert problem.text == "Hội Cựu chiến binh, Hội Nông dân"


def test_external_bodies_are_kept_as_text_and_assigned_to_no_unit(cfg, rules):
    (task,) = _resolve(cfg, rules, _row("Phòng VHXH", "Sở Khoa học và Công nghệ; Phòng Kinh tế"))
    assert task.partner_units == ("X10714-KT",)
    assert task.external_bodies == ("Sở Khoa học và Công nghệ",)


def test_missing_lead_is_a_problem(cfg, rules):
    with pytest.raises(AppendixImportError, match="chưa ghi cơ quan chủ trì"):
        _resolve(cfg, rules, _row(""))


def test_a_name_shared_by_two_units_is_ambiguous(rules):
    def unit(code: str, parent: str | None, level: str, *aliases: str) -> Unit:
        return Unit(code=code, name=code, level=level, parent=parent, aliases=aliases)

    h = Hierarchy(units={u.code: u for u in (
        unit("BNV", None, "ministry"), unit("X1", "BNV", "commune"),
        unit("X1-A", "X1", "department", "Phòng Một"), unit("X1-B", "X1", "department", "Phòng Một"),
    )}, root_code="BNV")
    plan_rules = BodyRules("p", groups={"Các phòng": ("departments of X1",)})
    (task,) = resolve_tasks([_row("Các phòng")], plan="p", root="X1", hierarchy=h, rules=plan_rules,
                            year=2026)
    assert task.lead_units == ("X1-A", "X1-B")
    with pytest.raises(AppendixImportError, match="trùng với nhiều đơn vị"):
        resolve_tasks([_row("Phòng Một")], plan="p", root="X1", hierarchy=h, rules=plan_rules, year=2026)


# ----------------------------------------------------------------------------- config/task_bodies.toml


def test_task_bodies_file_covers_the_seed_plans(rules):
    assert set(rules) >= {"nhi-chieu", "hue"}
    assert rules["hue"].groups["Các sở, ban, ngành"] == ("departments of T46",)
    assert "Trường Chính trị Nguyễn Chí Thanh" in rules["hue"].external


@pytest.mark.parametrize("body, key, problem", [
    ('[p.groups]\n"Các phòng" = "all of X1"\n', "p.groups.'Các phòng'", "use 'departments of CODE'"),
    ('[p]\nextras = []\n', "p.extras", "unknown key"),
    ('[p.aliases]\n"Phòng A" = "phòng a"\n', "p.aliases.'Phòng A'", "must be a unit code"),
    ('[p]\nexternal = ["Sở Y tế", "SỞ Y TẾ"]\n', "p.external.'SỞ Y TẾ'", "same name as p.external.'Sở Y tế'"),
    ('[p]\nexternal = "Sở Y tế"\n', "p.external", "must be a list"),
    ("[p\n", "", "not valid TOML"),
])
def test_task_bodies_errors_name_the_file_and_key(tmp_path, body, key, problem):
    path = tmp_path / "task_bodies.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(TaskBodiesError) as info:
        load_task_bodies(path)
    assert info.value.file == str(path) and info.value.key == key
    assert problem in str(info.value) and str(path) in str(info.value)


def test_rules_naming_a_missing_unit_fail_with_file_and_key(tmp_path, cfg):
    path = tmp_path / "task_bodies.toml"
    path.write_text('[p.groups]\n"Các phòng" = "departments of X99999"\n', encoding="utf-8")
    plan_rules = load_task_bodies(path)["p"]
    with pytest.raises(TaskBodiesError, match=r"p\.groups\.'Các phòng': 'X99999' is not a unit") as info:
        resolve_tasks([_row("Các phòng")], plan="p", root="X10714", hierarchy=cfg.hierarchy,
                      rules=plan_rules, year=2026)
    assert info.value.file == str(path)


def test_the_longest_known_name_wins_over_a_shorter_one_before_a_separator():
    units = (
        Unit(code="BNV", name="Bộ Nội vụ", level="ministry", parent=None),
        Unit(code="X1", name="Xã Một", level="commune", parent="BNV"),
        Unit(code="X1-KH", name="Ban Khoa học", level="department", parent="X1"),
        Unit(code="X1-KHCN", name="Ban Khoa học và Công nghệ", level="department", parent="X1"),
        Unit(code="X1-CN", name="Công nghệ", level="department", parent="X1"),
    )
    h = Hierarchy(units={u.code: u for u in units}, root_code="BNV")
    plan_rules = BodyRules("p")
    (task,) = resolve_tasks([_row("Ban Khoa học và Công nghệ", "Ban Khoa học và Công nghệ, Ban Khoa học")],
                            plan="p", root="X1", hierarchy=h, rules=plan_rules, year=2026)
    assert task.lead_units == ("X1-KHCN",)
    assert task.partner_units == ("X1-KHCN", "X1-KH")


@pytest.mark.skipif(not SHARED_SEEDS.is_dir(), reason="no ../shared/seeds beside the repository to compare with")
def test_the_seed_copies_are_the_shared_seeds() -> None:
    """The tests read copies kept in the repository (CI may clone it anywhere); they must stay the seeds."""
    shared = sorted(p.name for p in SHARED_SEEDS.glob("*.txt"))
    assert shared == sorted(p.name for p in SEEDS.glob("*.txt"))
    for name in shared:
        assert (SEEDS / name).read_bytes() == (SHARED_SEEDS / name).read_bytes(), name
