"""Fixtures shared by the tailer tests."""

from __future__ import annotations

import pytest

from tests.ship.tailing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
