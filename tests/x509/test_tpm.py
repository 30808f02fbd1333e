"""TPM 2.0 keys (``handle:0x81…`` and TSS2 key files) against a software TPM (swtpm) started
on private loopback ports, through ``credential-process`` and the Roles Anywhere emulator."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rolesanywhere.cli.main import main
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI

tss = pytest.importorskip("tpm2_pytss", reason="tpm2-pytss (the 'tpm' extra) is not installed")
if shutil.which("swtpm") is None:
    pytest.skip("swtpm is not installed (Debian: apt-get install swtpm)", allow_module_level=True)

PASSWORD = "tpm key secret 42"
HANDLE = 0x81000101


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two free consecutive loopback ports")


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh software TPM on 127.0.0.1 (random ports, state in a temp dir): its TCTI."""
    state = tmp_path_factory.mktemp("swtpm")
    port = _free_port_pair()
    process = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
         "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
         "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    assert process.stderr is not None
                    pytest.fail(f"swtpm did not start: {process.stderr.read().decode()}")
                time.sleep(0.05)
        yield f"swtpm:host=127.0.0.1,port={port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def tcti(swtpm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TPM2TOOLS_TCTI", swtpm)
    return swtpm


class _PublicOnly:
    """What the PKI needs to issue a certificate for a key it does not hold."""

    def __init__(self, public: Any) -> None:
        self._public = public

    def public_key(self) -> Any:
        return self._public


def _public(pem_public: bytes) -> _PublicOnly:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return _PublicOnly(load_pem_public_key(pem_public))


def _tss2_key(tcti: str, kind: str, password: str | None) -> tuple[bytes, _PublicOnly]:
    from tpm2_pytss.tsskey import TSSPrivKey

    esapi = tss.ESAPI(tcti)
    try:
        auth = password.encode() if password else None
        if kind == "rsa":
            key = TSSPrivKey.create_rsa(esapi, password=auth)
        else:
            key = TSSPrivKey.create_ecc(esapi, password=auth)
    finally:
        esapi.close()
    return key.to_pem(), _public(key.public.to_pem())


def _persistent_key(tcti: str) -> _PublicOnly:
    """An RSA key made persistent at :data:`HANDLE` (password-protected), as evictcontrol does."""
    from tpm2_pytss.tsskey import TSSPrivKey

    pem, public = _tss2_key(tcti, "rsa", PASSWORD)
    esapi = tss.ESAPI(tcti)
    try:
        try:
            old = esapi.tr_from_tpmpublic(HANDLE)
            esapi.evict_control(tss.ESYS_TR.OWNER, old, HANDLE)
        except tss.TSS2_Exception:
            pass  # nothing there yet
        handle = TSSPrivKey.from_pem(pem).load(esapi, password=PASSWORD.encode())
        esapi.evict_control(tss.ESYS_TR.OWNER, handle, HANDLE)
        esapi.flush_context(handle)
    finally:
        esapi.close()
    return public


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(name="tpm tests")


@pytest.fixture(scope="module")
def emulator(pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        yield emu


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, stdin=io.StringIO(""), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def credential_process(
    emu: RolesAnywhereEmulator, pki: PKI, tmp: Path, public: _PublicOnly, key: str, *extra: str
) -> tuple[int, str, str]:
    leaf = pki.leaf(private_key=public)  # type: ignore[arg-type]
    cert = tmp / "cert.pem"
    cert.write_bytes(leaf.cert_pem() + pki.intermediate.cert_pem())
    return run([
        "credential-process", "--certificate", str(cert), "--private-key", key,
        "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
        "--role-arn", emu.role_arn, "--endpoint", emu.url, *extra,
    ])  # fmt: skip


def assert_credentials(out: str, emu: RolesAnywhereEmulator) -> None:
    data = json.loads(out)
    issued = emu.lookup(data["AccessKeyId"])
    assert issued is not None and issued.session_token == data["SessionToken"]


def test_persistent_handle_with_password(
    tcti: str, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    public = _persistent_key(tcti)
    status, out, err = credential_process(
        emulator, pki, tmp_path, public, f"handle:{HANDLE:#x}",
        "--tpm-key-password", PASSWORD, "--debug",
    )  # fmt: skip
    assert status == 0, err
    assert_credentials(out, emulator)
    assert "AWS4-X509-RSA-SHA256" in err
    assert PASSWORD not in out + err


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_tss2_key_file_without_password(
    kind: str, tcti: str, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    pem, public = _tss2_key(tcti, kind, None)
    key = tmp_path / "key.tss2.pem"
    key.write_bytes(pem)
    status, out, err = credential_process(
        emulator, pki, tmp_path, public, str(key), "--no-tpm-key-password"
    )
    assert status == 0, err
    assert_credentials(out, emulator)


def test_tss2_key_file_with_password(
    tcti: str, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    pem, public = _tss2_key(tcti, "ec", PASSWORD)
    key = tmp_path / "key.tss2.pem"
    key.write_bytes(pem)
    status, out, err = credential_process(
        emulator, pki, tmp_path, public, str(key), "--tpm-key-password", PASSWORD, "--debug"
    )
    assert status == 0, err
    assert_credentials(out, emulator)
    assert "AWS4-X509-ECDSA-SHA256" in err
    assert PASSWORD not in out + err

    status, out, err = credential_process(emulator, pki, tmp_path, public, str(key))
    assert status == 1 and out == ""
    assert "has a password" in err and "--tpm-key-password" in err
    assert err.count("\n") == 1


def test_no_tpm_key_password_overrides_a_wrong_empty_auth(
    tcti: str, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    """tpm2_encodeobject before 5.5 marks keys made without -p as having a password."""
    from tpm2_pytss.tsskey import TSSPrivKey

    pem, public = _tss2_key(tcti, "ec", None)
    key = TSSPrivKey.from_pem(pem)
    file = tmp_path / "key.tss2.pem"
    file.write_bytes(TSSPrivKey(key.private, key.public, empty_auth=False).to_pem())
    status, out, err = credential_process(
        emulator, pki, tmp_path, public, str(file), "--no-tpm-key-password"
    )
    assert status == 0, err
    assert_credentials(out, emulator)


def test_wrong_password_is_one_line_without_the_password(
    tcti: str, pki: PKI, emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    pem, public = _tss2_key(tcti, "ec", PASSWORD)
    key = tmp_path / "key.tss2.pem"
    key.write_bytes(pem)
    wrong = "not the tpm password"
    status, out, err = credential_process(
        emulator, pki, tmp_path, public, str(key), "--tpm-key-password", wrong
    )
    assert status == 1 and out == ""
    assert "wrong password for TPM key" in err and err.count("\n") == 1
    assert wrong not in err and PASSWORD not in err


def test_sign_string_with_a_tss2_key(tcti: str, tmp_path: Path) -> None:
    pem, _ = _tss2_key(tcti, "ec", None)
    key = tmp_path / "key.tss2.pem"
    key.write_bytes(pem)
    status, out, err = run(["sign-string", "--private-key", str(key), "--format", "text"])
    assert status == 0, err
    assert bytes.fromhex(out.strip())[0] == 0x30  # a DER-encoded ECDSA signature


def test_unknown_handle_is_one_line(tcti: str, pki: PKI, tmp_path: Path) -> None:
    status, out, err = run([
        "sign-string", "--private-key", "handle:0x81000FFF", "--no-tpm-key-password",
    ])  # fmt: skip
    assert status == 1 and out == "" and err.count("\n") == 1
    assert "handle:0x81000FFF" in err and "TPM2TOOLS_TCTI" in err


def test_not_a_persistent_handle(tcti: str) -> None:
    status, out, err = run(["sign-string", "--private-key", "handle:0x80000001"])
    assert out == ""
    assert status == 1 and "not a persistent handle" in err


def test_importing_rolesanywhere_does_not_import_tpm2_pytss() -> None:
    code = "import rolesanywhere, rolesanywhere.cli.main, sys; print('tpm2_pytss' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
