"""``credential-process --cache``: a second run asks nobody, a rotated certificate asks again,
a doubtful cache entry is ignored with a warning, and secrets stay in the 0600 file. Across
processes: real processes that miss together make one CreateSession call, a holder killed with
SIGKILL blocks nobody, and a lock held too long is one warning line, not a failure."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from tests.cli.test_main import BIN, arns, assert_credentials, run, write_identity


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(name="cache tests")


@pytest.fixture
def emu(pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki) as emulator:
        yield emulator


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("ROLESANYWHERE_CACHE", raising=False)
    return home / "rolesanywhere"


def setup(tmp_path: Path, pki: PKI, emu: RolesAnywhereEmulator) -> list[str]:
    ident = tmp_path / "id"
    ident.mkdir(exist_ok=True)
    return ["credential-process", *write_identity(ident, pki.leaf("ec-p256"), pki), *arns(emu)]


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def assert_no_secret(emu: RolesAnywhereEmulator, out: str, *texts: str) -> None:
    data = json.loads(out)
    for text in texts:
        assert data["SecretAccessKey"] not in text and data["SessionToken"] not in text


def test_second_run_makes_no_request(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    argv = setup(tmp_path, pki, emu)
    status, first, err1 = run([*argv, "--cache"])
    assert status == 0 and err1 == ""
    assert_credentials(first, emu)
    assert emu.calls == 1
    status, second, err2 = run([*argv, "--cache"])
    assert (status, second, err2) == (0, first, "")  # byte for byte, from the cache
    assert emu.calls == 1
    status, _, _ = run(argv, ROLESANYWHERE_CACHE="1")  # the variable does what --cache does
    assert emu.calls == 1
    run(argv)  # no cache asked: a request
    assert emu.calls == 2
    (entry,) = entries(cache_home)
    assert stat.S_IMODE(cache_home.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert_no_secret(emu, first, err1, err2, entry.name)


def test_other_settings_and_rotated_certificate_ask_again(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    argv = setup(tmp_path, pki, emu)
    run([*argv, "--cache"])
    run([*argv, "--cache", "--session-duration", "1800"])
    assert emu.calls == 2
    setup(tmp_path, pki, emu)  # a new leaf written over the same files
    status, out, err = run([*argv, "--cache"])
    assert status == 0 and err == ""
    assert_credentials(out, emu)
    assert emu.calls == 3
    run([*argv, "--cache"])
    assert emu.calls == 3
    assert len(entries(cache_home)) == 3


def test_near_expiry_entry_is_not_served(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    import time

    argv = [*setup(tmp_path, pki, emu), "--cache"]
    run(argv)
    (entry,) = entries(cache_home)
    header, output = entry.read_text().split("\n", 1)
    magic = header.rsplit(" ", 2)[0]  # format and key; then issued and expiry times

    def expires_in(seconds: float) -> None:
        now = time.time()
        entry.write_text(f"{magic} {now + seconds - 3600} {now + seconds}\n{output}")

    # 3600 s issued: the margin is 6 minutes (10 %), so 5.5 minutes left is not enough.
    expires_in(330)
    run(argv)
    assert emu.calls == 2
    (entry,) = entries(cache_home)
    header, output = entry.read_text().split("\n", 1)
    expires_in(600)
    _, out, _ = run(argv)
    assert emu.calls == 2 and out == output


@pytest.mark.parametrize("damage", ["garbage", "other key", "loose mode", "symlink", "foreign"])
def test_doubtful_entry_is_ignored_with_a_warning_and_replaced(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path, damage: str
) -> None:
    argv = [*setup(tmp_path, pki, emu), "--cache"]
    run(argv)
    (entry,) = entries(cache_home)
    if damage == "garbage":
        entry.write_bytes(entry.read_bytes()[:-20])  # truncated
    elif damage == "other key":
        magic, _, rest = entry.read_text().split(" ", 2)
        entry.write_text(f"{magic} {'0' * 64} {rest}")
    elif damage == "loose mode":
        entry.chmod(0o644)
    elif damage == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_bytes(entry.read_bytes())
        target.chmod(0o600)
        entry.unlink()
        entry.symlink_to(target)
    else:
        if os.getuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(entry, 65534, 65534)
    status, out, err = run(argv)
    assert status == 0
    assert emu.calls == 2, "the doubtful entry was served"
    assert err.count("\n") == 1 and "warning: ignoring the cache entry" in err, err
    assert_no_secret(emu, out, err)
    assert not entry.is_symlink()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600 and entry.stat().st_uid == os.getuid()
    status, again, err = run(argv)  # replaced: served again, quietly
    assert (status, again, err, emu.calls) == (0, out, "", 2)


def test_standard_input_is_not_cached(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    argv = setup(tmp_path, pki, emu)
    argv[argv.index("--intermediates") + 1] = "-"
    _, _, err = run([*argv, "--cache"])
    assert "warning: not caching: --intermediates reads standard input" in err
    assert not cache_home.exists() or not entries(cache_home)


def test_loose_folder_is_made_private(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    cache_home.mkdir(parents=True, mode=0o755)
    cache_home.chmod(0o755)
    status, _, err = run([*setup(tmp_path, pki, emu), "--cache"])
    assert status == 0 and err == ""
    assert stat.S_IMODE(cache_home.stat().st_mode) == 0o700


def test_hit_fast_path_prints_what_the_parser_path_prints(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from rolesanywhere.cli import cachehit

    argv = setup(tmp_path, pki, emu)
    status, first, _ = run([*argv, "--cache"])  # a miss fills the cache
    assert status == 0 and emu.calls == 1
    # --flag=VALUE and --flag VALUE, in any order, are the same key
    joined = [argv[0], *(f"{a}={b}" for a, b in zip(argv[1::2], argv[2::2], strict=True))]
    for words in ([*argv[1:], "--cache"], ["--cache", *joined[:0:-1]]):
        assert cachehit.cached_answer(words) == first
    assert cachehit.cached_answer(argv[1:]) is None  # the cache not asked
    monkeypatch.setenv("ROLESANYWHERE_CACHE", "1")
    assert cachehit.cached_answer(argv[1:]) == first
    monkeypatch.delenv("ROLESANYWHERE_CACHE")
    fast = run([*argv, "--cache"])
    monkeypatch.setattr(cachehit, "cached_answer", lambda words: None)
    slow = run([*argv, "--cache"])  # argparse and _credential_process
    assert fast == slow == (0, first, "")
    assert emu.calls == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda a: [*a, "--cache", "--cache"],  # repeated
        lambda a: [*a, "--cache", "--debug"],  # a flag that is no setting
        lambda a: [*a, "--cache", "--with-proxy=false"],  # Go's boolean syntax
        lambda a: [*a, "--cache", "--help"],
        lambda a: [*a, "--cach"],  # an abbreviation
        lambda a: [*a, "--cache", "--session-duration", "soon"],  # not an int
        lambda a: [*a, "--cache", "--region"],  # its value missing
        lambda a: [*a, "--cache", "--region", "--endpoint=x"],  # a flag where a value goes
        lambda a: [*a, "--cache", "--role-arn", a[a.index("--role-arn") + 1]],  # given twice
        lambda a: [*a[: a.index("--role-arn")], *a[a.index("--role-arn") + 2 :], "--cache"],
        lambda a: [*a, "--cache", "extra"],  # a positional word
        lambda a: [*a, "--cache", "--cert-selector", "x"],  # not supported here
    ],
)
def test_unusual_forms_go_through_the_parser(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path,
    monkeypatch: pytest.MonkeyPatch, change: object,
) -> None:  # fmt: skip
    from rolesanywhere.cli import cachehit

    argv = setup(tmp_path, pki, emu)
    assert run([*argv, "--cache"])[0] == 0  # the cache holds the answer
    words = change(argv[1:])  # type: ignore[operator]
    assert cachehit.cached_answer(words) is None
    fast = run([argv[0], *words])
    monkeypatch.setattr(cachehit, "cached_answer", lambda words: None)
    assert run([argv[0], *words]) == fast  # what the parser path alone does


# --- one call for the processes that miss together ------------------------------------------------


def spawn(argv: list[str], cache_home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home.parent)}
    return subprocess.Popen(
        [str(BIN / "aws_signing_helper"), *argv, "--cache"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def lock_path(cache_home: Path) -> Path:
    (lock,) = cache_home.glob("*.lock")
    return lock


def lock_is_held(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases it if taken
    return False


def wait_for(condition: object, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_processes_that_miss_together_make_one_call(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    """Without the lock each process calls: the emulator answers slowly, so all of them miss."""
    argv = setup(tmp_path, pki, emu)
    emu.delay = 1.5  # every process starts and misses while the first call is answered
    procs = [spawn(argv, cache_home) for _ in range(8)]
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, results
    assert [err for _, err in results] == [b""] * 8  # nobody warned: they waited, then read
    outputs = {out for out, _ in results}
    assert len(outputs) == 1
    assert emu.calls == 1 and emu.successes == 1
    assert json.loads(outputs.pop())["AccessKeyId"]
    assert not lock_is_held(lock_path(cache_home))
    assert oct(lock_path(cache_home).stat().st_mode & 0o777) == "0o600"


def test_a_holder_killed_with_sigkill_blocks_nobody(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    argv = setup(tmp_path, pki, emu)
    emu.delay = 60  # the holder hangs in its call (the emulator's stop cuts it short)
    holder = spawn(argv, cache_home)
    try:
        wait_for(lambda: emu.calls == 1)  # the call is made under the lock
        assert lock_is_held(lock_path(cache_home))
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert holder.returncode == -9
    emu.delay = 0
    start = time.monotonic()
    status, out, err = run([*argv, "--cache", "--timeout", "20"])
    assert (status, err) == (0, ""), err  # no wait for the lock, no warning
    assert time.monotonic() - start < 10
    assert emu.calls == 2 and json.loads(out)["AccessKeyId"]


def test_a_lock_held_too_long_is_one_warning_and_a_call(
    pki: PKI, emu: RolesAnywhereEmulator, tmp_path: Path, cache_home: Path
) -> None:
    argv = setup(tmp_path, pki, emu)
    cache_home.mkdir(parents=True, mode=0o700)
    run([*argv, "--cache"])  # makes the lock file
    for entry in cache_home.glob("*.json"):
        entry.unlink()
    fd = os.open(lock_path(cache_home), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process, stuck
    try:
        start = time.monotonic()
        status, out, err = run([*argv, "--cache", "--timeout", "0.3"])  # the short lock poll
        waited = time.monotonic() - start
    finally:
        os.close(fd)
    assert status == 0 and json.loads(out)["AccessKeyId"] and emu.calls == 2
    assert err.count("\n") == 1 and "warning: could not lock the credential cache entry" in err
    assert "another process held it for 0.15 s); asking anyway" in err  # half of --timeout
    assert 0.15 <= waited < 10
    assert json.loads(out)["SecretAccessKey"] not in err
    status, again, err = run([*argv, "--cache"])  # the entry was written
    assert (status, again, err, emu.calls) == (0, out, "", 2)
