"""Leaks and exposure: key material pasted where a path goes, terminal controls in remote text,
and the password flag of long-running commands."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from rolesanywhere.cli.main import PASSWORD_FLAG_WARNING, main
from rolesanywhere.errors import AccessDeniedError, CredentialProcessError, SourceError, safe_text
from rolesanywhere.profiles.awsconfig import ProcessCredentialSource
from rolesanywhere.session.protocol import service_error
from rolesanywhere.ship.shipper import Shipper, ShipperConfig
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.identity import Identity
from rolesanywhere.x509.loader import IdentityLoader
from rolesanywhere.x509.sources import describe, file_path, read_source
from tests.cli.test_main import run
from tests.faults import FaultServer, http_response

ARNS = [
    "--trust-anchor-arn",
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a1b2c3d4-0000-0000-0000-000000000001",
    "--profile-arn",
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/a1b2c3d4-0000-0000-0000-000000000002",
    "--role-arn",
    "arn:aws:iam::123456789012:role/x",
]
CLEAR_SCREEN = "\x1b[2J"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(certificate path, key path, the key's PEM text)."""
    leaf = PKI(name="exposure").leaf("ec-p256")
    cert, key = leaf.write(tmp_path_factory.mktemp("id"), "client")
    return cert, key, key.read_text()


def key_body(pem: str) -> list[str]:
    """The base64 lines of a PEM key: none may appear in any output."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def assert_no_key(text: str, pem: str) -> None:
    assert "BEGIN" not in text and "PRIVATE KEY" not in text, text
    for line in key_body(pem):
        assert line not in text and line[:16] not in text


# --- 1. key material where a path is expected -------------------------------------------------


@pytest.mark.parametrize("what", ["private key", "certificate", "intermediate certificates"])
def test_pem_text_given_as_a_path_is_not_echoed(what: str, files: tuple[Path, Path, str]) -> None:
    pem = files[2]
    with pytest.raises(SourceError) as info:
        read_source(pem, what=what)
    message = str(info.value)
    assert_no_key(message, pem)
    assert_no_key(repr(info.value.source), pem)
    assert f"the {what} argument looks like PEM text, not a path" in message
    assert "env:NAME" in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("MIGHAgEAMBMGByqGSM49\nAgEGCCqGSM49", "line breaks or control characters"),
        ("key\x1b[2J.pem", "line breaks or control characters"),
        ("MIGH" * 2000, "too long for a path"),
    ],
)
def test_other_text_that_cannot_be_a_path_is_not_echoed(text: str, why: str) -> None:
    with pytest.raises(SourceError) as info:
        read_source(text, what="private key")
    message = str(info.value)
    assert why in message
    assert "MIGH" not in message and "\x1b" not in message
    assert file_path(text) is None
    assert describe(text) == "<text>"


def test_identity_load_with_pem_for_the_key(files: tuple[Path, Path, str]) -> None:
    cert, _, pem = files
    with pytest.raises(SourceError) as info:
        Identity.load(str(cert), pem)
    assert_no_key(str(info.value), pem)
    assert "private key argument looks like PEM text" in str(info.value)
    with pytest.raises(SourceError) as info:
        Identity.load(pem)  # a PEM holding key and certificate, given as str
    assert_no_key(str(info.value), pem)
    assert_no_key(repr(info.value.source), pem)


def test_identity_loader_with_pem_for_the_key(files: tuple[Path, Path, str]) -> None:
    cert, _, pem = files
    loader = IdentityLoader(str(cert), pem)
    with pytest.raises(SourceError) as info:
        loader.get()
    assert_no_key(str(info.value), pem)
    loader = IdentityLoader(pem)
    assert_no_key(repr(loader), pem)
    with pytest.raises(SourceError) as info:
        loader.get()
    assert_no_key(str(info.value), pem)


def test_identity_loader_with_a_nul_in_the_path_is_a_source_error() -> None:
    with pytest.raises(SourceError) as info:
        IdentityLoader("cert\x00.pem", "key.pem").get()
    assert "\x00" not in str(info.value)


def test_bytes_still_work(files: tuple[Path, Path, str]) -> None:
    cert, _, pem = files
    identity = Identity.load(cert.read_bytes(), pem.encode())
    assert identity.algorithm


@pytest.mark.parametrize("flag", ["--private-key", "--certificate", "--intermediates"])
def test_cli_does_not_print_pem_given_for_a_path(flag: str, files: tuple[Path, Path, str]) -> None:
    cert, key, pem = files
    paths = {"--certificate": str(cert), "--private-key": str(key)}
    paths[flag] = pem
    argv = ["credential-process", *(x for kv in paths.items() for x in kv), *ARNS]
    status, out, err = run([*argv, "--endpoint", "http://127.0.0.1:9"])
    assert status == 1 and out == ""
    assert err.count("\n") == 1
    assert_no_key(err, pem)
    assert "looks like PEM text, not a path" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sign-string", "{pem}"],  # argparse: unrecognized arguments
        ["sign-string", "--digest", "{pem}"],  # argparse: invalid choice
        ["sign-string", "--private-key", "{pem}"],
    ],
)
def test_cli_usage_errors_do_not_echo_pem(argv: list[str], files: tuple[Path, Path, str]) -> None:
    pem = files[2]
    status, out, err = run([a.format(pem=pem) for a in argv])
    assert status == 1 and out == "" and err.count("\n") == 1
    assert_no_key(err, pem)


# --- 2. text from servers and subprocesses ----------------------------------------------------


def test_safe_text_escapes_controls_and_caps_the_length() -> None:
    assert safe_text("a\x1b[2J\r\nb\tc") == "a\\x1b[2J b c"
    assert safe_text("\x9b31m\x7f\u202e\ud800\U000e0001") == (
        "\\x9b31m\\x7f\\u202e\\ud800\\U000e0001"
    )
    assert safe_text(b"\xff\x00ok") == "\ufffd\\x00ok"
    assert safe_text("plain text") == "plain text"
    long = safe_text("\x1b" * 1000, 50)
    assert len(long) <= 50 and long.endswith("…") and "\x1b" not in long
    assert len(safe_text("x" * 10_000_000)) == 400
    assert safe_text("a" + " " * 10_000 + "b", 10) == "a…"


def test_service_error_message_type_and_request_id_are_escaped() -> None:
    body = json.dumps({"message": f"denied{CLEAR_SCREEN}\nnext line\x07"}).encode()
    error = service_error(
        403, {"x-amzn-ErrorType": "AccessDenied\x1bException", "x-amzn-RequestId": "r\x1b1"}, body
    )
    assert isinstance(error, AccessDeniedError)
    text = str(error)
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert "denied\\x1b[2J next line\\x07" in text
    assert error.request_id == "r\\x1b1"


@pytest.mark.parametrize("as_json", [True, False])
def test_cli_prints_a_403_message_escaped(as_json: bool, files: tuple[Path, Path, str]) -> None:
    cert, key, _ = files
    message = f"no{CLEAR_SCREEN}\x1b]0;owned\x07 way"
    body = json.dumps({"message": message}).encode() if as_json else message.encode()
    raw = http_response(403, body, reason="Forbidden", headers={"x-amzn-RequestId": "req-1"})
    with FaultServer("canned", raw=raw) as server:
        status, out, err = run(
            ["credential-process", "--certificate", str(cert), "--private-key", str(key), *ARNS,
             "--endpoint", server.url]
        )  # fmt: skip
    assert status == 1 and out == ""
    assert "\x1b" not in err and "\x07" not in err and err.count("\n") == 1
    assert "no\\x1b[2J\\x1b]0;owned\\x07 way" in err


def test_osis_answers_are_escaped_in_stats(tmp_path: Path) -> None:
    answers = [503, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0)
        return httpx.Response(status, text=f"busy{CLEAR_SCREEN}\r\nretry\x1b[31m")

    config = ShipperConfig(
        url="https://pipe-abc123.us-east-1.osis.amazonaws.com/log/ingest",
        state_dir=str(tmp_path),
        trust_env=False,
        backoff_base=0.001,
        backoff_max=0.01,
        flush_interval=60.0,
    )
    with Shipper(config, transport=httpx.MockTransport(handler)) as shipper:
        shipper.submit([b"one line"], token="t")
        assert shipper.flush(timeout=10)
        last = shipper.stats().last_error
    assert last is not None
    assert "\x1b" not in last and "\n" not in last
    assert "busy\\x1b[2J retry\\x1b[31m" in last


def test_transport_failure_text_is_escaped() -> None:
    from rolesanywhere.session.transport import _detail

    assert _detail(OSError(f"refused{CLEAR_SCREEN}\n")) == "OSError: refused\\x1b[2J"


def test_credential_process_stderr_is_escaped(caplog: pytest.LogCaptureFixture) -> None:
    code = (
        "import sys; sys.stderr.write('working\\x1b[2J\\n'); "
        "sys.stderr.write('broken\\x1b]0;title\\x07\\n'); sys.exit(3)"
    )
    source = ProcessCredentialSource([sys.executable, "-c", code])
    with (
        caplog.at_level(logging.INFO, logger="rolesanywhere.profiles.awsconfig"),
        pytest.raises(CredentialProcessError) as info,
    ):
        source()
    message = str(info.value)
    assert "\x1b" not in message and "\x07" not in message
    assert "broken\\x1b]0;title\\x07" in message
    assert "\x1b" not in caplog.text and "working\\x1b[2J" in caplog.text


def test_credential_process_expiration_is_escaped() -> None:
    out: dict[str, Any] = {
        "Version": 1,
        "AccessKeyId": "AKID",
        "SecretAccessKey": "s",
        "SessionToken": "t",
        "Expiration": f"soon{CLEAR_SCREEN}",
    }
    code = f"print({json.dumps(json.dumps(out))})"
    with pytest.raises(CredentialProcessError) as info:
        ProcessCredentialSource([sys.executable, "-c", code])()
    assert "\x1b" not in str(info.value) and "soon\\x1b[2J" in str(info.value)


# --- 4. the password flag of long-running commands -------------------------------------------


@pytest.mark.parametrize("command", ["update", "serve", "ship"])
def test_long_running_commands_warn_about_the_password_flag(
    command: str, tmp_path: Path, files: tuple[Path, Path, str]
) -> None:
    if command == "ship":
        argv = ["ship", "--pkcs8-password", "hunter2", "--config", str(tmp_path / "none.toml")]
    else:
        argv = [command, "--certificate", str(tmp_path / "missing.pem"), *ARNS,
                "--pkcs8-password", "hunter2", "--endpoint", "http://127.0.0.1:9"]  # fmt: skip
        if command == "update":
            argv.append("--once")
    status, _, err = run(argv, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    assert status == 1
    first = err.splitlines()[0]
    assert PASSWORD_FLAG_WARNING in first and "ROLESANYWHERE_PKCS8_PASSWORD" in first
    assert "hunter2" not in err


def test_short_commands_and_the_environment_variable_do_not_warn(
    tmp_path: Path, files: tuple[Path, Path, str]
) -> None:
    cert, key, _ = files
    argv = ["credential-process", "--certificate", str(cert), "--private-key", str(key), *ARNS,
            "--endpoint", "http://127.0.0.1:9", "--timeout", "0.5"]  # fmt: skip
    _, _, err = run([*argv, "--pkcs8-password", "hunter2"])
    assert PASSWORD_FLAG_WARNING not in err
    argv = ["update", "--once", "--certificate", str(tmp_path / "missing.pem"), *ARNS]
    _, _, err = run(argv, ROLESANYWHERE_PKCS8_PASSWORD="hunter2")
    assert PASSWORD_FLAG_WARNING not in err


@pytest.mark.parametrize(
    "command", ["credential-process", "update", "serve", "sign-string", "ship"]
)
def test_help_says_the_flag_shows_in_ps(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main([command, "--help"], stdout=out, stderr=out) == 0
    text = " ".join((out.getvalue() + capsys.readouterr().out).split())
    assert "visible to other users in ps" in text


def test_key_file_flags_are_still_taken(files: tuple[Path, Path, str]) -> None:
    cert, key, _ = files
    argv = ["sign-string", "--private-key", str(key), "--certificate", str(cert)]
    status, out, err = run(argv)
    assert status == 0, err
    assert json.loads(out)
