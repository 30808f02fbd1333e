"""``rolesanywhere demo``: the whole flow offline, with nothing secret in what it prints."""

from __future__ import annotations

import io
import re

import pytest

from rolesanywhere.cli.main import main
from rolesanywhere.testing import emulator as emulator_module


def test_demo_runs_the_whole_flow_and_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    issued: list[emulator_module.IssuedCredentials] = []
    original = emulator_module.RolesAnywhereEmulator.lookup

    def spy(self: emulator_module.RolesAnywhereEmulator, akid: str):  # type: ignore[no-untyped-def]
        found = original(self, akid)
        if found is not None:
            issued.append(found)
        return found

    monkeypatch.setattr(emulator_module.RolesAnywhereEmulator, "lookup", spy)
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo"], stdout=out, stderr=err) == 0, err.getvalue()
    text = out.getvalue()
    for step in (
        "1. PKI",
        "2. Emulators",
        "3. CLI",
        "4. Library",
        "5. Ship",
        "6. Query",
        "7. Verified",
    ):
        assert step in text
    assert '"SecretAccessKey":"<redacted>"' in text
    assert "2,000 events delivered" in text
    assert re.search(r"logs-\d{4}\.\d{2}\.\d{2}\s", text)
    assert "2000 events stored" in text and "0 duplicates" in text
    assert "2 signed queries verified (service es)" in text
    assert issued, "the OSIS emulator verified requests against issued credentials"
    for creds in issued:
        assert creds.secret_access_key not in text
        assert creds.session_token not in text
    assert "PRIVATE KEY" not in text


def test_demo_with_an_mldsa_key() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", "--key-type", "ml-dsa-65"], stdout=out, stderr=err) == 0, err.getvalue()
    assert "client certificate (ml-dsa-65" in out.getvalue()
    assert "7. Verified" in out.getvalue()
