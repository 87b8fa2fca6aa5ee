"""Grouping the units' own words (baocao/consolidation/narrative.py): what an official would write once."""

from __future__ import annotations

import random

from baocao.consolidation.narrative import group_texts, normalise, split_points

# Shortcomings as communes write them (seed 000-004 wording), each with its near-duplicate rewrites.
POINTS = {
    "infra": ["Hạ tầng mạng, trang thiết bị công nghệ thông tin còn thiếu, chưa đồng bộ.",
              "hạ tầng mạng, trang thiết bị công nghệ thông tin còn thiếu và chưa đồng bộ",
              "Hạ tầng mạng,  trang thiết bị CNTT còn thiếu, chưa đồng bộ;",
              "Ha tang mang, trang thiet bi cong nghe thong tin con thieu, chua dong bo"],
    "staff": ["Đội ngũ cán bộ, công chức còn thiếu, kiêm nhiệm nhiều việc.",
              "đội ngũ cán bộ công chức còn thiếu, phải kiêm nhiệm nhiều việc",
              "Đội ngũ cán bộ, công chức còn thiếu; kiêm nhiệm nhiều việc"],
    "meetings": ["Một số cuộc họp còn kéo dài, vượt thời gian quy định.",
                 "Một số cuộc họp còn kéo dài vượt thời gian quy định",
                 "- Một số cuộc họp còn kéo dài, vượt quá thời gian quy định."],
    "money": ["Kinh phí cho chuyển đổi số còn hạn chế.", "kinh phí chuyển đổi số còn hạn chế"],
}
COUNTS = {"infra": 42, "staff": 31, "meetings": 19, "money": 8}


def test_near_duplicates_from_100_units_make_a_handful_of_groups_with_their_counts():
    rng = random.Random(226)
    kinds = [k for k, n in COUNTS.items() for _ in range(n)]
    rng.shuffle(kinds)
    texts = {f"X{i:03d}": rng.choice(POINTS[kind]) for i, kind in enumerate(kinds)}
    groups = group_texts(texts)
    assert [g.count for g in groups] == [42, 31, 19, 8]
    for group, kind in zip(groups, COUNTS, strict=True):
        assert set(group.units) == {u for u, k in zip(texts, kinds, strict=True) if k == kind}
        assert group.text.rstrip(".") in [p.rstrip(".;") for p in POINTS[kind]]
    assert sum(g.count for g in groups) == 100


def test_a_unit_counts_once_per_point_and_its_lines_are_points_of_their_own():
    texts = {
        "A": "- Hạ tầng mạng còn yếu.\n- Kinh phí còn hạn chế.",
        "B": "Hạ tầng mạng còn yếu\nhạ tầng mạng còn yếu.",
        "C": "1. Kinh phí còn hạn chế;",
    }
    groups = group_texts(texts)
    assert [(g.text, g.units) for g in groups] == [("Hạ tầng mạng còn yếu", ["A", "B"]),
                                                   ("Kinh phí còn hạn chế", ["A", "C"])]
    assert split_points("a) Một\n  \n+ Hai;") == ["Một", "Hai"]


def test_different_points_stay_apart_and_normalising_ignores_case_marks_and_punctuation():
    assert normalise("  Đội ngũ CÁN BỘ,   công chức… ") == "doi ngu can bo cong chuc"
    groups = group_texts({"A": "Hạ tầng mạng còn yếu.", "B": "Cán bộ còn thiếu.", "C": "Kinh phí còn hạn chế."})
    assert [g.count for g in groups] == [1, 1, 1]


def test_a_national_spread_of_distinct_texts_is_grouped():
    """Bộ Nội vụ's report gathers every leaf's words (3,390 units, most of them different): the prefix
    filter compares each with the few groups that can match (this test took 7 minutes without it)."""
    rng = random.Random(9)
    words = [f"tu{i}" for i in range(400)]
    texts = {f"U{i}": " ".join(rng.sample(words, 8)) for i in range(3390)}
    groups = group_texts(texts)
    assert sum(g.count for g in groups) == 3390
