"""The ``credential-process`` command against the local emulator, and its error contract."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere import errors
from rolesanywhere.cli.main import main
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import KEY_TYPES, PKI, IssuedCert, KeyFormat, openssl_available
from rolesanywhere.x509.identity import Identity

PASSWORD = b"correct horse battery staple"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(name="cli tests")


@pytest.fixture(scope="module")
def emulator(pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        yield emu


def run(argv: list[str], **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        status = main(argv, stdin=io.StringIO(""), stdout=out, stderr=err)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return status, out.getvalue(), err.getvalue()


def arns(emu: RolesAnywhereEmulator) -> list[str]:
    return [
        "--trust-anchor-arn", emu.trust_anchor_arn,
        "--profile-arn", emu.profile_arn,
        "--role-arn", emu.role_arn,
        "--endpoint", emu.url,
    ]  # fmt: skip


def write_identity(
    tmp: Path, leaf: IssuedCert, pki: PKI, fmt: KeyFormat = KeyFormat.PKCS8_PEM
) -> list[str]:
    password = PASSWORD if fmt.encrypted else None
    cert = tmp / "cert.pem"
    key = tmp / f"key.{'pem' if fmt.pem else 'der'}"
    chain = tmp / "chain.pem"
    cert.write_bytes(leaf.cert_pem())
    key.write_bytes(leaf.key_bytes(fmt, password))
    chain.write_bytes(pki.intermediate.cert_pem())
    argv = ["--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain)]
    if password:
        argv += ["--pkcs8-password", password.decode()]
    return argv


def assert_credentials(out: str, emu: RolesAnywhereEmulator) -> None:
    data = json.loads(out)
    assert list(data) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert data["Version"] == 1
    issued = emu.lookup(data["AccessKeyId"])
    assert issued is not None
    assert issued.secret_access_key == data["SecretAccessKey"]
    assert issued.session_token == data["SessionToken"]
    assert not out.endswith("\n")


def one_line_error(status: int, out: str, err: str) -> str:
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err


CASES = [
    (key_type, fmt)
    for key_type in KEY_TYPES
    for fmt in KeyFormat.for_key_type(key_type, include_openssl=openssl_available())
    if key_type != "rsa-4096" or fmt in (KeyFormat.PKCS1_PEM, KeyFormat.PKCS8_ENCRYPTED_DER)
]


@pytest.mark.parametrize(("key_type", "fmt"), CASES, ids=[f"{k}-{f.value}" for k, f in CASES])
def test_every_key_type_and_format(
    key_type: str, fmt: KeyFormat, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    leaf = pki.leaf(key_type)
    status, out, err = run(
        ["credential-process", *write_identity(tmp_path, leaf, pki, fmt), *arns(emulator)]
    )
    assert status == 0, err
    assert_credentials(out, emulator)
    assert emulator.issued[-1].certificate_serial == leaf.certificate.serial_number


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p384"])
def test_pkcs12(
    key_type: str, legacy: bool, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    leaf = pki.leaf(key_type)
    bundle = tmp_path / "client.p12"
    bundle.write_bytes(leaf.pkcs12(PASSWORD, legacy=legacy, chain=[pki.intermediate.certificate]))
    status, out, err = run(
        ["credential-process", "--certificate", str(bundle), "--pkcs8-password", PASSWORD.decode(),
         *arns(emulator)]
    )  # fmt: skip
    assert status == 0, err
    assert_credentials(out, emulator)


def test_one_file_with_key_and_certificate(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    leaf = pki.leaf("ec-p256")
    combined = tmp_path / "both.pem"
    combined.write_bytes(leaf.combined_pem(with_chain=True))
    status, out, err = run(["credential-process", "--certificate", str(combined), *arns(emulator)])
    assert status == 0, err
    assert_credentials(out, emulator)


def test_password_from_environment(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    argv = write_identity(tmp_path, pki.leaf("ec-p256"), pki, KeyFormat.PKCS8_ENCRYPTED_PEM)
    argv = argv[: argv.index("--pkcs8-password")]
    status, out, err = run(
        ["credential-process", *argv, *arns(emulator)],
        ROLESANYWHERE_PKCS8_PASSWORD=PASSWORD.decode(),
    )
    assert status == 0, err
    assert_credentials(out, emulator)


def test_expired_certificate(pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path) -> None:
    argv = write_identity(tmp_path, pki.expired_leaf("ec-p256"), pki)
    err = one_line_error(*run(["credential-process", *argv, *arns(emulator)]))
    assert "expired" in err and str(tmp_path / "cert.pem") in err


def test_not_yet_valid_certificate(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    argv = write_identity(tmp_path, pki.not_yet_valid_leaf("ec-p256"), pki)
    err = one_line_error(*run(["credential-process", *argv, *arns(emulator)]))
    assert "is not valid until" in err


def test_untrusted_certificate(pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path) -> None:
    argv = write_identity(tmp_path, pki.untrusted_leaf("ec-p256"), pki)
    err = one_line_error(*run(["credential-process", *argv, *arns(emulator)]))
    assert "AccessDeniedException" in err and "Untrusted" in err


def test_mismatched_key(pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path) -> None:
    argv = write_identity(tmp_path, pki.leaf("ec-p256"), pki)
    other = pki.leaf("ec-p384")
    (tmp_path / "key.pem").write_bytes(other.key_bytes(KeyFormat.PKCS8_PEM))
    err = one_line_error(*run(["credential-process", *argv, *arns(emulator)]))
    assert "does not match" in err


def test_wrong_password(pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path) -> None:
    argv = write_identity(tmp_path, pki.leaf("rsa-2048"), pki, KeyFormat.PKCS8_ENCRYPTED_PEM)
    argv[argv.index("--pkcs8-password") + 1] = "not-the-password"
    err = one_line_error(*run(["credential-process", *argv, *arns(emulator)]))
    assert "wrong password" in err.lower()
    assert "not-the-password" not in err


def test_encrypted_key_without_password_names_the_flag(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    argv = write_identity(tmp_path, pki.leaf("ec-p256"), pki, KeyFormat.PKCS8_ENCRYPTED_PEM)
    argv = argv[: argv.index("--pkcs8-password")]
    err = one_line_error(*run(["credential-process", *argv, *arns(emulator)]))
    assert "--pkcs8-password" in err and "ROLESANYWHERE_PKCS8_PASSWORD" in err


def test_missing_certificate_flag(emulator: RolesAnywhereEmulator) -> None:
    err = one_line_error(*run(["credential-process", *arns(emulator)]))
    assert "unable to use cert store signer" in err and "--certificate" in err


def test_missing_certificate_file(emulator: RolesAnywhereEmulator, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    err = one_line_error(
        *run(["credential-process", "--certificate", str(missing), *arns(emulator)])
    )
    assert str(missing) in err


def test_bad_arn_and_duration_fail_before_network(emulator: RolesAnywhereEmulator) -> None:
    before = emulator.calls
    err = one_line_error(
        *run(["credential-process", "--certificate", "x", *arns(emulator)[:-2],
              "--session-duration", "60"])
    )  # fmt: skip
    assert "--session-duration" in err or "900" in err
    assert emulator.calls == before


def test_unknown_flag_is_one_line(emulator: RolesAnywhereEmulator) -> None:
    one_line_error(*run(["credential-process", "--frobnicate"]))


def test_debug_prints_canonical_request_without_secrets(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    argv = write_identity(tmp_path, pki.leaf("ec-p256"), pki, KeyFormat.PKCS8_ENCRYPTED_PEM)
    status, out, err = run(["credential-process", *argv, *arns(emulator), "--debug"])
    assert status == 0
    data = json.loads(out)
    assert "canonical request" in err and "AWS4-X509-ECDSA-SHA256\n" in err
    assert "/sessions\nprofileArn=" in err
    for secret in (data["SecretAccessKey"], data["SessionToken"], PASSWORD.decode()):
        assert secret not in err


def test_service_retries_then_succeeds(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    argv = write_identity(tmp_path, pki.leaf("ec-p256"), pki)
    emulator.fail_next(2, 500)
    before = emulator.calls
    status, out, err = run(["credential-process", *argv, *arns(emulator)])
    assert status == 0, err
    assert emulator.calls - before == 3
    assert_credentials(out, emulator)


# --- the library client against the emulator: retries and timeouts --------------------------

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


def client_for(emu: RolesAnywhereEmulator, identity: Identity, cls: type, **kw: object) -> object:
    return cls(
        identity,
        trust_anchor_arn=emu.trust_anchor_arn,
        profile_arn=emu.profile_arn,
        role_arn=emu.role_arn,
        endpoint=emu.url,
        retry=FAST,
        **kw,
    )


@pytest.fixture(scope="module")
def identity(pki: PKI) -> Identity:
    leaf = pki.leaf("ec-p256")
    return leaf.identity()


@pytest.mark.parametrize("status", [500, 429])
def test_sync_client_retries_against_emulator(
    status: int, emulator: RolesAnywhereEmulator, identity: Identity
) -> None:
    emulator.fail_next(2, status)
    before = emulator.calls
    with client_for(emulator, identity, RolesAnywhereClient) as client:  # type: ignore[attr-defined]
        creds = client.create_session()
        assert client.attempts == 3
    assert emulator.calls - before == 3
    assert emulator.lookup(creds.access_key_id) is not None


@pytest.mark.parametrize("status", [500, 429])
def test_async_client_retries_against_emulator(
    status: int, emulator: RolesAnywhereEmulator, identity: Identity
) -> None:
    emulator.fail_next(2, status)

    async def go() -> int:
        async with client_for(emulator, identity, AsyncRolesAnywhereClient) as client:  # type: ignore[attr-defined]
            await client.create_session()
            return int(client.attempts)

    assert asyncio.run(go()) == 3


def test_three_failures_give_the_service_error(
    emulator: RolesAnywhereEmulator, identity: Identity
) -> None:
    emulator.fail_next(3, 429)
    with pytest.raises(errors.ThrottlingError):
        client_for(emulator, identity, RolesAnywhereClient).create_session()  # type: ignore[attr-defined]


@pytest.mark.parametrize("flavour", ["sync", "async", "cli"])
def test_stalled_server_times_out_within_limit(
    flavour: str, pki: PKI, identity: Identity, tmp_path: Path
) -> None:
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        emu.delay = 10.0
        start = time.monotonic()
        if flavour == "cli":
            argv = write_identity(tmp_path, pki.leaf("ec-p256"), pki)
            err = one_line_error(*run(["credential-process", *argv, *arns(emu), "--timeout", "1"]))
            assert "did not answer within 1 s" in err or "within 1 s" in err
        elif flavour == "sync":
            client = client_for(emu, identity, RolesAnywhereClient, timeout=1.0)
            with pytest.raises(errors.RequestTimeoutError):
                client.create_session()  # type: ignore[attr-defined]
        else:
            client = client_for(emu, identity, AsyncRolesAnywhereClient, timeout=1.0)
            with pytest.raises(errors.RequestTimeoutError):
                asyncio.run(client.create_session())  # type: ignore[attr-defined]
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed <= 1.8, elapsed


# --- the installed console scripts (real processes) ------------------------------------------


def test_console_script_output_is_byte_exact(
    pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    argv = write_identity(tmp_path, pki.leaf("rsa-2048"), pki)
    result = subprocess.run(
        [str(BIN / "aws_signing_helper"), "credential-process", *argv, *arns(emulator)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    data = json.loads(result.stdout)
    expected = (
        f'{{"Version":1,"AccessKeyId":"{data["AccessKeyId"]}",'
        f'"SecretAccessKey":"{data["SecretAccessKey"]}","SessionToken":"{data["SessionToken"]}",'
        f'"Expiration":"{data["Expiration"]}"}}'
    )
    assert result.stdout == expected.encode()


def test_console_script_error_has_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    result = subprocess.run(
        [str(BIN / "rolesanywhere"), "credential-process", "--certificate", str(garbage),
         "--trust-anchor-arn", "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/"
         "a1b2c3d4-0000-0000-0000-000000000001",
         "--profile-arn", "arn:aws:rolesanywhere:us-east-1:123456789012:profile/"
         "a1b2c3d4-0000-0000-0000-000000000002",
         "--role-arn", "arn:aws:iam::123456789012:role/x"],
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.count(b"\n") == 1
    assert result.stdout == b""


def test_version_command() -> None:
    from rolesanywhere import __version__

    status, out, _ = run(["version"])
    assert status == 0 and out == f"{__version__}\n"


# --- hypothesis: no input makes the CLI print a traceback -------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=600), key=st.binary(max_size=300))
def test_cli_never_tracebacks_on_garbage_files(
    content: bytes, key: bytes, tmp_path: Path, emulator: RolesAnywhereEmulator
) -> None:
    (tmp_path / "c").write_bytes(content)
    (tmp_path / "k").write_bytes(key)
    status, out, err = run(
        ["credential-process", "--certificate", str(tmp_path / "c"),
         "--private-key", str(tmp_path / "k"), *arns(emulator)]
    )  # fmt: skip
    one_line_error(status, out, err)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=6))
def test_cli_never_tracebacks_on_random_arguments(argv: list[str]) -> None:
    status, out, err = run(["credential-process", *argv])
    assert status in (0, 1)
    assert "Traceback" not in err
    if status == 1:
        assert err.count("\n") == 1
        assert out == ""


def test_long_running_commands_see_rotated_certificates(tmp_path: Path) -> None:
    # update and serve run for days: the client the flags describe re-reads its files when
    # they change, as IdentityLoader does.
    from rolesanywhere.cli.main import _build_parser, _client

    pki = PKI(name="rotation")
    first, second = pki.leaf("ec-p256"), pki.leaf("ec-p256")
    cert, key = first.write(tmp_path, "client", key_format=KeyFormat.PKCS8_PEM)
    uuid = "86faf616-0d00-4d73-98f1-12e3a8c96d0a"
    anchor = f"arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/{uuid}"
    profile = f"arn:aws:rolesanywhere:us-east-1:123456789012:profile/{uuid}"
    argv = ["update", "--certificate", str(cert), "--private-key", str(key),
            "--trust-anchor-arn", anchor, "--profile-arn", profile,
            "--role-arn", "arn:aws:iam::123456789012:role/r"]  # fmt: skip
    args = _build_parser("rolesanywhere", argv).parse_args(argv)
    with _client(args, io.StringIO(""), io.StringIO()) as client:
        assert client.config.current_identity().serial_number == first.serial_number
        second.write(tmp_path / "new", "client", key_format=KeyFormat.PKCS8_PEM)
        os.replace(tmp_path / "new" / "client.key", key)
        os.replace(tmp_path / "new" / "client.crt", cert)
        assert client.config.current_identity().serial_number == second.serial_number


def _update_argv(tmp_path: Path, pki: PKI, emu: RolesAnywhereEmulator, *extra: str) -> list[str]:
    return ["update", *extra, *write_identity(tmp_path, pki.leaf("ec-p256"), pki), *arns(emu)]


def test_update_once_on_a_full_disk_is_one_line_and_keeps_the_file(
    tmp_path: Path, pki: PKI, emulator: RolesAnywhereEmulator
) -> None:
    from tests.faults import short_writes

    target = tmp_path / "credentials"
    old = "".join(f"[p{i}]\naws_access_key_id = AKIA{i:04d}\n\n" for i in range(221)).encode()
    target.write_bytes(old)
    argv = _update_argv(tmp_path, pki, emulator, "--once", "--profile", "p7")
    with short_writes(allow=1024):
        status, out, err = run(argv, AWS_SHARED_CREDENTIALS_FILE=str(target))
    err = one_line_error(status, out, err)
    assert "No space left on device" in err and "untouched" in err
    assert target.read_bytes() == old
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_update_stops_on_an_error_no_retry_can_fix(
    tmp_path: Path, pki: PKI, emulator: RolesAnywhereEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without --once, update waits on a threading.Event between attempts: a fake one records
    # the waits and asks to stop after three, so the code as it was (retrying a 403 for ever)
    # ends too, with status 0, instead of hanging the test.
    import threading

    waits: list[float] = []

    class FakeEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            if timeout is None:  # not update's backoff: a real wait
                return super().wait()
            waits.append(timeout)
            return len(waits) >= 3

    monkeypatch.setattr(threading, "Event", FakeEvent)
    stranger = PKI(name="not trusted")  # the emulator answers 403 Untrusted Signing Certificate
    argv = _update_argv(tmp_path, stranger, emulator)
    target = tmp_path / "credentials"
    calls = emulator.calls
    status, out, err = run(argv, AWS_SHARED_CREDENTIALS_FILE=str(target))
    err = one_line_error(status, out, err)
    assert "HTTP 403" in err and waits == [] and emulator.calls == calls + 1
    assert not target.exists()


def test_serve_waits_out_throttles_at_start_as_the_refresher_says() -> None:
    from datetime import UTC, datetime, timedelta

    from rolesanywhere.cli.imds import first_credentials

    now = datetime(2030, 1, 1, tzinfo=UTC)

    class Refresher:
        calls = 0
        next_refresh = now + timedelta(seconds=7.5)

        def get(self) -> None:
            self.calls += 1
            if self.calls < 3:
                raise errors.ThrottlingError("Rate exceeded", status=429)

    class Stop:
        def __init__(self) -> None:
            self.waits: list[float] = []

        def wait(self, seconds: float) -> bool:
            self.waits.append(seconds)
            return False

    refresher, stop, err = Refresher(), Stop(), io.StringIO()
    assert first_credentials(refresher, stop, err, "prog", clock=lambda: now)  # type: ignore[arg-type]
    assert refresher.calls == 3 and stop.waits == [7.5, 7.5]
    assert err.getvalue().count("throttled (Rate exceeded); trying again in 7.5 s") == 2
    stop.wait = lambda seconds: True  # type: ignore[method-assign]
    refresher.calls = 0
    assert not first_credentials(refresher, stop, err, "prog", clock=lambda: now)  # type: ignore[arg-type]


def test_a_throttled_credential_process_says_so_in_one_line(
    pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolesanywhere.session import client as client_module
    from rolesanywhere.testing.quota import Quota
    from tests.troubleshooting import assert_on_page

    waits: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)  # the retry waits, not slept
    # a quota of one call, on a clock that never moves: the first run spends it
    with RolesAnywhereEmulator.for_pki(pki, quota=Quota(0.001, 1), monotonic=lambda: 0.0) as emu:
        argv = [
            "credential-process",
            *write_identity(tmp_path, pki.leaf("ec-p256"), pki),
            *arns(emu),
        ]
        status, out, _ = run(argv)
        assert status == 0 and json.loads(out)["AccessKeyId"]
        err = one_line_error(*run(argv))
        assert emu.throttled == 3 and len(waits) == 2
    assert "ThrottlingException (HTTP 429): Rate exceeded" in err
    assert "throttled on 3 of 3 attempts" in err and "ask AWS for a higher quota" in err
    assert_on_page(err)


def test_update_once_retries_a_throttle_as_a_one_shot_run(
    pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolesanywhere.session import client as client_module
    from rolesanywhere.testing.quota import Quota

    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    with RolesAnywhereEmulator.for_pki(pki, quota=Quota(0.001, 1), monotonic=lambda: 0.0) as emu:
        identity = write_identity(tmp_path, pki.leaf("ec-p256"), pki)
        run(["credential-process", *identity, *arns(emu)])  # spends the quota
        env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials")}
        err = one_line_error(*run(["update", "--once", *identity, *arns(emu)], **env))
        assert emu.throttled == 3  # not 1: --once has no refresher to try again later
    assert "throttled on 3 of 3 attempts" in err
