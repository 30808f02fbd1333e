"""Fixtures the emulator tests share: one HTTP client, the plugin's emulator and PKI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def emu(rolesanywhere_emulator: RolesAnywhereEmulator) -> RolesAnywhereEmulator:
    return rolesanywhere_emulator


@pytest.fixture(scope="module")
def pki(rolesanywhere_pki: PKI) -> PKI:
    return rolesanywhere_pki
