"""The Go helper's diagnostic commands, as pure functions: ``sign-string`` and
``read-certificate-data`` (PROTOCOL.md §2). The command line does the reading and printing.

``sign-string`` signs a fixed test string that depends only on the public key, so a signature
made here can be checked against the certificate by anyone::

    "AWS Roles Anywhere Credential Helper Signing Test" || "1" || SHA256("IAM RA" || public key)

where the public key is the uncompressed point of an EC key, or the PKCS#1 ``RSAPublicKey`` DER
of an RSA key, and the SHA-256 is the raw 32-byte digest. An ML-DSA key signs the string without
that suffix (as the Go helper does for keys other than RSA and EC), with pure ML-DSA: ``--digest``
does not apply to it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rolesanywhere.credentials import go_json
from rolesanywhere.errors import UnsupportedKeyError
from rolesanywhere.x509.der import (
    CertificateFields,
    ECPublicKeyFields,
    RSAPublicKeyFields,
    parse_mldsa_public_key,
    parse_public_key,
)
from rolesanywhere.x509.keys import ALGORITHM_MLDSA, SigningKey, SoftwareSigningKey

__all__ = [
    "DIGESTS",
    "FORMATS",
    "certificate_data_json",
    "fixed_string_to_sign",
    "format_signature",
    "sign_fixed_string",
]

Digest = Literal["SHA256", "SHA384", "SHA512"]
Format = Literal["json", "text", "bin"]
#: ``--digest`` values, the first the default.
DIGESTS: tuple[Digest, ...] = ("SHA256", "SHA384", "SHA512")
#: ``--format`` values, the first the default.
FORMATS: tuple[Format, ...] = ("json", "text", "bin")

_TEST_STRING = b"AWS Roles Anywhere Credential Helper Signing Test"
_TEST_VERSION = b"1"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


def _public_key_bytes(key: SigningKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(public, rsa.RSAPublicKey):
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise UnsupportedKeyError(f"sign-string cannot sign with a {type(public).__name__}")


def fixed_string_to_sign(key: SigningKey) -> bytes:
    """The test string ``sign-string`` signs for ``key`` (see the module's docstring)."""
    if key.algorithm == ALGORITHM_MLDSA:
        return _TEST_STRING + _TEST_VERSION
    suffix = hashlib.sha256(b"IAM RA" + _public_key_bytes(key)).digest()
    return _TEST_STRING + _TEST_VERSION + suffix


def sign_fixed_string(key: SigningKey, digest: Digest = "SHA256") -> bytes:
    """The signature of :func:`fixed_string_to_sign` with ``digest``: PKCS#1 v1.5 for RSA,
    DER-encoded ECDSA for EC, as the Go helper makes it; pure ML-DSA (no digest) for ML-DSA."""
    if digest not in _HASHES:
        raise ValueError(f"digest must be one of {', '.join(DIGESTS)}, not {digest!r}")
    data = fixed_string_to_sign(key)
    if digest == "SHA256" or key.algorithm == ALGORITHM_MLDSA:
        return key.sign(data)
    if not isinstance(key, SoftwareSigningKey):
        raise UnsupportedKeyError(f"this key signs with SHA256 only, not {digest}")
    algorithm = _HASHES[digest]()
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, padding.PKCS1v15(), algorithm)
    return private.sign(data, ec.ECDSA(algorithm))


def format_signature(signature: bytes, fmt: Format = "json") -> bytes:
    """``sign-string``'s output, with no newline: a JSON string of the hex signature, the bare
    hex, or the raw bytes."""
    if fmt == "bin":
        return signature
    if fmt == "text":
        return signature.hex().encode()
    if fmt == "json":
        return go_json(signature.hex()).encode()
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def certificate_data_json(der: bytes, fields: CertificateFields, *, source: str) -> str:
    """``read-certificate-data``'s output for one certificate, with no newline::

    {"keyType":"EC","certificateData":"<base64 DER>","serialNumber":"<decimal>",
     "supportedAlgorithms":["ECSHA256","ECSHA384","ECSHA512"]}

    An ML-DSA key gives ``"keyType":"ML-DSA-65"`` (its parameter set), and that name again as
    its one supported algorithm.
    """
    parameter_set = parse_mldsa_public_key(fields.spki, source=source)
    if parameter_set is not None:
        return _certificate_json(der, fields, parameter_set, [parameter_set])
    key = parse_public_key(fields.spki, source=source)
    if isinstance(key, RSAPublicKeyFields):
        key_type = "RSA"
    else:
        assert isinstance(key, ECPublicKeyFields)
        key_type = "EC"
    prefix = "RSASHA" if key_type == "RSA" else "ECSHA"
    return _certificate_json(
        der, fields, key_type, [prefix + bits for bits in ("256", "384", "512")]
    )


def _certificate_json(
    der: bytes, fields: CertificateFields, key_type: str, algorithms: list[str]
) -> str:
    return go_json(
        {
            "keyType": key_type,
            "certificateData": base64.b64encode(der).decode(),
            "serialNumber": str(fields.serial_number),
            "supportedAlgorithms": algorithms,
        }
    )
