"""Security of the cycle: who may submit, what units' words can do to our output, and secrets.

* Authentication of submissions: the token is checked in constant time; a forged token, another unit's,
  an old period's (re-labelled or not), another form version's, none at all, or a file from an
  unregistered sender (BAOCAO_SENDER_CHECK=reject) is refused *and recorded* (a rejected submission,
  an audit event "refused") and the sender is told why in Vietnamese; an operator's override
  (`baocao submit --override ... --actor ...`, or intake.take_in with an Override) is accepted and
  recorded with who and why.
* Output safety, checked on what the real SMTP server received: units' text cannot inject HTML into
  the replies or the report email, nor formulas into the XLSX appendix; no text (a unit's name, a
  file name) can add a header to a message, however it is encoded.
* Secrets (SMTP and IMAP passwords, the token secret) never appear in logs, stdout/stderr, the flow
  runs' logs, states and artifacts in the Prefect API, the mails sent or the files and database the
  flows write: not in clear, not in base64, not even when a wrong password makes things fail.
"""

from __future__ import annotations

import ast
import base64
import email
import email.policy
import hmac
import inspect
import io
import logging
import os
import random
import re
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import func, select

from baocao import runtime
from baocao.intake import pipeline as intake
from baocao.intake import validation
from baocao.intake.pipeline import Incoming, Override, take_in
from baocao.mail import outbox
from baocao.mail.mime import Attachment, Mail, build_message
from baocao.mail.templating import render_mail
from baocao.opening import tokens
from baocao.opening.forms import (
    COUNT_COLUMNS,
    INFO_LABELS,
    SHEET_COUNTS,
    SHEET_TEXTS,
    TEXT_HEADER_ROW,
    FormSpec,
)
from baocao.opening.tokens import make_token, verify_token
from baocao.rules.periods import Period
from baocao.store.db import AuditEvent, ReceivedFile, Value
from tests.support.tuky import LATE, ON_TIME, TuKy, _builder, info_value, open_tu_ky, set_info

VN = ZoneInfo("Asia/Ho_Chi_Minh")
SOAK = os.environ.get("BAOCAO_SOAK") == "1"
FUZZ = settings(max_examples=5_000 if SOAK else 200, deadline=None, derandomize=not SOAK, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# `make soak` selects -m soak: the marker is added only with BAOCAO_SOAK=1 (see tests/test_crash.py).
pytestmark = [pytest.mark.soak] if SOAK else []


VIETNAMESE = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹàáèéìíòóùúýãõĩũ]", re.I)
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
UNIT, OTHER = "X11074-VHXH", "X11074-KT"


def text_of(mail: Any) -> str:
    return mail.message.get_body(("plain",)).get_content()


def html_of(mail: Any) -> str:
    return mail.message.get_body(("html",)).get_content()


# ============================================================================ 5. authentication
def _calls(func: Any) -> list[ast.Call]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _compares_mentioning(module: Any, word: str) -> list[str]:
    """Source of every ==, !=, in, is comparison of ``module`` whose text mentions ``word``."""
    source = inspect.getsource(module)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and word in (ast.get_source_segment(source, node) or ""):
            found.append(ast.get_source_segment(source, node) or "")
    return found


def test_tokens_are_compared_in_constant_time_and_only_there() -> None:
    # verify_token compares the whole expected token with hmac.compare_digest, and with nothing else.
    compare = [c for c in _calls(verify_token)
               if isinstance(c.func, ast.Attribute) and c.func.attr == "compare_digest"
               and isinstance(c.func.value, ast.Name) and c.func.value.id in ("hmac", "secrets")]
    assert len(compare) == 1 and len(compare[0].args) == 2
    tree = ast.parse(textwrap.dedent(inspect.getsource(verify_token)))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Compare)
                and any(isinstance(op, ast.Eq | ast.NotEq) for op in n.ops)], "a token compared with =="
    assert getattr(tokens, compare[0].func.value.id).compare_digest is hmac.compare_digest
    # The intake and the validation verify through verify_token, never by comparing tokens themselves;
    # only the validation's token_problems calls it (the intake calls token_problems).
    assert "verify_token" in inspect.getsource(validation) and "verify_token" not in inspect.getsource(intake)
    for module in (intake, validation):
        assert not [c for c in _compares_mentioning(module, "token") if "==" in c or "!=" in c or " in " in c], \
            module.__name__
    # Behaviour: one character off anywhere (first, middle, last), shorter, longer: all refused.
    secret, token = "khóa-bí-mật", make_token("khóa-bí-mật", UNIT, "2026-H1", 1)
    assert verify_token(secret, token, UNIT, "2026-H1", 1)
    assert verify_token(secret, f"  {token.upper()} ", UNIT, "2026-H1", 1)  # as people copy it
    for i in (3, len(token) // 2, len(token) - 1):
        other = "a" if token[i] != "a" else "b"
        assert not verify_token(secret, token[:i] + other + token[i + 1:], UNIT, "2026-H1", 1)
    for wrong in (token[:-1], token + "a", "", token.replace("v1-", "v2-"), None, 12345):
        assert not verify_token(secret, wrong, UNIT, "2026-H1", 1)


def _form_for(tu_ky: TuKy, unit: str, period: str, token: str) -> bytes:
    """The form of ``unit`` for ``period`` as the open-period flow would build it, with ``token``."""
    cfg = tu_ky.cfg
    p = Period.parse(period)
    spec = FormSpec(unit=cfg.hierarchy[unit], period=p, deadline=date(p.year, 6, 2), token=token,
                    form_version=cfg.settings.form_version, coordinator_name="Xã Tứ Kỳ",
                    coordinator_email=tu_ky.coordinator("X11074"), reply_to=cfg.settings.reply_to)
    return _builder(cfg.catalog).build(spec)


def _deliver_replies(tu_ky: TuKy) -> list[Any]:
    outbox.deliver(tu_ky.app.db, tu_ky.cfg.settings, kinds=["receipt", "problems"])
    return tu_ky.replies()


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    return open_tu_ky(app)


@pytest.mark.slow
def test_forged_borrowed_old_and_missing_tokens_are_refused_recorded_and_explained(tu_ky: TuKy) -> None:
    cfg = tu_ky.cfg
    secret = cfg.settings.token_secret.get_secret_value()
    label = INFO_LABELS["token"]
    good, _ = tu_ky.fill(UNIT)
    real = info_value(good, label)
    kt_form, _ = tu_ky.fill(OTHER)
    last_h1 = _form_for(tu_ky, UNIT, "2025-H1", make_token(secret, UNIT, "2025-H1", cfg.settings.form_version))
    cases = {  # file name -> (bytes, the rule that refuses it, what the reply must say)
        "doan_ma.xlsx": (set_info(good, label, make_token("đoán-mò", UNIT, "2026-H1", 1)), "token_invalid",
                         "trang “Thông tin”: mã xác thực không đúng"),
        "ma_don_vi_khac.xlsx": (set_info(good, label, info_value(kt_form, label)), "token_invalid",
                                "biểu mẫu của đơn vị khác, của kỳ khác hoặc đã bị sửa"),
        "ky_cu_doi_nhan.xlsx": (set_info(last_h1, INFO_LABELS["period_code"], "2026-H1"), "token_invalid",
                                "trang “Thông tin”: mã xác thực không đúng"),
        "ky_cu.xlsx": (last_h1, "request", "không có yêu cầu báo cáo kỳ 6 tháng đầu năm 2025"),
        "phien_ban_khac.xlsx": (set_info(good, label, make_token(secret, UNIT, "2026-H1", 2)), "form_version",
                                "phiên bản 2, đã cũ"),
        "khong_ma.xlsx": (set_info(good, label, ""), "token_missing", "không có mã xác thực"),
    }
    sender = tu_ky.coordinator(UNIT)
    for name, (data, rule, _) in cases.items():
        outcome = take_in(tu_ky.app.db, cfg, Incoming(data, name, "email", sender, ON_TIME))
        (u,) = outcome.units
        assert u.status == "refused" and [p.rule for p in u.problems] == [rule], (name, u)

    assert tu_ky.request(UNIT).state == "sent"  # nothing was taken as the unit's report
    subs = tu_ky.submissions()
    assert len(subs) == len(cases) and {s.status for s in subs} == {"rejected"}
    with tu_ky.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Value)) == 0
        files = dict(s.execute(select(ReceivedFile.id, ReceivedFile.filename)).all())
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "refused").order_by(AuditEvent.id)))
    by_file = {files[sub.file_id]: sub for sub in subs}
    for name, (_, rule, _) in cases.items():
        assert [e["rule"] for e in by_file[name].errors] == [rule], name
    assert [(e.actor, e.detail["file"], e.detail["reasons"]) for e in events] == \
        [(sender, name, [rule]) for name, (_, rule, _) in cases.items()]

    replies = _deliver_replies(tu_ky)
    assert len(replies) == len(cases) and all(m.rcpt_tos == (sender,) for m in replies)
    for name, (_, _, why) in cases.items():
        (mail,) = [m for m in replies if name in text_of(m)]
        assert mail.message["X-Baocao-Kind"] == "problems" and "chưa được tiếp nhận" in mail.message["Subject"]
        assert why in text_of(mail) and why in html_of(mail), name
        assert real not in mail.raw.decode("utf-8", "replace") and secret not in text_of(mail)

    # Control: the genuine form, its token typed in capitals with spaces around, is taken in.
    outcome = take_in(tu_ky.app.db, cfg, Incoming(set_info(good, label, f" {real.upper()} "), "dung.xlsx", "email",
                                                  sender, ON_TIME))
    assert outcome.units[0].status == "accepted"


@pytest.mark.slow
def test_unregistered_sender_with_reject_is_refused_recorded_and_told(tu_ky: TuKy,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAOCAO_SENDER_CHECK", "reject")
    cfg = runtime.config()
    assert cfg.settings.sender_check == "reject"
    good, _ = tu_ky.fill(UNIT)
    stranger = "nguoi.la@gmail.example"
    outcome = take_in(tu_ky.app.db, cfg, Incoming(good, "BaoCao.xlsx", "email", stranger, ON_TIME))
    assert outcome.units[0].status == "refused" and [p.rule for p in outcome.units[0].problems] == ["sender"]
    (sub,) = tu_ky.submissions()
    assert sub.status == "rejected" and [e["rule"] for e in sub.errors] == ["sender"]
    (event,) = tu_ky.audit("refused")
    assert (event.actor, event.unit_code, event.detail["reasons"]) == (stranger, UNIT, ["sender"])
    (mail,) = _deliver_replies(tu_ky)
    assert mail.rcpt_tos == (stranger,)
    assert f"Thư gửi từ địa chỉ {stranger} chưa được đăng ký" in text_of(mail)
    assert tu_ky.request(UNIT).state == "sent"

    # The operator vouches for it: accepted, flagged, and the override recorded with who and why.
    why = "Đầu mối dùng hộp thư cá nhân do hộp thư công vụ bị lỗi"
    outcome = take_in(tu_ky.app.db, cfg, Incoming(good, "BaoCao.xlsx", "email", stranger, ON_TIME),
                      override=Override("tranthib", why))
    (u,) = outcome.units
    assert u.status == "accepted" and u.flagged and f"unregistered sender {stranger}" in u.flagged
    (event,) = tu_ky.audit("override")
    assert (event.actor, event.unit_code, event.detail["reason"]) == ("tranthib", UNIT, why)
    assert tu_ky.request(UNIT).state == "accepted"


def _cli(*args: str) -> tuple[int, str]:
    """`baocao ARGS` in this process; the output with Rich's line wrapping undone."""
    from typer.testing import CliRunner

    from flows.cli import app as baocao

    result = CliRunner().invoke(baocao, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.slow
def test_operator_override_through_the_cli_is_accepted_and_recorded_with_who_and_why(tu_ky: TuKy,
                                                                                      tmp_path: Path) -> None:
    label = INFO_LABELS["token"]
    good, filled = tu_ky.fill(UNIT)
    forged = tmp_path / "BaoCao_2026-H1_X11074-VHXH.xlsx"
    forged.write_bytes(set_info(good, label, make_token("không-phải-khóa", UNIT, "2026-H1", 1)))
    when = ON_TIME.isoformat()

    code, output = _cli("submit", str(forged), "--unit", UNIT, "--as-of", when)
    assert code == 0, output
    assert f"{forged.name}: refused {UNIT} 2026-H1" in output and "mã xác thực" in output
    assert tu_ky.audit("override") == [] and tu_ky.request(UNIT).state == "sent"

    why = "Đơn vị gửi bản giấy có chữ ký; chuyên viên nhập lại vào biểu mẫu"
    code, output = _cli("submit", str(forged), "--unit", UNIT, "--as-of", when, "--override", why,
                        "--actor", "nguyenvana")
    assert code == 0, output
    assert f"{forged.name}: accepted {UNIT} 2026-H1" in output, output
    (event,) = tu_ky.audit("override")
    assert (event.actor, event.action, event.unit_code, event.period) == ("nguyenvana", "override", UNIT, "2026-H1")
    assert event.detail == {"reason": why, "file": forged.name}
    accepted_subs = [s for s in tu_ky.submissions(UNIT) if s.status == "accepted"]
    assert len(accepted_subs) == 1 and accepted_subs[0].flagged == f"override by nguyenvana: {why}"
    assert tu_ky.values(accepted_subs[0].id) == filled.values
    req = tu_ky.request(UNIT)
    assert (req.state, req.accepted_submission_id) == ("accepted", accepted_subs[0].id)
    # The override is for a bad token or sender, not for another unit's form.
    other = tmp_path / "khac.xlsx"
    other.write_bytes(tu_ky.fill(OTHER)[0])
    code, output = _cli("submit", str(other), "--unit", UNIT, "--as-of", when, "--override", why,
                        "--actor", "nguyenvana")
    assert "khac.xlsx: refused" in output and len(tu_ky.audit("override")) == 1


# ============================================================================ 6. output safety
HTML_EVIL = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><a href="javascript:alert(1)">bấm</a>']
FORMULA_EVIL = ['=HYPERLINK("http://evil.example","bấm vào đây")', "+cmd|' /C calc'!A0", "-2+3",
                "@SUM(1+1)*cmd|' /C calc'!A0", "=1+1"]


def active_markup(html: str) -> list[str]:
    """What a mail client would execute or load in ``html``: script tags, on* handlers, javascript: links,
    images from anywhere but our own inline chart (cid:)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "iframe", "object", "embed", "form"):
                found.append(tag)
            for key, value in attrs:
                if key.startswith("on") or (value or "").strip().lower().startswith(("javascript:", "data:")):
                    found.append(f"{tag} {key}={value}")
            if tag == "img" and not dict(attrs).get("src", "").startswith("cid:"):
                found.append(f"img {attrs}")

    Parser().feed(html)
    return found


def _set_cells(data: bytes, sheet: str, cells: dict[tuple[int, int], str]) -> bytes:
    """Type texts into cells as a person does in Excel: a leading "=" typed as text stays text."""
    wb = load_workbook(io.BytesIO(data))
    ws = wb[sheet]
    ws.protection.sheet = False
    for (r, c), text in cells.items():
        cell = ws.cell(r, c)
        cell.value = text
        cell.data_type = "s"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _text_rows(data: bytes) -> list[int]:
    ws = load_workbook(io.BytesIO(data))[SHEET_TEXTS]
    return [r for r in range(TEXT_HEADER_ROW + 1, ws.max_row + 1) if ws.cell(r, 1).value]


@pytest.mark.slow
def test_replies_show_units_markup_as_text(tu_ky: TuKy) -> None:
    """A file name and the cells a unit typed reach the receipt and the problems reply escaped."""
    assert all(active_markup(t) for t in HTML_EVIL)  # the check below would see them if they were not escaped
    cfg = tu_ky.cfg
    name = '<img src=x onerror=alert(1)>"BaoCao.xlsx'
    good, _ = tu_ky.fill(UNIT)
    ws = load_workbook(io.BytesIO(good))[SHEET_COUNTS]
    unknown_row = ws.max_row + 1
    code_col = COUNT_COLUMNS.index("Mã") + 1
    warned = _set_cells(good, SHEET_COUNTS, {(unknown_row, code_col): HTML_EVIL[0], (unknown_row, 4): "5"})
    bad, _ = tu_ky.fill(OTHER, set_values={"KIEM_TRA": HTML_EVIL[1]})
    assert take_in(tu_ky.app.db, cfg, Incoming(warned, name, "email", tu_ky.coordinator(UNIT), ON_TIME)) \
        .units[0].status == "accepted"
    assert take_in(tu_ky.app.db, cfg, Incoming(bad, name, "email", tu_ky.coordinator(OTHER), ON_TIME)) \
        .units[0].status == "rejected"
    receipt, problems = sorted(_deliver_replies(tu_ky), key=lambda m: m.message["X-Baocao-Kind"] != "receipt")
    assert receipt.message["X-Baocao-Kind"] == "receipt" and problems.message["X-Baocao-Kind"] == "problems"
    for mail, typed in ((receipt, HTML_EVIL[0].upper()), (problems, HTML_EVIL[1])):
        html = html_of(mail)
        assert not active_markup(html), active_markup(html)
        assert "&lt;img src=x onerror=alert(1)&gt;&#34;BaoCao.xlsx" in html  # the file name, escaped
        escaped = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in html, typed  # what the unit typed is in the mail, as text
        assert typed in text_of(mail)  # the plain text part shows it as written


def _hostile_form(tu_ky: TuKy, unit: str, shift: int) -> tuple[bytes, list[str]]:
    """The unit's form with every narrative answer a formula-looking text carrying markup."""
    data, _ = tu_ky.fill(unit, seed=3)
    rows = _text_rows(data)
    typed = [f"{FORMULA_EVIL[(shift + j) % len(FORMULA_EVIL)]} {HTML_EVIL[(shift + j) % len(HTML_EVIL)]}"
             for j in range(len(rows))]
    return _set_cells(data, SHEET_TEXTS, {(r, 3): t for r, t in zip(rows, typed, strict=True)}), typed


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_report_email_and_appendix_keep_units_text_inert(tu_ky: TuKy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The units' narrative goes through the intake, the database, the consolidate flow and the SMTP
    server: the report's HTML shows it escaped, the XLSX appendix holds it as text (no <f> anywhere),
    the Word report keeps it as text. (A direct plan: its report mail carries the HTML summary; a
    reviewed one sends the same files as a draft first.)"""
    from flows.consolidate import consolidate
    from tests.support.issuing import direct_config

    direct_config(tu_ky.app, monkeypatch, "tu-ky")

    typed: set[str] = set()
    for i, unit in enumerate(("X11074-VHXH", "X11074-VP", "X11074-KT", "X11074-TTHCC")):
        data, texts = _hostile_form(tu_ky, unit, i)
        typed.update(texts)
        outcome = take_in(tu_ky.app.db, tu_ky.cfg, Incoming(data, tu_ky.forms[unit][0], "folder", None, ON_TIME))
        assert outcome.units[0].status == "accepted", [p.message_vi for p in outcome.units[0].problems]
    assert {t.split(" ", 1)[0] for t in typed} >= {f.split(" ", 1)[0] for f in FORMULA_EVIL}
    result = consolidate(period="2026-H1", plan="tu-ky", as_of=datetime(2026, 5, 21, 9, 0, tzinfo=VN))
    assert result["2026-H1/tu-ky/X11074"]["reports"] == ["X11074"]
    (mail,) = [m for m in tu_ky.app.smtp.messages if m.message["X-Baocao-Kind"] == "report"]

    html = html_of(mail)
    assert not active_markup(html), active_markup(html)
    shown = [t for t in typed if t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace('"', "&#34;").replace("'", "&#39;") in html]
    assert shown, "the units' proposals are not in the report email at all"

    files = {p.get_filename(): p.get_content() for p in mail.message.iter_attachments()}
    (xlsx,) = [c for n, c in files.items() if n.endswith(".xlsx")]
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not [n for n in sheets if re.search(rb"<(?:\w+:)?f[\s>/]", z.read(n))]
    wb = load_workbook(io.BytesIO(xlsx))
    cells = {c.value: c for ws in wb for row in ws.iter_rows() for c in row if isinstance(c.value, str)}
    for text in typed:
        assert text in cells, text  # stored whole, as text...
        assert cells[text].data_type == "s" and cells[text].quotePrefix, text  # ...that no spreadsheet evaluates

    (docx,) = [c for n, c in files.items() if n.endswith(".docx")]
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        body = z.read("word/document.xml").decode("utf-8")
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def _header_names(part: EmailMessage) -> list[str]:
    return [k.lower() for k in part.keys()]


EXPECTED_TOP = {"from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version", "content-type",
                "content-transfer-encoding"}
INJECTIONS = ["\r\nBcc: victim@evil.example", "\nReply-To: attacker@evil.example", "\r\n\r\n<h1>giả mạo</h1>",
              "\rX-Evil: 1", "\u2028Bcc: victim@evil.example", "\x85Bcc: victim@evil.example", "\x0bBcc: v@e.example",
              "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?=", "=?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXZpbC5leGFtcGxl?=",
              "=?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3D0D=3D0ABcc:=5Fv@e.example=3F=3D?="]


def _encoded_word(text: str, encoding: str) -> str:
    raw = text.encode("utf-8")
    if encoding == "b":
        return "=?utf-8?b?" + base64.b64encode(raw).decode() + "?="
    return "=?utf-8?q?" + "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"={b:02X}" for b in raw) + "?="


@st.composite
def header_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(
        st.sampled_from(["Phòng Văn hóa - Xã hội", "Báo cáo 6 tháng", "BaoCao.xlsx", " ", "«", "»", "—"]),
        st.sampled_from(INJECTIONS),
        st.builds(_encoded_word, st.sampled_from(INJECTIONS + ["a\r\nb", "\r\n\r\nthân thư"]),
                  st.sampled_from(["b", "q"])),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    ), min_size=1, max_size=6))
    return "".join(parts)


@pytest.mark.timeout(1_800 if SOAK else 240)
@FUZZ
@given(subject=header_text(), filename=header_text(), unit=header_text())
def test_no_text_in_a_subject_file_name_or_unit_name_adds_a_header(subject: str, filename: str, unit: str) -> None:
    """Whatever a subject or an attachment's name holds (CR, LF, Unicode line separators, RFC 2047 encoded
    words hiding them, nested), the message has exactly our headers; an X- header value hiding a
    line break is refused."""
    mail = Mail(key="k", sender="baocao@bonoivu.example", to=("daumoi@tuky.example",), subject=subject, text="t",
                attachments=(Attachment(filename, b"PK", "/".join(XLSX)),))
    raw = build_message(mail).as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert set(_header_names(parsed)) <= EXPECTED_TOP, _header_names(parsed)
    assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
    parts = list(parsed.iter_attachments())
    assert len(parts) == 1 and set(_header_names(parts[0])) <= {"content-type", "content-transfer-encoding",
                                                                "content-disposition", "mime-version"}
    assert parts[0].get_content() == b"PK"
    assert not re.search(rb"^(bcc|reply-to|x-evil):", raw, re.I | re.M)
    # A unit's name through a real template: one line, no header of its own.
    from baocao.rules.bodies import Collector

    cfg_unit = replace(_any_unit(), name=unit)
    subj, _, html = render_mail("problems", unit=cfg_unit, period=Period.parse("2026-H1"), filename=filename,
                                errors=[], warnings=[], reply_to="nopbaocao@bonoivu.example",
                                deadline=date(2026, 6, 2), addressee=unit, requester=unit, technical=unit,
                                sender=Collector(body=unit, person=unit, phone=unit, email="a@b.example"),
                                contact_name=unit, contact_email="a@b.example")
    raw = build_message(replace(mail, subject=subj, html=html, attachments=())).as_bytes()
    assert set(_header_names(email.message_from_bytes(raw, policy=email.policy.default))) <= EXPECTED_TOP
    # Extra X- headers are refused when their value would break a line, never written.
    try:
        raw = build_message(replace(mail, headers={"X-Baocao-Unit": unit})).as_bytes()
    except ValueError:
        return
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert set(_header_names(parsed)) <= EXPECTED_TOP | {"x-baocao-unit"}


@cache
def _any_unit() -> Any:
    from baocao.rules.config import load_config

    return load_config(env={}).hierarchy[UNIT]


def test_known_header_injections_through_build_message() -> None:
    """The cases the fuzz above must cover, spelled out: each would have added a Bcc header."""
    for injection in INJECTIONS:
        raw = build_message(Mail(key="k", sender="a@b.example", to=("c@d.example",), subject="Báo cáo " + injection,
                                 text="t", attachments=(Attachment("f" + injection + ".xlsx", b"x", "/".join(XLSX)),))
                            ).as_bytes()
        assert not re.search(rb"^(bcc|reply-to|x-evil):", raw, re.I | re.M), (injection, raw[:600])
        assert not re.search(rb"^<h1>", raw, re.M), injection


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_file_name_cannot_add_headers_to_the_reply_through_the_real_mail_path(tu_ky: TuKy) -> None:
    """An e-mail whose attachment name hides a line break (RFC 2231, and an encoded word inside it that
    the mailbox decodes once) reaches the subject of the "not taken in" reply: the reply that reaches
    the SMTP server has only our headers and goes only to the sender."""
    from urllib.parse import quote

    from flows.collect import collect

    sender = tu_ky.coordinator(UNIT)
    nested = _encoded_word("x\r\nBcc: victim@evil.example\r\nReply-To: attacker@evil.example", "q")
    names = ["BaoCao\r\nBcc: victim@evil.example.xlsx", f"BaoCao {_encoded_word(nested, 'q')} .xlsx"]
    parts = "".join(
        f"--b\r\nContent-Type: {'/'.join(XLSX)}\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{quote(name, safe='')}\r\n\r\n"
        f"{base64.b64encode(b'<html>%d</html>' % i).decode()}\r\n" for i, name in enumerate(names))
    raw = (f"From: {sender}\r\nTo: {tu_ky.cfg.settings.reply_to}\r\nSubject: Bao cao\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
           f"Gui bao cao.\r\n{parts}--b--\r\n")
    tu_ky.app.imap.append(raw.encode())

    collect(as_of=ON_TIME, folder=False)

    replies = tu_ky.replies()
    assert len(replies) == 1  # one reply per mail, naming both files (issue 17, point 7)
    # The nested word reached the reply still encoded once: shown as written, never decoded into headers.
    assert any("utf-8?q?x=0D=0ABcc=3A=20victim" in text_of(r) for r in replies)
    for reply in replies:
        assert reply.rcpt_tos == (sender,)
        assert set(_header_names(reply.message)) <= EXPECTED_TOP | {"reply-to", "x-baocao-kind", "x-baocao-unit",
                                                                     "x-baocao-period"}, _header_names(reply.message)
        assert reply.message["Reply-To"] == tu_ky.cfg.settings.reply_to
        assert not re.search(rb"^(bcc|x-evil):", reply.raw, re.I | re.M)
        assert "chưa được tiếp nhận" in text_of(reply) and "\n" not in reply.message["Subject"]
        assert VIETNAMESE.search(text_of(reply))


# ============================================================================ 6. secrets
SMTP_USER = "baocao-relay"
SECRETS = {
    "smtp": "Smtp-Pw-7Q2x9fK4-bimat",
    "imap": "Imap-Pw-3Z8m1cV6-bimat",
    "token": "Token-Key-5R1t8wN2-bimat",
}
WRONG = {"smtp": "Smtp-Wrong-4H6j2pL9", "imap": "Imap-Wrong-6D3s7bQ1"}
SERVER_LOGGERS = ("mail.log", "pymap")
"""The loopback SMTP and IMAP servers stand in for the real relay and mailbox, which receive the password
by definition: their own debug logs (aiosmtpd logs the AUTH exchange) are not the application's."""


_SERVER_LINE = re.compile(r"^.*(?:\|\s*(?:pymap|mail\.log)\S* - |^\w+\s+(?:pymap|mail\.log)\S*:\d+ ).*$", re.M)


def _without_server_lines(text: str) -> str:
    """Console output without the lines the loopback servers log (Prefect's and pytest's formats name the
    logger): with the root logger at DEBUG, Prefect's console handler prints them too."""
    return _SERVER_LINE.sub("", text)


def secret_forms(secret: str) -> list[str]:
    """The secret as it could leak: as is, and base64 at any byte alignment (AUTH PLAIN/LOGIN, headers)."""
    forms = [secret]
    raw = secret.encode()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        start, end = -(-pad // 3) * 4, (pad + len(raw)) // 3 * 4
        forms.append(encoded[start:end])
    return [f for f in forms if len(f) >= 12]


class _Everything(logging.Handler):
    """Every record, formatted with its traceback, from wherever it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.server_lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.server_lines if record.name.startswith(SERVER_LOGGERS) else self.lines
        try:
            lines.append(self.format(record) + " " + repr(record.args))
        except Exception as exc:  # noqa: BLE001 - a record that cannot be formatted is still looked at
            lines.append(f"{record.name} {record.msg!r} {record.args!r} {exc!r}")


@pytest.fixture
def guarded_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The application with an SMTP relay that requires AUTH and distinctive secrets everywhere."""
    from tests.support.app import started_app
    from tests.support.servers import ImapServer, SmtpServer

    with SmtpServer(username=SMTP_USER, password=SECRETS["smtp"]) as smtp, \
            ImapServer(username="nopbaocao", password=SECRETS["imap"]) as imap:
        secrets = {
            "BAOCAO_TOKEN_SECRET": SECRETS["token"], "BAOCAO_IMAP__PASSWORD": SECRETS["imap"],
            "BAOCAO_SMTP__USERNAME": SMTP_USER, "BAOCAO_SMTP__PASSWORD": SECRETS["smtp"],
            "BAOCAO_SMTP__MAX_ATTEMPTS": "2",
        }
        with started_app(f"sqlite:///{tmp_path / 'app.db'}", smtp, imap, tmp_path, monkeypatch, secrets) as app:
            yield app


def _api_texts(run_ids: list[Any]) -> list[str]:
    """Everything the Prefect API holds about these flow runs: logs, states, task runs, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.objects import Artifact
    from prefect.client.schemas.sorting import TaskRunSort
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    texts: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)), limit=200, offset=offset)
            texts += [f"{log.name} {log.message}" for log in logs]
            if len(logs) < 200:
                break
            offset += 200
        for run_id in run_ids:
            run = client.read_flow_run(run_id)
            texts.append(run.model_dump_json())
        runs = FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        texts += [t.model_dump_json() for t in client.read_task_runs(
            flow_run_filter=runs, limit=200, sort=TaskRunSort.EXPECTED_START_TIME_ASC)]
        # /artifacts/filter directly: prefect 3.8's read_artifacts sends null filters (422), and an empty
        # task-run filter leaves out the artifacts a flow creates outside any task (see test_chase.py).
        response = client.request("POST", "/artifacts/filter", json={
            "artifacts": {"flow_run_id": {"any_": [str(r) for r in run_ids]}}, "limit": 200, "offset": 0,
            "sort": "CREATED_DESC"})
        texts += [a.model_dump_json() for a in Artifact.model_validate_list(response.json())]
    assert any("collect" in t or "open-period" in t for t in texts)
    assert any('"type":"table"' in t.replace(" ", "") for t in texts), "no artifact read"
    return texts


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.usefixtures("prefect_api")
def test_secrets_never_reach_logs_artifacts_errors_or_files(guarded_app: Any, caplog: pytest.LogCaptureFixture,
                                                             capfd: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from baocao.devservers.simulate import figures, fill_form
    from baocao.opening.forms import INFO_LABELS as LABELS
    from flows.chase import chase
    from flows.collect import collect
    from flows.open_period import open_period

    app = guarded_app
    assert sorted(app.config().settings.secrets()) == sorted(SECRETS.values())
    everything = _Everything()
    watched = [logging.getLogger(n) for n in ("", "prefect", "prefect.extra", "prefect._internal", "prefect.flow_runs",
                                              "prefect.task_runs", "baocao", "flows")]
    caplog.set_level(logging.DEBUG)
    for name in ("prefect", "prefect.extra", "prefect.flow_runs", "prefect.task_runs", "baocao", "flows"):
        caplog.set_level(logging.DEBUG, logger=name)
    for logger in watched:
        logger.addHandler(everything)
    states = []
    try:
        # With the right secrets: a cycle opened, forms sent back (one genuine, one forged), reminders.
        states.append(open_period(period="2026-H1", plan="tu-ky", return_state=True))
        assert states[-1].is_completed(), states[-1]
        forms = {m.message["X-Baocao-Unit"]: next(m.message.iter_attachments()) for m in app.smtp.messages
                 if m.message["X-Baocao-Kind"] == "request" and list(m.message.iter_attachments())}
        assert len(forms) == 4
        rng = random.Random(5)
        for unit, forged in ((UNIT, False), (OTHER, True)):
            data = fill_form(forms[unit].get_content(), app.cfg.catalog, figures(app.cfg.catalog, rng), rng)
            if forged:
                data = set_info(data, LABELS["token"], make_token("đoán", unit, "2026-H1", 1))
            msg = EmailMessage()
            msg["From"] = app.cfg.hierarchy[unit].coordinator_emails[0]
            msg["To"], msg["Subject"] = app.cfg.settings.reply_to, "Báo cáo"
            msg.set_content("Gửi báo cáo.")
            msg.add_attachment(data, maintype=XLSX[0], subtype=XLSX[1], filename=forms[unit].get_filename())
            app.imap.append(msg.as_bytes())
        states.append(collect(as_of=ON_TIME, return_state=True))
        assert states[-1].is_completed(), states[-1]
        assert states[-1].result()["mailbox"]["by_status"] == {"accepted": 1, "refused": 1}
        states.append(chase(as_of=datetime(2026, 5, 28, 8, 30, tzinfo=VN), return_state=True))
        assert states[-1].is_completed() and states[-1].result()["sent"] >= 1, states[-1]
        assert (SMTP_USER, True) in app.smtp.auth_attempts

        # With wrong passwords: failures happen, are logged and end the runs Failed.
        monkeypatch.setenv("BAOCAO_SMTP__PASSWORD", WRONG["smtp"])
        monkeypatch.setenv("BAOCAO_IMAP__PASSWORD", WRONG["imap"])
        sent_before = len(app.smtp.messages)
        states.append(chase(as_of=LATE, return_state=True))
        assert states[-1].is_failed(), states[-1]
        assert (SMTP_USER, False) in app.smtp.auth_attempts and len(app.smtp.messages) == sent_before
        states.append(open_period(period="2026-Y", plan="tu-ky", return_state=True))
        assert states[-1].is_failed(), states[-1]
        states.append(collect(as_of=LATE, folder=False, return_state=True))
        assert not states[-1].is_completed(), states[-1]
    finally:
        for logger in watched:
            logger.removeHandler(everything)

    captured = capfd.readouterr()
    haystacks: dict[str, str] = {
        "caplog": "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
                            if not r.name.startswith(SERVER_LOGGERS)),
        "handlers": "\n".join(everything.lines),
        "stdout": _without_server_lines(captured.out),
        "stderr": _without_server_lines(captured.err),
        "states": "\n".join(f"{s!r} {s.message} {s.result(raise_on_failure=False)!r}" for s in states),
        "prefect_api": "\n".join(_api_texts([s.state_details.flow_run_id for s in states])),
        "mails": "\n".join(m.raw.decode("utf-8", "replace") for m in app.smtp.messages),
        "database": (app.tmp_path / "app.db").read_bytes().decode("latin-1"),
        "files": "\n".join(p.read_bytes().decode("latin-1") for p in app.tmp_path.rglob("*")
                           if p.is_file() and p.name != "app.db"),
    }
    assert "refused" in haystacks["handlers"] or "refused" in haystacks["caplog"]
    assert re.search(r"(?i)auth|login|535", haystacks["handlers"] + haystacks["prefect_api"]), \
        "the wrong password left no trace at all"
    # Control: the loopback IMAP server's own debug log shows the LOGIN it received, so the capture above
    # does see DEBUG records from every thread, and the search finds a password where there is one.
    assert SECRETS["imap"] in "\n".join(everything.server_lines)
    leaks = [(where, secret) for where, text in haystacks.items()
             for secret in [*SECRETS.values(), *WRONG.values()] for form in secret_forms(secret) if form in text]
    assert not leaks, leaks


def test_configuration_errors_and_the_cli_never_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from baocao.rules.config import ConfigError, load_config

    for name, value in (("BAOCAO_SMTP__PASSWORD", SECRETS["smtp"]), ("BAOCAO_IMAP__PASSWORD", SECRETS["imap"]),
                        ("BAOCAO_TOKEN_SECRET", SECRETS["token"])):
        monkeypatch.setenv(name, value)
    settings_ = load_config().settings
    assert sorted(settings_.secrets()) == sorted(SECRETS.values())
    shown = [repr(settings_), str(settings_), settings_.model_dump_json(), repr(settings_.smtp)]
    code, output = _cli("config", "check")
    assert code == 0 and "configuration OK" in output
    shown.append(output)
    # A mistyped key next to the secrets, and a secret where a number is expected: refused without the value.
    monkeypatch.setenv("BAOCAO_SMTP__PASWORD", SECRETS["smtp"])
    with pytest.raises(ConfigError) as typo:
        load_config()
    monkeypatch.delenv("BAOCAO_SMTP__PASWORD")
    monkeypatch.setenv("BAOCAO_SMTP__PORT", SECRETS["smtp"])
    with pytest.raises(ConfigError) as wrong_type:
        load_config()
    code, output = _cli("config", "check")
    assert code == 2 and "configuration error" in output and "smtp.port" in output
    shown += [str(typo.value), repr(typo.value), str(wrong_type.value), repr(wrong_type.value), output]
    assert "smtp.paswo" in str(typo.value).lower()
    leaks = [(text[:80], secret) for text in shown for secret in SECRETS.values()
             for form in secret_forms(secret) if form in text]
    assert not leaks, leaks


def test_secret_forms_find_a_password_in_an_auth_exchange() -> None:
    """The search above finds a password however base64 aligns it (AUTH PLAIN, AUTH LOGIN)."""
    password = SECRETS["smtp"]
    for blob in (b"\0" + SMTP_USER.encode() + b"\0" + password.encode(), password.encode(),
                 b"u\0" + password.encode(), b"us\0" + password.encode()):
        line = base64.b64encode(blob).decode()
        assert any(form in line for form in secret_forms(password)[1:]), blob
    assert not any(form in base64.b64encode(b"\0user\0other-password").decode() for form in secret_forms(password))
