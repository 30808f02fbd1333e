"""Fixtures the auth tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rolesanywhere.testing import emulator as emulator_module
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from tests.session.test_refresh import FakeClock


@pytest.fixture
def clock(
    rolesanywhere_emulator: RolesAnywhereEmulator, monkeypatch: pytest.MonkeyPatch
) -> FakeClock:
    """A fake clock the emulator reads too (its clock-skew check widened to two days)."""
    monkeypatch.setattr(emulator_module, "MAX_CLOCK_SKEW", timedelta(days=2))
    fake = FakeClock(datetime.now(UTC))
    rolesanywhere_emulator.clock = fake
    return fake
