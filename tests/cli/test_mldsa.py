"""ML-DSA keys through the command line and the library, against the local emulator."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, IssuedCert
from rolesanywhere.x509.identity import Identity
from rolesanywhere.x509.keys import ALGORITHM_MLDSA
from tests import mldsa_keys as mk
from tests.cli.test_main import arns
from tests.x509.test_diagnostics import run

FIXED_STRING = b"AWS Roles Anywhere Credential Helper Signing Test1"


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(name="mldsa cli")


@pytest.fixture(scope="module")
def leaves(pki: PKI) -> dict[str, IssuedCert]:
    return {p: pki.leaf(private_key=mk.private_key(p)) for p in mk.PARAMETER_SETS}


@pytest.fixture(scope="module")
def emulator(pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        yield emu


def identity_argv(
    tmp: Path, pki: PKI, leaf: IssuedCert, case: tuple[str, str, bool, bool]
) -> list[str]:
    parameter_set, form, encrypted, as_pem = case
    cert, key, chain = tmp / "cert.pem", tmp / f"key.{'pem' if as_pem else 'der'}", tmp / "ca.pem"
    cert.write_bytes(leaf.cert_pem())
    key.write_bytes(mk.key_file(parameter_set, form, encrypted=encrypted, as_pem=as_pem))
    chain.write_bytes(pki.intermediate.cert_pem())
    argv = ["--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain)]
    if encrypted:
        argv += ["--pkcs8-password", mk.PASSWORD.decode()]
    return argv


@pytest.mark.parametrize("case", mk.ALL_FILES, ids=mk.file_id)
def test_credential_process_with_every_form(
    case: tuple[str, str, bool, bool],
    pki: PKI,
    leaves: dict[str, IssuedCert],
    emulator: RolesAnywhereEmulator,
    tmp_path: Path,
) -> None:
    leaf = leaves[case[0]]
    argv = ["credential-process", *identity_argv(tmp_path, pki, leaf, case), *arns(emulator)]
    status, out, err = run(argv)
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert emulator.lookup(data["AccessKeyId"]) is not None
    assert emulator.issued[-1].certificate_serial == leaf.serial_number
    assert emulator.requests[-1].header("authorization").startswith("AWS4-X509-MLDSA ")


@pytest.mark.parametrize("encrypted", [False, True])
def test_credential_process_refuses_a_damaged_expanded_key_in_one_line(
    encrypted: bool,
    pki: PKI,
    leaves: dict[str, IssuedCert],
    emulator: RolesAnywhereEmulator,
    tmp_path: Path,
) -> None:
    case = ("ML-DSA-65", "expanded", encrypted, True)
    argv = ["credential-process", *identity_argv(tmp_path, pki, leaves["ML-DSA-65"], case)]
    damaged = bytearray(mk.expanded("ML-DSA-65"))
    damaged[64] ^= 1  # tr
    der = mk.pkcs8("ML-DSA-65", "expanded", expanded_bytes=bytes(damaged))
    if encrypted:
        der = mk.encrypt(der)
    key = Path(argv[argv.index("--private-key") + 1])
    key.write_bytes(mk.pem(der, "ENCRYPTED PRIVATE KEY" if encrypted else "PRIVATE KEY"))
    issued = len(emulator.issued)
    status, out, err = run([*argv, *arns(emulator)])
    assert (status, out) == (1, b"")
    assert "ML-DSA-65 expanded key is damaged" in err and err.count("\n") == 1
    assert mk.PASSWORD.decode() not in err and mk.expanded("ML-DSA-65")[:8].hex() not in err
    assert len(emulator.issued) == issued


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_an_expanded_key_alone_signs_everywhere(
    parameter_set: str,
    pki: PKI,
    leaves: dict[str, IssuedCert],
    emulator: RolesAnywhereEmulator,
    tmp_path: Path,
) -> None:
    # OpenSSL 3.5 with ml-dsa.output_formats=priv-only, encrypted PEM: credentials, sign-string
    # and read-certificate-data.
    leaf = leaves[parameter_set]
    argv = identity_argv(tmp_path, pki, leaf, (parameter_set, "expanded", True, True))
    status, out, err = run(["credential-process", *argv, *arns(emulator)])
    assert (status, err) == (0, "")
    assert emulator.lookup(json.loads(out)["AccessKeyId"]) is not None
    assert emulator.issued[-1].certificate_serial == leaf.serial_number
    key = argv[argv.index("--private-key") + 1]
    password = ["--pkcs8-password", mk.PASSWORD.decode()]
    status, out, err = run(["sign-string", "--private-key", key, *password, "--format", "bin"])
    assert (status, err) == (0, "")
    leaf.certificate.public_key().verify(out, FIXED_STRING)  # type: ignore[call-arg,union-attr]
    status, out, err = run(["read-certificate-data", "--certificate", argv[1]])
    assert (status, err) == (0, "")
    assert json.loads(out)["keyType"] == parameter_set


def test_the_console_script_from_files(
    pki: PKI, leaves: dict[str, IssuedCert], emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    # The real process, OpenSSL 3.5's default form (seed and expanded key), encrypted DER.
    case = ("ML-DSA-87", "both", True, False)
    argv = ["credential-process", *identity_argv(tmp_path, pki, leaves["ML-DSA-87"], case)]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rolesanywhere"), *argv, *arns(emulator)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert emulator.lookup(json.loads(proc.stdout)["AccessKeyId"]) is not None


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_the_library_client(
    parameter_set: str, leaves: dict[str, IssuedCert], emulator: RolesAnywhereEmulator
) -> None:
    leaf = leaves[parameter_set]
    key = mk.key_file(parameter_set, "both", encrypted=True, as_pem=True)
    identity = Identity.load(leaf.cert_pem(), key, leaf.chain_pem(), mk.PASSWORD)
    assert identity.algorithm == ALGORITHM_MLDSA
    with emulator.client(identity) as client:
        credentials = client.create_session()
    assert emulator.lookup(credentials.access_key_id) is not None


@pytest.mark.parametrize("fmt", ["json", "text", "bin"])
@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_sign_string(
    parameter_set: str, fmt: str, leaves: dict[str, IssuedCert], tmp_path: Path
) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(mk.key_file(parameter_set, "both", encrypted=False, as_pem=True))
    # --digest does not apply to pure ML-DSA: the signature is over the string itself.
    argv = ["sign-string", "--private-key", str(key), "--format", fmt, "--digest", "SHA512"]
    status, out, err = run(argv)
    assert (status, err) == (0, "")
    signature = {
        "json": lambda: bytes.fromhex(json.loads(out)),
        "text": lambda: bytes.fromhex(out.decode()),
        "bin": lambda: out,
    }[fmt]()
    # No SHA256("IAM RA" || public key) suffix for ML-DSA keys; pure ML-DSA, empty context.
    leaves[parameter_set].certificate.public_key().verify(signature, FIXED_STRING)  # type: ignore[call-arg,arg-type,union-attr]


def test_sign_string_debug_names_no_digest(tmp_path: Path) -> None:
    key = tmp_path / "key.der"
    key.write_bytes(mk.key_file("ML-DSA-44", "seed", encrypted=False, as_pem=False))
    status, _, err = run(["sign-string", "--private-key", str(key), "--debug"])
    assert status == 0
    assert "with AWS4-X509-MLDSA" in err and "SHA256" not in err


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_read_certificate_data(
    parameter_set: str, leaves: dict[str, IssuedCert], tmp_path: Path
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(leaves[parameter_set].cert_pem())
    status, out, err = run(["read-certificate-data", "--certificate", str(cert)])
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert data == {
        "keyType": parameter_set,
        "certificateData": base64.b64encode(leaves[parameter_set].cert_der()).decode(),
        "serialNumber": str(leaves[parameter_set].serial_number),
        "supportedAlgorithms": [parameter_set],
    }
