"""Issue 21 §1, §2, §8: messages address and are signed by administrative bodies, and speak no codes.

Read as the clerk receives them: every mail of a small cycle (Phường Nhị Chiểu under the national
plan: its own request from the city, its departments' forms, a receipt, a list of problems, a
returned report, reminders, an overdue notice, an escalation, an answer to a stray file) is taken
from the real SMTP server and parsed with Python's email parser.
"""

from __future__ import annotations

import random
import re
import shutil
from datetime import date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from baocao import runtime
from baocao.chasing.reminders import chase_cycle
from baocao.devservers.simulate import figures, fill_form
from baocao.errors import ConfigError
from baocao.intake.operations import return_submission
from baocao.intake.pipeline import Incoming, take_in
from baocao.mail import outbox
from baocao.mail.mime import Attachment, Mail, flatten_mail
from baocao.opening import dispatch
from baocao.opening.forms import FormBuilder
from baocao.rules.bodies import body_name
from baocao.rules.config import Config, load_config
from baocao.rules.periods import Period
from baocao.store.queries import open_cycle

VN = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT_CODE = re.compile(r"\b(?:BNV|[TX]\d{2,5}(?:-[A-Z]+)*)\b")
PERIOD_CODE = re.compile(r"\b\d{4}-(?:Q1|H1|9M|Y)\b")


@pytest.mark.parametrize(("code", "expected"), [
    ("X10532", "Ủy ban nhân dân phường Lê Thanh Nghị"),
    ("X11074", "Ủy ban nhân dân xã Tứ Kỳ"),
    ("X11914", "Ủy ban nhân dân đặc khu Cát Hải"),
    ("T31", "Ủy ban nhân dân thành phố Hải Phòng"),
    ("T12", "Ủy ban nhân dân tỉnh Lai Châu"),  # the official list says only "Lai Châu"
    ("T31-SNV", "Sở Nội vụ thành phố Hải Phòng"),
    ("BNV", "Bộ Nội vụ"),
])
def test_each_level_is_addressed_as_its_body(cfg: Config, code: str, expected: str) -> None:
    assert body_name(cfg.hierarchy[code]) == expected


def test_the_collecting_body_and_its_contact_come_from_the_plan(cfg: Config) -> None:
    h = cfg.hierarchy
    national = cfg.plan("national")
    ward = national.collector(h, "X10714")  # Hải Phòng collects its communes through Sở Nội vụ (seeds 000, 001)
    assert (ward.body, ward.person, ward.phone) == ("Sở Nội vụ thành phố Hải Phòng", "Nguyễn Thị Thu Hà", "0225.3000.226")
    assert ward.email == h["T31-SNV"].coordinator_emails[0]  # the office is a unit of the tree: its address
    assert national.collector(h, "T31").body == "Bộ Nội vụ"
    assert cfg.plan("hue").collector(h, "T46-SNV").body == "Sở Nội vụ thành phố Huế"
    # Unconfigured (a plan without [collector]): the People's Committee's office.
    bare = type(national)(**{**national.__dict__, "collectors": {}})
    assert bare.collector(h, "X10714").body == "Văn phòng Ủy ban nhân dân thành phố Hải Phòng"
    assert bare.collector(h, "T31").body == "Bộ Nội vụ"


def test_a_collector_naming_an_unknown_level_fails_config_check(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app as cli

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parent.parent / "config", config)
    plan = config / "plans" / "tu-ky.toml"
    plan.write_text(plan.read_text(encoding="utf-8") + '\n[collector.xa]\nbody = "Phòng Văn hóa - Xã hội {unit}"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"collector\.xa"):
        load_config(config, env={})
    result = CliRunner().invoke(cli, ["config", "check"], env={"BAOCAO_CONFIG_DIR": str(config)})
    assert result.exit_code != 0 and "collector.xa" in result.output


# ----------------------------------------------------------------------------- as received
class _Visible(HTMLParser):
    """The text a mail client shows, without the operator's technical line."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip or tag in ("title", "style") or ("class", "ma-ky-thuat") in attrs:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_html(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return " ".join(parser.parts)


def readable_parts(msg: EmailMessage) -> dict[str, str]:
    """What a person reads: subject, text body (its last line, the technical one, left out), HTML text,
    attachment names."""
    text = msg.get_body(("plain",)).get_content().rstrip().splitlines()
    if msg["X-Baocao-Unit"]:  # a message about a unit ends with the operator's line
        assert text[-1].startswith("Mã kỹ thuật: "), text[-3:]
        text = text[:-1]
    return {"subject": str(msg["Subject"]), "text": "\n".join(text),
            "html": visible_html(msg.get_body(("html",)).get_content()),
            "files": " ".join(a.get_filename() or "" for a in msg.iter_attachments())}


def codes_in(text: str, indicator_codes: set[str]) -> list[str]:
    found = UNIT_CODE.findall(text) + PERIOD_CODE.findall(text)
    found += [w for w in re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", text) if w in indicator_codes]
    return found + [q for q in ("«", "»") if q in text]


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=VN)


@pytest.mark.slow
def test_every_message_kind_as_received_is_addressed_signed_and_free_of_codes(app) -> None:  # noqa: ANN001
    cfg = runtime.config()
    db = runtime.database(cfg)
    h = cfg.hierarchy
    info = open_cycle(db, cfg, Period.parse("2026-H1"), "national", "X10714")
    prepared = dispatch.prepare_requests(db, cfg, info, h.subtree_codes("X10714"), FormBuilder(cfg.catalog))
    assert not prepared.failed, prepared.failed
    delivery = outbox.deliver(db, cfg.settings, cycle_id=info.id, kinds=["request"])
    dispatch.mark_sent(db, info, delivery.sent)
    requests = {str(m.message["X-Baocao-Unit"]): m.message for m in app.smtp.messages}
    departments = [u.code for u in h.children("X10714")]
    first, second, third = departments[:3]

    def form_of(unit: str) -> tuple[str, bytes]:
        (att,) = list(requests[unit].iter_attachments())
        return att.get_filename(), att.get_content()

    def send(unit: str, when: datetime, mistake: str | None = None, name: str | None = None) -> None:
        filename, form = form_of(unit)
        rng = random.Random(unit)
        data = fill_form(form, cfg.catalog, figures(cfg.catalog, rng), rng, mistake=mistake)
        take_in(db, cfg, Incoming(data, name or filename, "email", sender=h[unit].coordinator_emails[0],
                                  received_at=when))

    deadline = min(r.deadline for r in [dispatch_request(db, info, u) for u in departments])
    send(first, at(deadline, 8))                          # receipt
    send(second, at(deadline, 9), mistake="relation")     # problems
    take_in(db, cfg, Incoming(b"not a form", "ghi chu.txt", "email", sender="ai.do@khac.example",
                              received_at=at(deadline, 10)))  # unidentified
    return_submission(db, cfg, first, "2026-H1", "Số liệu hội nghị chưa khớp với sổ theo dõi.", actor="test",
                      at=at(deadline, 11))                # returned
    for day in (cfg.calendar.add_working_days(deadline, -1), cfg.calendar.add_working_days(deadline, 1),
                cfg.calendar.add_working_days(deadline, 3)):
        chase_cycle(db, cfg, info, at(day, 8))            # reminder, overdue, escalation
    assert outbox.deliver(db, cfg.settings).ok

    got = [message_from_bytes(m.raw, policy=policy.default) for m in app.smtp.messages]
    kinds = {str(m["X-Baocao-Kind"]) for m in got}
    assert {"request", "receipt", "problems", "returned", "reminder", "overdue", "escalation"} <= kinds, kinds
    indicator_codes = {i.code for i in cfg.catalog.indicators}
    for m in got:
        parts = readable_parts(m)
        for where, text in parts.items():
            assert not codes_in(text, indicator_codes), (m["X-Baocao-Kind"], where, codes_in(text, indicator_codes),
                                                         text[:400])

    by_kind = {str(m["X-Baocao-Kind"]): m for m in got}
    ward = requests["X10714"]  # the ward's own request: asked by the city's Sở Nội vụ
    ward_text = ward.get_body(("plain",)).get_content()
    assert "Kính gửi: Ủy ban nhân dân phường Nhị Chiểu" in ward_text
    assert "Sở Nội vụ thành phố Hải Phòng đề nghị Ủy ban nhân dân phường Nhị Chiểu" in ward_text
    assert ("Đầu mối liên hệ: Nguyễn Thị Thu Hà, Sở Nội vụ thành phố Hải Phòng, điện thoại 0225.3000.226, "
            "thư điện tử daumoi.t31-snv@donvi.example") in ward_text
    dept_text = requests[third].get_body(("plain",)).get_content()
    assert f"Kính gửi: {h[third].name}" in dept_text
    assert "Phòng Văn hóa - Xã hội phường Nhị Chiểu đề nghị" in dept_text
    assert "Đầu mối liên hệ: Phạm Thị Lan, Phòng Văn hóa - Xã hội phường Nhị Chiểu, điện thoại 0220.3000.158" in dept_text
    assert "(đầu mối và người đứng đầu" not in " ".join(m.get_body(("plain",)).get_content() for m in got)
    # §8: the escalation, to the ward, names whom to call at the office that collects the late departments.
    escalation = visible_html(by_kind["escalation"].get_body(("html",)).get_content())
    assert "Kính gửi: Ủy ban nhân dân phường Nhị Chiểu" in " ".join(escalation.split())
    assert "Phạm Thị Lan" in escalation and "0220.3000.158" in escalation
    # The receipt names each figure by its words and its row on the form.
    receipt = by_kind["receipt"].get_body(("plain",)).get_content()
    assert re.search(r"^- Dòng \d+ – Số ", receipt, re.M), receipt
    # The form travels under a name a person gives it.
    assert form_of(third)[0] == f"Biểu báo cáo 6 tháng đầu năm 2026 - {h[third].name}.xlsx"


def dispatch_request(db, info, unit: str):  # noqa: ANN001, ANN201
    from sqlalchemy import select

    from baocao.store.db import Request

    with db.session() as s:
        return s.scalars(select(Request).where(Request.cycle_id == info.id, Request.unit_code == unit)).one()


def test_a_vietnamese_file_name_survives_the_smtp_server_and_the_parser(app) -> None:  # noqa: ANN001
    """RFC 2231: the name is the Vietnamese one at the other end, and no path or header trick gets through."""
    cfg = runtime.config()
    name = "Biểu báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.xlsx"
    tricky = "..\\..\\Biểu \r\nBcc: x@y.example báo cáo.xlsx"
    mail = Mail(key="t/1", sender=cfg.settings.sender, to=["daumoi.x10714@donvi.example"], subject="Biểu báo cáo",
                text="Kính gửi", attachments=[Attachment(name, b"PK\x03\x04", "application/octet-stream"),
                                              Attachment(tricky, b"x", "application/octet-stream")])
    _, _, raw = flatten_mail(mail)
    assert raw is not None and re.search(rb"filename\*(?:0\*)?=utf-8''", raw, re.I)  # RFC 2231, not stripped
    import smtplib

    with smtplib.SMTP("127.0.0.1", app.smtp.port) as smtp:
        smtp.sendmail("baocao@bonoivu.example", ["daumoi.x10714@donvi.example"], raw)
    received = message_from_bytes(app.smtp.messages[-1].raw, policy=policy.default)
    names = [a.get_filename() for a in received.iter_attachments()]
    assert names[0] == name
    assert "/" not in names[1] and "\\" not in names[1] and "\n" not in names[1] and "Biểu" in names[1]
    assert received["Bcc"] is None
