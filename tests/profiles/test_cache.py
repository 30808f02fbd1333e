"""The cache's pieces: its folder, its margin and spread, its key, expiry on a fake clock, and
the lock that makes a miss one call."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rolesanywhere.credentials import Credentials
from rolesanywhere.profiles.cache import (
    LOCK_POLL,
    CredentialCache,
    cache_enabled,
    cache_folder,
    cache_key,
    margin,
    spread,
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
    # Served while more than the 300 s margin and this entry's spread remain.
    early = spread(cache.key, now[0], 900)
    assert 0 < early < 150
    issued = now[0]
    now[0] = issued + 600 - early - 0.01
    assert cache.get() == creds.to_process_json()
    now[0] = issued + 600 - early + 0.01
    assert cache.get() is None
    assert warnings == []


def test_spread_is_the_same_for_an_entry_bounded_and_varies_with_the_issue_time() -> None:
    key = "ab" * 32
    assert spread(key, 1_800_000_000.0, 3600) == spread(key, 1_800_000_000.0, 3600)
    shares = [spread(key, 1_800_000_000.0 + i * 0.37, 3600) / margin(3600) for i in range(400)]
    assert all(0 <= share < 0.5 for share in shares)
    assert len(set(shares)) == len(shares)  # every issue time its own point
    assert min(shares) < 0.05 and max(shares) > 0.45  # spread over the whole range
    assert spread("cd" * 32, 1_800_000_000.0, 3600) != spread(key, 1_800_000_000.0, 3600)


@pytest.mark.parametrize("lifetime", [200, 300, 400, 450, 600, 900, 3600, 43200])
def test_spread_never_takes_more_than_half_of_what_the_margin_leaves(lifetime: int) -> None:
    for issued in range(1_800_000_000, 1_800_000_000 + 50):
        served = lifetime - margin(lifetime) - spread("ab" * 32, float(issued), lifetime)
        assert served >= (lifetime - margin(lifetime)) / 2 or lifetime <= margin(lifetime)
        assert served <= lifetime - margin(lifetime)


def cache_with_entry(
    tmp_path: Path, warnings: list[str], timer: list[float], now: float = 1_800_000_000.0
) -> tuple[CredentialCache, Credentials]:
    def sleep(seconds: float) -> None:
        assert 0 < seconds <= LOCK_POLL
        timer[0] += seconds

    cache = CredentialCache(
        example_values(tmp_path), warn=warnings.append,
        environ={"XDG_CACHE_HOME": str(tmp_path / "c")}, clock=lambda: now,
        timer=lambda: timer[0], sleep=sleep,
    )  # fmt: skip
    expires = datetime.fromtimestamp(now + 3600, UTC)
    return cache, Credentials("AKIDEXAMPLE", "secret-value", "token-value", expires)


def hold_lock(cache: CredentialCache) -> int:
    """Lock the entry as another process would (another open file description)."""
    os.makedirs(cache.folder, mode=0o700, exist_ok=True)
    assert cache.path is not None
    fd = os.open(cache.path[: -len(".json")] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_lock_wait_gives_up_by_the_deadline_with_one_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    timer = [100.0]
    cache, creds = cache_with_entry(tmp_path, warnings, timer)
    fd = hold_lock(cache)
    try:
        calls: list[float] = []
        output = cache.answer(lambda: calls.append(timer[0]) or creds, wait=5)
    finally:
        os.close(fd)
    assert output == creds.to_process_json() and len(calls) == 1  # asked anyway
    assert 105 <= calls[0] < 105 + LOCK_POLL  # after the whole wait, not longer
    (line,) = warnings
    assert "could not lock the credential cache entry" in line and "held it for 5 s" in line
    assert line.endswith("asking anyway") and "secret-value" not in line
    assert cache.get() == output  # and kept for the next run


def test_a_hit_takes_no_lock(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache, creds = cache_with_entry(tmp_path, warnings, [0.0])
    cache.put(creds)
    fd = hold_lock(cache)
    try:
        cache.sleep = lambda seconds: pytest.fail("waited for the lock on a hit")
        assert cache.answer(lambda: pytest.fail("asked on a hit"), wait=5)
    finally:
        os.close(fd)
    assert warnings == []


def test_threads_that_miss_together_make_one_call(tmp_path: Path) -> None:
    """The first to lock calls; the others wait on the lock, then read what it wrote. (Without
    the lock each thread calls: ``fetch`` waits up to 5 s for waiters that never come.)"""
    n = 6
    warnings: list[str] = []
    waiting: set[int] = set()
    ready = threading.Condition()
    caches = []
    for _ in range(n):
        cache, creds = cache_with_entry(tmp_path, warnings, [0.0])

        def sleep(seconds: float) -> None:
            with ready:
                waiting.add(threading.get_ident())
                ready.notify_all()
            time.sleep(seconds)  # the short lock poll, on the real clock

        cache.timer, cache.sleep = time.monotonic, sleep
        caches.append(cache)
    calls: list[int] = []

    def fetch() -> Credentials:
        calls.append(1)
        with ready:  # hold the lock until every other thread waits for it
            ready.wait_for(lambda: len(waiting) >= n - 1, timeout=5)
        return creds

    with ThreadPoolExecutor(n) as pool:
        outputs = list(pool.map(lambda c: c.answer(fetch, wait=30), caches))
    assert len(calls) == 1
    assert outputs == [creds.to_process_json()] * n and warnings == []


def test_credential_process_line_with_cache_runs_in_process() -> None:
    settings = parse_helper_command(
        ["aws_signing_helper", "credential-process", "--certificate", "c.pem",
         "--trust-anchor-arn", "t", "--profile-arn", "p", "--role-arn", "r", "--cache"]
    )  # fmt: skip
    assert isinstance(settings, IdentitySettings) and settings.certificate == "c.pem"
