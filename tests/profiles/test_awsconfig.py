"""AWS profiles: credential_process in-process (Roles Anywhere), as a subprocess, static keys."""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rolesanywhere.errors import InvalidParameterError, RolesAnywhereError
from rolesanywhere.profiles.awsconfig import (
    AwsConfigError,
    CredentialProcessError,
    ProcessCredentialSource,
    config_file_path,
    credential_source_for_profile,
    load_profile,
    parse_ini,
)
from rolesanywhere.profiles.credfile import credentials_file_path
from rolesanywhere.session.refresh import RefreshingCredentials
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"


def env_for(tmp_path: Path, config: str = "", credentials: str | None = None) -> dict[str, str]:
    config_path = tmp_path / "config"
    config_path.write_text(textwrap.dedent(config))
    env = {"AWS_CONFIG_FILE": str(config_path), "HOME": str(tmp_path / "home")}
    credentials_path = tmp_path / "credentials"
    if credentials is not None:
        credentials_path.write_text(textwrap.dedent(credentials))
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials_path)
    return env


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.strip() == text, text
    return text


# --- (a) aws_signing_helper credential-process, in-process ----------------------------------------


@pytest.fixture
def helper_command(
    tmp_path: Path, rolesanywhere_pki: PKI, rolesanywhere_emulator: RolesAnywhereEmulator
) -> str:
    leaf = rolesanywhere_pki.leaf("ec-p256")
    cert, key = leaf.write(tmp_path / "pki", "client")
    chain = tmp_path / "pki" / "chain.pem"
    chain.write_bytes(rolesanywhere_pki.intermediate.cert_pem())
    emu = rolesanywhere_emulator
    return shlex.join(
        [
            "/usr/local/bin/aws_signing_helper",
            "credential-process",
            "--certificate", str(cert),
            "--private-key", str(key),
            "--intermediates", str(chain),
            "--trust-anchor-arn", emu.trust_anchor_arn,
            "--profile-arn", emu.profile_arn,
            "--role-arn", emu.role_arn,
            "--endpoint", emu.url,
        ]
    )  # fmt: skip


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError("a subprocess was started")

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    return calls


def test_helper_runs_in_process(
    tmp_path: Path,
    helper_command: str,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    no_subprocess: list[object],
) -> None:
    env = env_for(
        tmp_path,
        f"""
        [default]
        region = eu-west-1
        [profile ship]
        region = us-east-1
        credential_process = {helper_command}
        """,
    )
    with credential_source_for_profile("ship", environ=env) as provider:
        assert provider.kind == "rolesanywhere"
        assert provider.region == "us-east-1"
        assert "aws_signing_helper credential-process run in-process" in provider.description
        assert rolesanywhere_emulator.role_arn in provider.description
        creds = provider()
        again = RefreshingCredentials(provider).get()
    issued = rolesanywhere_emulator.lookup(creds.access_key_id)
    assert issued is not None
    assert issued.secret_access_key == creds.secret_access_key
    assert issued.session_token == creds.session_token
    assert creds.expiration is not None and creds.expiration > datetime.now(UTC)
    assert rolesanywhere_emulator.lookup(again.access_key_id) is not None
    assert no_subprocess == []
    assert rolesanywhere_emulator.calls == 2


def test_helper_password_from_environment(
    tmp_path: Path,
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    no_subprocess: list[object],
) -> None:
    from rolesanywhere.testing.pki import KeyFormat

    leaf = rolesanywhere_pki.leaf("ec-p256")
    cert, key = leaf.write(
        tmp_path, "enc", key_format=KeyFormat.PKCS8_ENCRYPTED_PEM, password=b"s3cret-pw"
    )
    chain = tmp_path / "chain.pem"
    chain.write_bytes(rolesanywhere_pki.intermediate.cert_pem())
    emu = rolesanywhere_emulator
    command = (
        f"rolesanywhere credential-process --certificate {cert} --private-key {key} "
        f"--intermediates {chain} "
        f"--trust-anchor-arn {emu.trust_anchor_arn} --profile-arn {emu.profile_arn} "
        f"--role-arn {emu.role_arn} --endpoint {emu.url}"
    )
    env = env_for(tmp_path, f"[default]\ncredential_process = {command}\n")
    env["ROLESANYWHERE_PKCS8_PASSWORD"] = "s3cret-pw"
    provider = credential_source_for_profile(None, environ=env)
    assert provider.kind == "rolesanywhere"
    assert emu.lookup(provider().access_key_id) is not None


def test_helper_with_unsupported_flag_runs_as_subprocess(tmp_path: Path) -> None:
    command = (
        "aws_signing_helper credential-process --certificate /c.pem "
        "--system-store-name MY --trust-anchor-arn a --profile-arn b --role-arn c"
    )
    env = env_for(tmp_path, f"[profile hsm]\ncredential_process = {command}\n")
    provider = credential_source_for_profile("hsm", environ=env)
    assert provider.kind == "process"
    assert "--system-store-name" in provider.description


def test_helper_with_bad_arn_is_a_one_line_error(tmp_path: Path) -> None:
    command = (
        "aws_signing_helper credential-process --certificate /c.pem --trust-anchor-arn nope "
        "--profile-arn nope --role-arn nope"
    )
    env = env_for(tmp_path, f"[default]\ncredential_process = {command}\n")
    with pytest.raises(InvalidParameterError) as info:
        credential_source_for_profile("default", environ=env)
    assert "--trust-anchor-arn" in one_line(info.value)


# --- (b) any other command: a subprocess ----------------------------------------------------------


def script(tmp_path: Path, body: str, name: str = "creds.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def process_env(tmp_path: Path, command: str) -> dict[str, str]:
    return env_for(
        tmp_path, f"[profile p]\ncredential_process = {command}\nregion = ca-central-1\n"
    )


GOOD = f"""
    import json, sys
    print("fetching credentials", file=sys.stderr)
    print(json.dumps({{"Version": 1, "AccessKeyId": "AKIDEXAMPLE",
                      "SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}",
                      "Expiration": "2099-01-02T03:04:05Z"}}))
"""


def test_process_credentials(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = process_env(tmp_path, script(tmp_path, GOOD) + " --password hunter2")
    provider = credential_source_for_profile("p", environ=env)
    assert provider.kind == "process"
    assert provider.region == "ca-central-1"
    assert "hunter2" not in provider.description
    with caplog.at_level(logging.INFO, logger="rolesanywhere.profiles.awsconfig"):
        creds = provider()
    assert creds.access_key_id == "AKIDEXAMPLE"
    assert creds.secret_access_key == SECRET
    assert creds.session_token == TOKEN
    assert creds.expiration == datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "fetching credentials" in caplog.text
    assert SECRET not in caplog.text
    assert RefreshingCredentials(provider).get().access_key_id == "AKIDEXAMPLE"


def test_process_without_expiration_never_expires(tmp_path: Path) -> None:
    body = 'print(\'{"Version": 1, "AccessKeyId": "AKID", "SecretAccessKey": "s"}\')'
    creds = ProcessCredentialSource(script(tmp_path, body))()
    assert creds.expiration is None
    assert creds.session_token is None
    assert creds.seconds_left() == float("inf")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            f'import sys\nprint("{SECRET}")\nprint("first", file=sys.stderr)\n'
            'print("boom: the certificate expired", file=sys.stderr)\nsys.exit(3)',
            "failed with exit status 3: boom: the certificate expired",
        ),
        ("import sys\nsys.exit(1)", "failed with exit status 1: (nothing on stderr)"),
        (f'print("{SECRET} is not json")', "did not print a JSON object"),
        (f"print('[\"{SECRET}\"]')", "did not print a JSON object"),
        (
            f'import json\nprint(json.dumps({{"Version": 2, "AccessKeyId": "A", '
            f'"SecretAccessKey": "{SECRET}"}}))',
            "printed Version 2: only Version 1 is supported",
        ),
        (
            "import json\n"
            f'print(json.dumps({{"AccessKeyId": "A", "SecretAccessKey": "{SECRET}"}}))',
            "printed Version None",
        ),
        (
            f'import json\nprint(json.dumps({{"Version": 1, "SecretAccessKey": "{SECRET}"}}))',
            "printed no AccessKeyId",
        ),
        (
            f'import json\nprint(json.dumps({{"Version": 1, "AccessKeyId": "A", '
            f'"SecretAccessKey": "{SECRET}", "Expiration": "tomorrow"}}))',
            "not an RFC 3339 time",
        ),
    ],
    ids=[
        "exit-status",
        "silent-failure",
        "not-json",
        "not-object",
        "version-2",
        "no-version",
        "no-key-id",
        "bad-expiration",
    ],
)
def test_process_failures_are_one_line_without_stdout(
    tmp_path: Path, body: str, expected: str
) -> None:
    command = script(tmp_path, body) + " --pkcs8-password hunter2"
    provider = credential_source_for_profile("p", environ=process_env(tmp_path, command))
    with pytest.raises(CredentialProcessError) as info:
        provider()
    message = one_line(info.value)
    assert expected in message
    assert SECRET not in message
    assert "hunter2" not in message
    assert sys.executable in message  # the program is named


def test_process_timeout_kills_the_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-survived"
    body = f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c",
                          "import time, pathlib; time.sleep(3); "
                          "pathlib.Path({str(marker)!r}).write_text('x')"])
        time.sleep(30)
    """
    source = ProcessCredentialSource(script(tmp_path, body), timeout=1.0)
    start = time.monotonic()
    with pytest.raises(CredentialProcessError) as info:
        source()
    assert time.monotonic() - start < 10
    assert "did not finish within 1 s and was killed" in one_line(info.value)
    time.sleep(3.5)
    assert not marker.exists()


def test_profile_timeout_is_passed_on(tmp_path: Path) -> None:
    command = script(tmp_path, "import time\ntime.sleep(30)")
    provider = credential_source_for_profile(
        "p", environ=process_env(tmp_path, command), timeout=0.5
    )
    start = time.monotonic()
    with pytest.raises(CredentialProcessError, match=r"within 0\.5 s"):
        provider()
    assert time.monotonic() - start < 10


def test_missing_program(tmp_path: Path) -> None:
    env = process_env(tmp_path, str(tmp_path / "no-such-helper") + " --flag")
    with pytest.raises(CredentialProcessError, match="not found"):
        credential_source_for_profile("p", environ=env)()


def test_unbalanced_quotes(tmp_path: Path) -> None:
    env = process_env(tmp_path, "helper 'unterminated")
    with pytest.raises(AwsConfigError, match="check its quotes"):
        credential_source_for_profile("p", environ=env)


def test_process_gets_the_environment(tmp_path: Path) -> None:
    body = (
        "import json, os\nprint(json.dumps({'Version': 1, 'AccessKeyId': os.environ['KEY_ID'], "
        "'SecretAccessKey': 's'}))"
    )
    env = process_env(tmp_path, script(tmp_path, body))
    env["KEY_ID"] = "FROM-ENV"
    env["PATH"] = "/usr/bin:/bin"
    assert credential_source_for_profile("p", environ=env)().access_key_id == "FROM-ENV"


# --- (c) static keys ------------------------------------------------------------------------------


def test_static_keys_from_credentials_file(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        """
        [profile static]
        region = us-west-2
        credential_process = /bin/false
        """,
        f"""
        [static]
        aws_access_key_id = AKIDSTATIC
        aws_secret_access_key = {SECRET}
        aws_session_token = {TOKEN}
        """,
    )
    provider = credential_source_for_profile("static", environ=env)
    assert provider.kind == "static"  # the credentials file wins over credential_process
    creds = provider()
    assert (creds.access_key_id, creds.secret_access_key, creds.session_token) == (
        "AKIDSTATIC",
        SECRET,
        TOKEN,
    )
    assert creds.expiration is None
    assert provider.region == "us-west-2"
    for text in (provider.description, repr(provider), repr(creds)):
        assert SECRET not in text and TOKEN not in text


def test_static_keys_in_config_file_come_after_credential_process(tmp_path: Path) -> None:
    body = 'print(\'{"Version": 1, "AccessKeyId": "AKIDPROCESS", "SecretAccessKey": "s"}\')'
    env = env_for(
        tmp_path,
        f"""
        [profile both]
        aws_access_key_id = AKIDCONFIG
        aws_secret_access_key = {SECRET}
        credential_process = {script(tmp_path, body)}
        [profile keys]
        aws_access_key_id = AKIDCONFIG
        aws_secret_access_key = {SECRET}
        """,
    )
    assert credential_source_for_profile("both", environ=env)().access_key_id == "AKIDPROCESS"
    keys = credential_source_for_profile("keys", environ=env)
    assert keys.kind == "static"
    assert keys().access_key_id == "AKIDCONFIG"


def test_half_static_keys(tmp_path: Path) -> None:
    env = env_for(tmp_path, "[default]\n", f"[default]\naws_secret_access_key = {SECRET}\n")
    with pytest.raises(AwsConfigError) as info:
        credential_source_for_profile("default", environ=env)
    message = one_line(info.value)
    assert "without aws_access_key_id" in message
    assert SECRET not in message


# --- (d) profiles that are missing or unusable ----------------------------------------------------


def test_unknown_profile_names_files_and_profiles(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        """
        [default]
        region = us-east-1
        [profile dev]
        region = us-east-1
        [sso-session corp]
        sso_region = us-east-1
        """,
    )
    with pytest.raises(AwsConfigError) as info:
        credential_source_for_profile("prod", environ=env)
    message = one_line(info.value)
    assert "'prod'" in message
    assert env["AWS_CONFIG_FILE"] in message
    assert "profiles: default, dev" in message
    assert f"{env['AWS_SHARED_CREDENTIALS_FILE']} (file not found)" in message


def test_profile_without_credentials(tmp_path: Path) -> None:
    env = env_for(tmp_path, "[profile empty]\nregion = us-east-1\n")
    with pytest.raises(AwsConfigError, match=r"has no credentials.*credential_process"):
        credential_source_for_profile("empty", environ=env)


def test_assume_role_profile_is_refused(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        "[profile chained]\nrole_arn = arn:aws:iam::111122223333:role/x\nsource_profile = dev\n",
    )
    with pytest.raises(AwsConfigError, match="AssumeRole"):
        credential_source_for_profile("chained", environ=env)


def test_default_profile_from_environment(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        "",
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n"
        "[picked]\naws_access_key_id = AKIDPICKED\naws_secret_access_key = y\n",
    )
    assert credential_source_for_profile(environ=env)().access_key_id == "AKIDDEFAULT"
    env["AWS_PROFILE"] = "picked"
    assert credential_source_for_profile(environ=env)().access_key_id == "AKIDPICKED"


def test_default_file_locations(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert config_file_path(env) == tmp_path / ".aws" / "config"
    assert credentials_file_path(env) == tmp_path / ".aws" / "credentials"
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[profile home]\nregion = sa-east-1\n")
    assert load_profile("home", environ=env).region == "sa-east-1"
    env["AWS_CONFIG_FILE"] = "~/elsewhere"
    assert config_file_path(env) == tmp_path / "elsewhere"


def test_unreadable_config_file(tmp_path: Path) -> None:
    env = {"AWS_CONFIG_FILE": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "x")}
    with pytest.raises(AwsConfigError, match="cannot read"):
        load_profile("default", environ=env)


def test_parse_ini_is_tolerant() -> None:
    text = """
garbage before any section
[default]
region = us-east-1 # inline comment
# a comment
; another comment
s3 =
    max_concurrent_requests = 20
not a key value line
[ profile  spaced ]   ; comment after the header
Credential_Process = helper --x
output=json
[profile broken
key = ignored
[default]
region = eu-west-1
cli_pager=
"""
    sections = parse_ini(text)
    assert sections["default"] == {"region": "eu-west-1", "s3": "", "cli_pager": ""}
    assert sections["profile  spaced"] == {"credential_process": "helper --x", "output": "json"}
    assert "profile broken" not in sections and len(sections) == 2


def test_profile_default_section_forms(tmp_path: Path) -> None:
    env = env_for(
        tmp_path, "[default]\nregion = us-east-1\n[profile default]\nregion = us-west-1\n"
    )
    assert load_profile("default", environ=env).region == "us-west-1"
    env = env_for(tmp_path, "[default]\nregion = us-east-1\n[plain]\nregion = x\n")
    with pytest.raises(AwsConfigError, match="profiles: default"):
        load_profile("plain", environ=env)  # [plain] is not a profile in the config file


def test_errors_are_library_errors() -> None:
    assert issubclass(AwsConfigError, RolesAnywhereError)
    assert issubclass(CredentialProcessError, RolesAnywhereError)
