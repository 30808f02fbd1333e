"""The update command's credentials file: a pure rewrite, a careful write, a refresh loop."""

from __future__ import annotations

import io
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rolesanywhere.cli.main import main
from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import (
    AccessDeniedError,
    CertificateValidityError,
    CredentialsError,
    CredentialsFileError,
    InvalidParameterError,
    NetworkError,
    RequestTimeoutError,
    ResourceNotFoundError,
    RolesAnywhereError,
    ServiceError,
    ServiceValidationError,
    ThrottlingError,
)
from rolesanywhere.profiles.credfile import (
    credentials_file_path,
    next_update_in,
    run_update,
    update_profile,
    write_profile,
)
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, KeyFormat

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CREDS = Credentials("ASIANEW", "new-secret", "new-token", NOW + timedelta(hours=1))
BLOCK = (
    "aws_access_key_id = ASIANEW\naws_secret_access_key = new-secret\naws_session_token = new-token"
)


def test_a_new_file_gets_the_profile() -> None:
    assert update_profile("", "default", CREDS) == f"[default]\n{BLOCK}\n"


def test_other_profiles_settings_and_comments_are_kept() -> None:
    text = (
        "# my credentials\n"
        "[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key = dev-secret\n\n"
        "[default]\n; rotated by rolesanywhere\naws_access_key_id = ASIAOLD\nregion = eu-west-1\n"
        "AWS_SECRET_ACCESS_KEY=old-secret\naws_session_token = old\naws_session_token = twice\n\n"
        "[prod]\naws_access_key_id = AKIAPROD\n"
    )
    assert update_profile(text, "default", CREDS) == (
        "# my credentials\n"
        "[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key = dev-secret\n\n"
        "[default]\n; rotated by rolesanywhere\naws_access_key_id = ASIANEW\nregion = eu-west-1\n"
        "aws_secret_access_key = new-secret\naws_session_token = new-token\n\n"
        "[prod]\naws_access_key_id = AKIAPROD\n"
    )


def test_missing_keys_go_after_the_profiles_last_setting() -> None:
    text = "[default]\nregion = us-east-1\n\n[other]\nx = 1\n"
    assert update_profile(text, "default", CREDS) == (
        f"[default]\nregion = us-east-1\n{BLOCK}\n\n[other]\nx = 1\n"
    )
    assert update_profile("[a]\nx = 1", "b", CREDS) == f"[a]\nx = 1\n\n[b]\n{BLOCK}\n"


def test_a_repeated_profile_is_updated_in_each_copy() -> None:
    out = update_profile("[a]\naws_session_token = x\n[a]\n", "a", CREDS)
    first = (  # the token replaced where it stood, the other two added after it
        "aws_session_token = new-token\naws_access_key_id = ASIANEW\n"
        "aws_secret_access_key = new-secret"
    )
    assert out == f"[a]\n{first}\n[a]\n{BLOCK}\n"


def test_crlf_files_stay_crlf_and_bad_profile_names_are_refused() -> None:
    out = update_profile("[a]\r\nx = 1\r\n", "a", CREDS)
    assert out == "[a]\r\nx = 1\r\n" + BLOCK.replace("\n", "\r\n") + "\r\n"
    for bad in ("", "a]b", "x\ny"):
        with pytest.raises(ValueError, match="profile"):
            update_profile("", bad, CREDS)


_names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
_lines = st.one_of(
    _names.map(lambda n: f"[{n}]"),
    st.tuples(
        st.sampled_from(["aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                         "region", "output"]),
        st.from_regex(r"[A-Za-z0-9/+]{0,12}", fullmatch=True),
    ).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.sampled_from(["", "# comment", "; note", "   "]),
)  # fmt: skip


def _sections(text: str) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("["):
            current = line[1:-1]
        out.setdefault(current, []).append(line)
    return out


def _trimmed(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


@given(st.lists(_lines, max_size=25), _names)
def test_only_the_profiles_key_lines_change(lines: list[str], profile: str) -> None:
    headers = [line for line in lines if line.startswith("[")]
    assume(len(headers) == len(set(headers)))  # a repeated section is updated in each copy
    text = "\n".join(lines) + ("\n" if lines else "")
    out = update_profile(text, profile, CREDS)
    before, after = _sections(text), _sections(out)
    for name, body in before.items():
        if name != profile:  # other sections untouched (a blank line may end them now)
            assert _trimmed(after[name]) == _trimmed(body)
    body = [line for line in after[profile] if not line.startswith("[")]
    for key, value in (("aws_access_key_id", "ASIANEW"), ("aws_secret_access_key", "new-secret"),
                       ("aws_session_token", "new-token")):  # fmt: skip
        assert [x for x in body if x.split("=")[0].strip() == key] == [f"{key} = {value}"]
    kept = [x for x in before.get(profile, []) if not x.split("=")[0].strip().startswith("aws_")]
    kept = [x for x in kept if not x.startswith("[")]
    assert [
        x for x in after[profile] if not x.split("=")[0].strip().startswith(("aws_", "["))
    ] == kept
    assert update_profile(out, profile, CREDS) == out  # idempotent


def test_write_profile_makes_a_private_folder_and_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".aws" / "credentials"
    write_profile(path, "default", CREDS)
    assert path.read_text() == f"[default]\n{BLOCK}\n"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # a file someone loosened is tightened again
    write_profile(path, "other", CREDS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().count("[default]") == 1 and "[other]" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials", "credentials.lock"]


def test_concurrent_writers_lose_no_profile(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    threads = [
        threading.Thread(target=write_profile, args=(path, f"p{i}", CREDS)) for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = path.read_text()
    assert all(text.count(f"[p{i}]\n") == 1 for i in range(16))


def test_an_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-folder"
    folder.write_text("a file where the folder should be")  # fails for root too
    delays: list[float] = []
    with pytest.raises(CredentialsFileError, match="cannot write") as caught:
        write_profile(folder / "credentials", "default", CREDS, sleep=delays.append)
    assert "new-secret" not in str(caught.value) and len(delays) == 2


def test_credentials_file_path_follows_the_environment(tmp_path: Path) -> None:
    assert credentials_file_path({"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "c")}) == (
        tmp_path / "c"
    )
    assert credentials_file_path({}) == Path.home() / ".aws" / "credentials"


def test_refresh_five_to_ten_minutes_before_expiry() -> None:
    assert next_update_in(CREDS, NOW, lambda: 1.0) == 55 * 60
    assert next_update_in(CREDS, NOW, lambda: 0.0) == 50 * 60
    assert next_update_in(CREDS, NOW, lambda: 0.5) == 52.5 * 60
    soon = Credentials("A", "s", "t", NOW + timedelta(minutes=2))
    assert next_update_in(soon, NOW) == 10.0
    assert next_update_in(Credentials("A", "s"), NOW) == float("inf")


def test_hosts_that_update_together_drift_apart() -> None:
    import random

    rng = random.Random(7)
    points = sorted(next_update_in(CREDS, NOW, rng.random) for _ in range(1000))
    assert points[0] >= 50 * 60 and points[-1] <= 55 * 60
    assert points[-1] - points[0] > 4.5 * 60  # spread over the five minutes, not bunched


def test_run_update_refreshes_retries_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    answers: list[Credentials | Exception] = [
        CREDS,
        NetworkError("connection refused"),
        Credentials("ASIATWO", "two-secret", "two", NOW + timedelta(minutes=30)),
    ]
    waits: list[float] = []

    def fetch() -> Credentials:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return not answers  # stop once every answer was used

    err = io.StringIO()
    status = run_update(
        fetch, path, "default", once=False, wait=wait, err=err, clock=lambda: NOW, rand=lambda: 1.0
    )
    assert status == 0
    assert waits == [55 * 60, 10.0, 25 * 60]  # rand 1.0: the backoff's ceiling
    assert "aws_access_key_id = ASIATWO" in path.read_text()
    text = err.getvalue()
    assert "update failed (connection refused)" in text and text.count("updated profile") == 2
    assert "secret" not in text


PERMANENT = [
    AccessDeniedError("Untrusted Signing Certificate", status=403),
    ResourceNotFoundError("no such profile", status=404),
    ServiceValidationError("bad duration", status=400),
    CertificateValidityError("certificate client.pem expired on 2020-01-01: renew it"),
    InvalidParameterError("not a role ARN"),
]
TRANSIENT = [
    NetworkError("connection refused"),
    RequestTimeoutError("no answer"),
    ThrottlingError("slow down", status=429),
    ServiceError("internal", status=503),
    CredentialsError("no credentials in the answer"),
    CredentialsFileError("cannot write credentials (No space left on device)"),
]


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_run_update_stops_on_errors_no_retry_can_fix(error: RolesAnywhereError) -> None:
    waits: list[float] = []

    def fetch() -> Credentials:
        raise error

    def wait(seconds: float) -> bool:  # a fake clock: asks to stop after five backoffs
        waits.append(seconds)
        return len(waits) >= 5

    err = io.StringIO()
    with pytest.raises(type(error)) as caught:
        run_update(fetch, Path("unused"), "default", once=False, wait=wait, err=err)
    assert caught.value is error and waits == [] and err.getvalue() == ""


def half() -> float:
    return 0.5


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_run_update_retries_errors_that_may_clear(error: RolesAnywhereError) -> None:
    waits: list[float] = []

    def fetch() -> Credentials:
        raise error

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 7

    err = io.StringIO()
    update = run_update
    assert update(fetch, Path("unused"), "default", once=False, wait=wait, err=err, rand=half) == 0
    assert waits == [5, 10, 20, 40, 60, 60, 60]  # full jitter (here half) of 10, 20, ... 120 s
    assert err.getvalue().count("update failed") == 7


def test_cli_update_once_against_the_emulator(tmp_path: Path) -> None:
    pki = PKI(name="update")
    leaf = pki.leaf("ec-p256", issuer="root")
    cert, key = leaf.write(tmp_path, "client", key_format=KeyFormat.PKCS8_PEM)
    target = tmp_path / "aws" / "credentials"
    target.parent.mkdir(mode=0o700)
    target.write_text("[keep]\naws_access_key_id = AKIAKEEP\n")
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        out, err = io.StringIO(), io.StringIO()
        old = os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(target)
        try:
            status = main(
                ["update", "--once", "--profile", "ra", "--certificate", str(cert),
                 "--private-key", str(key), "--trust-anchor-arn", emu.trust_anchor_arn,
                 "--profile-arn", emu.profile_arn, "--role-arn", emu.role_arn,
                 "--endpoint", emu.url],
                stdin=io.StringIO(""), stdout=out, stderr=err,
            )  # fmt: skip
        finally:
            if old is None:
                os.environ.pop("AWS_SHARED_CREDENTIALS_FILE", None)
            else:
                os.environ["AWS_SHARED_CREDENTIALS_FILE"] = old
        (issued,) = emu.issued
    assert (status, out.getvalue()) == (0, "")
    assert "updated profile [ra]" in err.getvalue()
    text = target.read_text()
    assert text.startswith("[keep]\naws_access_key_id = AKIAKEEP\n\n[ra]\n")
    assert f"aws_access_key_id = {issued.access_key_id}" in text
    assert issued.secret_access_key not in err.getvalue()


# --- faults: a filling disk, failed syncs, planted symlinks, bytes that are not UTF-8 ----------

MANY = "".join(
    f"[p{i}]\naws_access_key_id = AKIA{i:04d}\naws_secret_access_key = s{i}\nregion = eu-west-1\n\n"
    for i in range(221)
).encode()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_short_write_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    from tests.faults import short_writes

    path = tmp_path / "credentials"
    path.write_bytes(MANY)
    with short_writes(allow=4096) as written, pytest.raises(CredentialsFileError) as caught:
        write_profile(path, "new", CREDS, sleep=lambda _: None)
    assert written  # the fault did fire
    message = str(caught.value)
    assert "No space left on device" in message and "untouched" in message
    assert "\n" not in message and "new-secret" not in message
    assert path.read_bytes() == MANY  # all 221 profiles, byte for byte
    assert _leftovers(tmp_path) == []


def test_a_file_size_limit_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    # The kernel's own short write: RLIMIT_FSIZE in a child process (SIGXFSZ ignored, so the
    # write past the limit comes up short, then fails with EFBIG).
    path = tmp_path / "credentials"
    path.write_bytes(MANY)
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from datetime import UTC, datetime\n"
        "from rolesanywhere.credentials import Credentials\n"
        "from rolesanywhere.profiles.credfile import write_profile\n"
        "from rolesanywhere.errors import CredentialsFileError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))\n"
        "creds = Credentials('ASIANEW', 'new-secret', 'new-token',\n"
        "                    datetime(2099, 1, 1, tzinfo=UTC))\n"
        "try:\n"
        "    write_profile(Path(sys.argv[1]), 'new', creds, sleep=lambda _: None)\n"
        "except CredentialsFileError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(1)\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "File too large" in done.stdout and "untouched" in done.stdout
    assert path.read_bytes() == MANY
    assert _leftovers(tmp_path) == []


def test_a_write_that_does_not_read_back_is_not_renamed(tmp_path: Path) -> None:
    # A write that claims success but stores other bytes (a failing device): caught on re-read.
    path = tmp_path / "credentials"
    path.write_bytes(MANY)
    real = os.write

    def corrupt(fd: int, data: bytes) -> int:
        real(fd, bytes(data).replace(b"ASIANEW", b"ASIAxxx"))
        return len(data)

    os.write = corrupt  # type: ignore[assignment]
    try:
        with pytest.raises(CredentialsFileError, match="did not read back") as caught:
            write_profile(path, "new", CREDS, sleep=lambda _: None)
    finally:
        os.write = real
    assert "untouched" in str(caught.value)
    assert path.read_bytes() == MANY and _leftovers(tmp_path) == []


def test_a_failed_fsync_removes_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(MANY)
    real = os.fsync

    def fail(fd: int) -> None:
        raise OSError(5, "Input/output error")

    os.fsync = fail
    try:
        with pytest.raises(CredentialsFileError, match="Input/output error"):
            write_profile(path, "new", CREDS, sleep=lambda _: None)
    finally:
        os.fsync = real
    assert path.read_bytes() == MANY and _leftovers(tmp_path) == []


def test_a_symlinked_file_is_updated_where_it_points(tmp_path: Path) -> None:
    elsewhere = tmp_path / "dotfiles" / "aws-credentials"
    elsewhere.parent.mkdir()
    elsewhere.write_text("[keep]\nx = 1\n")
    path = tmp_path / ".aws" / "credentials"
    path.parent.mkdir()
    path.symlink_to(elsewhere)
    write_profile(path, "default", CREDS)
    assert path.is_symlink() and path.resolve() == elsewhere
    assert elsewhere.read_text() == f"[keep]\nx = 1\n\n[default]\n{BLOCK}\n"
    assert _leftovers(path.parent) == [] and _leftovers(elsewhere.parent) == []


def test_planted_symlinks_are_not_followed(tmp_path: Path) -> None:
    # Someone who can write to the folder plants symlinks at the names the writer uses: the
    # temporary name is unpredictable and opened O_EXCL|O_NOFOLLOW, the lock O_NOFOLLOW.
    path = tmp_path / "credentials"
    path.write_text("[keep]\nx = 1\n")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    for pid in range(os.getpid() - 5, os.getpid() + 5):
        (tmp_path / f".credentials.{pid}.tmp").symlink_to(victim)
    write_profile(path, "default", CREDS)
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink() and "[default]" in path.read_text()

    lock_target = tmp_path / "made-through-the-lock"
    (tmp_path / "credentials.lock").unlink()
    (tmp_path / "credentials.lock").symlink_to(lock_target)
    with pytest.raises(CredentialsFileError, match="symbolic link"):
        write_profile(path, "other", CREDS, sleep=lambda _: None)
    assert not lock_target.exists()


def test_bytes_that_are_not_utf8_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    old = b"# caf\xe9 (latin-1)\n[keep]\nnote = \xff\xfe\n"
    path.write_bytes(old)
    write_profile(path, "default", CREDS)
    assert path.read_bytes() == old + f"\n[default]\n{BLOCK}\n".encode()
