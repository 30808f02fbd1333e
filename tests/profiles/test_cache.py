"""The cache's pieces: its folder, its margin, its key, and expiry on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rolesanywhere.credentials import Credentials
from rolesanywhere.profiles.cache import (
    CredentialCache,
    cache_enabled,
    cache_folder,
    cache_key,
    margin,
)
from rolesanywhere.profiles.settings import SETTINGS, IdentitySettings, parse_helper_command


def test_folder_follows_xdg_then_home() -> None:
    assert cache_folder({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == "/x/rolesanywhere"
    assert cache_folder({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == "/h/.cache/rolesanywhere"
    assert cache_folder({"HOME": "/h"}) == "/h/.cache/rolesanywhere"


def test_enabled_by_flag_or_variable() -> None:
    assert cache_enabled(True, {}) and not cache_enabled(False, {})
    assert cache_enabled(None, {"ROLESANYWHERE_CACHE": "1"})
    assert cache_enabled(None, {"ROLESANYWHERE_CACHE": "true"})
    assert not cache_enabled(None, {"ROLESANYWHERE_CACHE": "0"})


def test_margin_is_five_minutes_or_a_tenth() -> None:
    assert margin(900) == 300 and margin(3600) == 360 and margin(43200) == 4320


def example_values(tmp_path: Path) -> dict[str, object]:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"certificate one")
    values = {s.name: s.example for s in SETTINGS}
    values.update(certificate=str(cert), private_key=None, intermediates=None)
    return values


def test_key_covers_each_deciding_setting_and_the_certificate_bytes(tmp_path: Path) -> None:
    values = example_values(tmp_path)
    base = cache_key(values, {})
    for name, other in [
        ("role_arn", "arn:aws:iam::111122223333:role/other"), ("duration_seconds", 900),
        ("role_session_name", "x"), ("region", "eu-west-1"), ("endpoint", "https://e.test"),
        ("verify", True), ("profile_arn", "p"), ("trust_anchor_arn", "t"),
    ]:  # fmt: skip
        assert cache_key({**values, name: other}, {}) != base, name
    assert cache_key({**values, "password": "other", "timeout": 1.0}, {}) == base
    Path(str(values["certificate"])).write_bytes(b"certificate two")
    assert cache_key(values, {}) != base
    env_key = cache_key({**values, "certificate": "env:CERT"}, {"CERT": "a"})
    assert env_key != cache_key({**values, "certificate": "env:CERT"}, {"CERT": "b"})
    with pytest.raises(ValueError, match="--certificate reads standard input"):
        cache_key({**values, "certificate": "-"}, {})
    with pytest.raises(ValueError, match="PKCS#11"):
        cache_key({**values, "certificate": "pkcs11:object=cert"}, {})


def test_expiry_on_a_fake_clock(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    warnings: list[str] = []
    environ = {"XDG_CACHE_HOME": str(tmp_path / "c")}
    cache = CredentialCache(
        example_values(tmp_path), warn=warnings.append, environ=environ, clock=lambda: now[0]
    )
    expires = datetime.fromtimestamp(now[0] + 900, UTC)
    creds = Credentials("AKIDEXAMPLE", "secret-value", "token-value", expires)
    assert cache.get() is None
    cache.put(creds)
    assert cache.get() == creds.to_process_json()
    now[0] += 599  # 301 s left of 900: still more than the 300 s margin
    assert cache.get() == creds.to_process_json()
    now[0] += 1
    assert cache.get() is None
    assert warnings == []


def test_credential_process_line_with_cache_runs_in_process() -> None:
    settings = parse_helper_command(
        ["aws_signing_helper", "credential-process", "--certificate", "c.pem",
         "--trust-anchor-arn", "t", "--profile-arn", "p", "--role-arn", "r", "--cache"]
    )  # fmt: skip
    assert isinstance(settings, IdentitySettings) and settings.certificate == "c.pem"
