"""Submission tokens: bound to unit, period, form version and secret; checked without exceptions."""

from __future__ import annotations

import logging
import re

import pytest
from pydantic import SecretStr

from baocao.opening.tokens import make_token, token_version, verify_token

SECRET = "s3cret-for-tests"


def test_token_shape_is_prefixed_and_long_enough() -> None:
    token = make_token(SECRET, "X10714", "2026-H1", 1)
    assert re.fullmatch(r"v1-[a-z2-7]{26}", token), token
    assert make_token(SECRET, "X10714", "2026-H1", 12).startswith("v12-")


def test_token_is_deterministic_and_depends_on_every_input() -> None:
    base = make_token(SECRET, "X10714", "2026-H1", 1)
    assert make_token(SECRET, "X10714", "2026-H1", 1) == base
    variants = {
        make_token("other-secret", "X10714", "2026-H1", 1),
        make_token(SECRET, "X11074", "2026-H1", 1),
        make_token(SECRET, "X10714", "2026-Q1", 1),
        make_token(SECRET, "X10714", "2026-H1", 2)[3:],
    }
    assert base not in variants and base[3:] not in variants
    assert len(variants) == 4


def test_fields_cannot_be_shifted_between_unit_and_period() -> None:
    assert make_token(SECRET, "A1", "2026-H1", 1) != make_token(SECRET, "A", "12026-H1", 1)


def test_verify_accepts_the_issued_token_and_what_people_do_to_it() -> None:
    token = make_token(SECRET, "X10714", "2026-H1", 1)
    assert verify_token(SECRET, token, "X10714", "2026-H1", 1)
    assert verify_token(SECRET, f"  {token.upper()} \n", "X10714", "2026-H1", 1)


@pytest.mark.parametrize(
    ("unit", "period", "version", "secret"),
    [("X11074", "2026-H1", 1, SECRET), ("X10714", "2026-9M", 1, SECRET), ("X10714", "2026-H1", 2, SECRET),
     ("X10714", "2026-H1", 1, "wrong")],
)
def test_verify_refuses_another_unit_period_version_or_secret(unit: str, period: str, version: int,
                                                               secret: str) -> None:
    token = make_token(SECRET, "X10714", "2026-H1", 1)
    assert not verify_token(secret, token, unit, period, version)


@pytest.mark.parametrize("token", [None, 12345, "", "v1-", "v1-" + "a" * 26, "không phải mã", "v1-ÿÿÿ" * 5])
def test_verify_refuses_garbage_without_raising(token: object) -> None:
    assert verify_token(SECRET, token, "X10714", "2026-H1", 1) is False


def test_secretstr_is_accepted_and_an_empty_secret_refused() -> None:
    assert make_token(SecretStr(SECRET), "X10714", "2026-H1", 1) == make_token(SECRET, "X10714", "2026-H1", 1)
    with pytest.raises(ValueError) as excinfo:
        make_token("", "X10714", "2026-H1", 1)
    assert SECRET not in str(excinfo.value)


def test_secret_never_appears_in_token_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = make_token(SECRET, "X10714", "2026-H1", 1)
    verify_token(SECRET, token + "x", "X10714", "2026-H1", 1)
    assert SECRET not in token
    assert SECRET not in caplog.text


def test_token_version_reads_the_prefix() -> None:
    assert token_version(make_token(SECRET, "X10714", "2026-H1", 3)) == 3
    assert token_version("abc") is None
    assert token_version(None) is None
