"""Fixtures that live with their helpers in tests/support; registered by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.tuky import TuKy, open_tu_ky


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    return open_tu_ky(app)
