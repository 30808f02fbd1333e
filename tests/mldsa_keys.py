"""ML-DSA private keys in every PKCS#8 form OpenSSL 3.5 writes, for tests.

cryptography writes only the seed form; the "seed and expanded key" and "expanded key only"
forms (RFC 9881) are built here from fixed seeds and their expanded keys, stored in
``x509/data/mldsa_keys.json``. Encrypted forms are PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
what ``openssl pkcs8 -topk8`` writes by default.
"""

from __future__ import annotations

import base64
import json
import os
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import mldsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

PARAMETER_SETS = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
#: The PKCS#8 forms: seed only, seed and expanded key, expanded key only.
FORMS = ("seed", "both", "expanded")
PASSWORD = b"correct horse"

_OIDS = {
    "ML-DSA-44": bytes.fromhex("0609608648016503040311"),
    "ML-DSA-65": bytes.fromhex("0609608648016503040312"),
    "ML-DSA-87": bytes.fromhex("0609608648016503040313"),
}
_CLASSES = {
    "ML-DSA-44": mldsa.MLDSA44PrivateKey,
    "ML-DSA-65": mldsa.MLDSA65PrivateKey,
    "ML-DSA-87": mldsa.MLDSA87PrivateKey,
}
_PBES2 = bytes.fromhex("06092a864886f70d01050d")
_PBKDF2 = bytes.fromhex("06092a864886f70d01050c")
_HMAC_SHA256 = bytes.fromhex("06082a864886f70d0209")
_AES256_CBC = bytes.fromhex("060960864801650304012a")


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


@cache
def _vectors() -> dict[str, dict[str, str]]:
    data = json.loads((Path(__file__).parent / "x509" / "data" / "mldsa_keys.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def seed(parameter_set: str) -> bytes:
    return bytes.fromhex(_vectors()[parameter_set]["seed"])


def expanded(parameter_set: str) -> bytes:
    return bytes.fromhex(_vectors()[parameter_set]["expanded"])


def public_key_sha256(parameter_set: str) -> str:
    return _vectors()[parameter_set]["public_key_sha256"]


def private_key(
    parameter_set: str,
) -> mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey:
    """The key of the stored seed, as cryptography builds it."""
    return _CLASSES[parameter_set].from_seed_bytes(seed(parameter_set))


def pkcs8(
    parameter_set: str,
    form: str,
    *,
    seed_bytes: bytes | None = None,
    expanded_bytes: bytes | None = None,
) -> bytes:
    """An unencrypted ``PrivateKeyInfo`` (DER) in ``form``."""
    s = seed(parameter_set) if seed_bytes is None else seed_bytes
    e = expanded(parameter_set) if expanded_bytes is None else expanded_bytes
    inner = {
        "seed": tlv(0x80, s),
        "expanded": tlv(0x04, e),
        "both": tlv(0x30, tlv(0x04, s) + tlv(0x04, e)),
    }[form]
    return tlv(0x30, b"\x02\x01\x00" + tlv(0x30, _OIDS[parameter_set]) + tlv(0x04, inner))


def encrypt(der: bytes, password: bytes = PASSWORD, *, iterations: int = 2048) -> bytes:
    """``der`` as an ``EncryptedPrivateKeyInfo``: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC."""
    salt, iv = os.urandom(16), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(der) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    kdf_params = tlv(
        0x30,
        tlv(0x04, salt)
        + tlv(0x02, iterations.to_bytes(2, "big"))
        + tlv(0x30, _HMAC_SHA256 + b"\x05\x00"),
    )
    params = tlv(0x30, tlv(0x30, _PBKDF2 + kdf_params) + tlv(0x30, _AES256_CBC + tlv(0x04, iv)))
    return tlv(0x30, tlv(0x30, _PBES2 + params) + tlv(0x04, ciphertext))


def pem(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label.encode(),
        b"\n".join(lines),
        label.encode(),
    )


def key_file(parameter_set: str, form: str, *, encrypted: bool, as_pem: bool) -> bytes:
    """A key file: ``form``, encrypted with :data:`PASSWORD` or not, PEM or DER."""
    der = pkcs8(parameter_set, form)
    if encrypted:
        der = encrypt(der)
    if not as_pem:
        return der
    return pem(der, "ENCRYPTED PRIVATE KEY" if encrypted else "PRIVATE KEY")


#: (parameter set, form, encrypted, PEM) for every key file a test may want.
ALL_FILES = [
    (p, f, enc, as_pem)
    for p in PARAMETER_SETS
    for f in FORMS
    for enc in (False, True)
    for as_pem in (False, True)
]


def file_id(case: tuple[str, str, bool, bool]) -> str:
    p, f, enc, as_pem = case
    return f"{p}-{f}-{'enc' if enc else 'plain'}-{'pem' if as_pem else 'der'}"
