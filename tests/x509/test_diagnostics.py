"""sign-string and read-certificate-data: the Go helper's diagnostic commands."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rolesanywhere.cli.main import main
from rolesanywhere.testing.pki import KEY_TYPES, PKI, IssuedCert, KeyFormat
from rolesanywhere.x509.certificates import certificate_der_fields
from rolesanywhere.x509.diagnostics import (
    certificate_data_json,
    fixed_string_to_sign,
    format_signature,
    sign_fixed_string,
)
from rolesanywhere.x509.keys import SoftwareSigningKey

_PKI = PKI(name="diagnostics")
_LEAVES = {kt: _PKI.leaf(kt) for kt in KEY_TYPES}
_HASH = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


def expected_string(leaf: IssuedCert) -> bytes:
    # Written out from PROTOCOL.md §2, independently of the module.
    public = leaf.certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        raw = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return (
        b"AWS Roles Anywhere Credential Helper Signing Test1"
        + hashlib.sha256(b"IAM RA" + raw).digest()
    )


def verify(leaf: IssuedCert, signature: bytes, digest: str) -> None:
    public = leaf.certificate.public_key()
    data = expected_string(leaf)
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), _HASH[digest]())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(_HASH[digest]()))


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_the_fixed_string_depends_only_on_the_public_key(key_type: str) -> None:
    leaf = _LEAVES[key_type]
    key = SoftwareSigningKey.from_private_key(leaf.private_key)
    assert fixed_string_to_sign(key) == expected_string(leaf)
    assert len(fixed_string_to_sign(key)) == 50 + 32


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_signatures_verify_with_the_certificate(key_type: str, digest: str) -> None:
    leaf = _LEAVES[key_type]
    key = SoftwareSigningKey.from_private_key(leaf.private_key)
    signature = sign_fixed_string(key, digest)  # type: ignore[arg-type]
    verify(leaf, signature, digest)
    other = "SHA512" if digest != "SHA512" else "SHA256"
    with pytest.raises(InvalidSignature):
        verify(leaf, signature, other)


def test_output_formats() -> None:
    signature = bytes(range(5))
    assert format_signature(signature) == b'"0001020304"'
    assert format_signature(signature, "text") == b"0001020304"
    assert format_signature(signature, "bin") == signature
    with pytest.raises(ValueError, match="format"):
        format_signature(signature, "xml")  # type: ignore[arg-type]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_certificate_data_is_the_go_helpers_json(key_type: str) -> None:
    leaf = _LEAVES[key_type]
    der, fields = certificate_der_fields(leaf.cert_pem(), source="c.pem")
    text = certificate_data_json(der, fields, source="c.pem")
    kind = "RSA" if key_type.startswith("rsa") else "EC"
    assert text == (
        f'{{"keyType":"{kind}","certificateData":"{base64.b64encode(leaf.cert_der()).decode()}",'
        f'"serialNumber":"{leaf.serial_number}","supportedAlgorithms":'
        f'["{kind}SHA256","{kind}SHA384","{kind}SHA512"]}}'
    )


def run(argv: list[str], stdin: str = "") -> tuple[int, bytes, str]:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    err = io.StringIO()
    status = main(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    out.flush()
    return status, raw.getvalue(), err.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for key_type in ("ec-p256", "rsa-2048"):
        cert, key = _LEAVES[key_type].write(
            tmp_path,
            key_type,
            key_format=KeyFormat.PKCS1_PEM if key_type.startswith("rsa") else KeyFormat.SEC1_PEM,
        )
        out[key_type + ".crt"], out[key_type + ".key"] = cert, key
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(_LEAVES["ec-p256"].key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM, b"pw"))
    out["encrypted.key"] = encrypted
    both = tmp_path / "both.pem"
    both.write_bytes(_LEAVES["rsa-2048"].cert_pem() + out["rsa-2048.key"].read_bytes())
    out["both.pem"] = both
    return out


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_cli_sign_string_defaults_to_json_and_sha256(files: dict[str, Path], key_type: str) -> None:
    status, out, err = run(["sign-string", "--private-key", str(files[key_type + ".key"])])
    assert (status, err) == (0, "")
    assert not out.endswith(b"\n")
    verify(_LEAVES[key_type], bytes.fromhex(json.loads(out)), "SHA256")


def test_cli_sign_string_formats_digests_and_key_sources(files: dict[str, Path]) -> None:
    status, out, _ = run(["sign-string", "--private-key", str(files["rsa-2048.key"]),
                          "--format", "text", "--digest", "SHA384"])  # fmt: skip
    assert status == 0
    verify(_LEAVES["rsa-2048"], bytes.fromhex(out.decode()), "SHA384")
    status, out, _ = run(["sign-string", "--private-key", str(files["ec-p256.key"]),
                          "--format", "bin", "--digest", "SHA512"])  # fmt: skip
    assert status == 0
    verify(_LEAVES["ec-p256"], out, "SHA512")
    status, out, _ = run(["sign-string", "--certificate", str(files["both.pem"])])
    assert status == 0
    verify(_LEAVES["rsa-2048"], bytes.fromhex(json.loads(out)), "SHA256")
    status, out, _ = run(
        ["sign-string", "--private-key", str(files["encrypted.key"]), "--pkcs8-password", "pw"]
    )
    assert status == 0
    verify(_LEAVES["ec-p256"], bytes.fromhex(json.loads(out)), "SHA256")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sign-string"], "no --private-key given"),
        (["sign-string", "--private-key", "missing.key"], "missing.key"),
        (["sign-string", "--private-key", "KEY", "--format", "xml"], "invalid choice: 'xml'"),
        (["sign-string", "--private-key", "KEY", "--digest", "MD5"], "invalid choice: 'MD5'"),
        (["sign-string", "--private-key", "ENC"], "is encrypted"),
        (
            ["sign-string", "--private-key", "ENC", "--pkcs8-password", "hunter2-secret"],
            "wrong password",
        ),
        (["sign-string", "--private-key", "KEY", "--cert-selector", "{}"], "not supported"),
        (["sign-string", "--private-key", "pkcs11:token=t"], "needs its --certificate"),
        (["read-certificate-data"], "no --certificate given"),
        (["read-certificate-data", "--certificate", "KEY"], "no certificate found"),
        (["read-certificate-data", "--certificate", "C", "--cert-selector", "{}"], "not supported"),
    ],
)
def test_cli_errors_are_one_line_exit_1(
    files: dict[str, Path], argv: list[str], message: str
) -> None:
    names = {"KEY": "ec-p256.key", "ENC": "encrypted.key", "C": "ec-p256.crt"}
    argv = [str(files[names[a]]) if a in names else a for a in argv]
    status, out, err = run(argv)
    assert (status, out) == (1, b"")
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert "hunter2" not in err  # never the password


def test_cli_read_certificate_data(files: dict[str, Path]) -> None:
    status, out, err = run(["read-certificate-data", "--certificate", str(files["rsa-2048.crt"])])
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert list(data) == ["keyType", "certificateData", "serialNumber", "supportedAlgorithms"]
    assert data["keyType"] == "RSA" and data["serialNumber"] == str(
        _LEAVES["rsa-2048"].serial_number
    )
    assert base64.b64decode(data["certificateData"]) == _LEAVES["rsa-2048"].cert_der()
