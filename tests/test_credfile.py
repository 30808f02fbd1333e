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

from rolesanywhere.cli import main
from rolesanywhere.credentials import Credentials
from rolesanywhere.credfile import (
    credentials_file_path,
    next_update_in,
    run_update,
    update_profile,
    write_profile,
)
from rolesanywhere.errors import CredentialsFileError, NetworkError
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


def test_refresh_five_minutes_before_expiry() -> None:
    assert next_update_in(CREDS, NOW) == 55 * 60
    soon = Credentials("A", "s", "t", NOW + timedelta(minutes=2))
    assert next_update_in(soon, NOW) == 10.0
    assert next_update_in(Credentials("A", "s"), NOW) == float("inf")


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
    status = run_update(fetch, path, "default", once=False, wait=wait, err=err, clock=lambda: NOW)
    assert status == 0
    assert waits == [55 * 60, 2.0, 25 * 60]
    assert "aws_access_key_id = ASIATWO" in path.read_text()
    text = err.getvalue()
    assert "update failed (connection refused)" in text and text.count("updated profile") == 2
    assert "secret" not in text


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
