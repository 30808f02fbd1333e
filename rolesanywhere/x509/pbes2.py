"""Decrypting a PKCS#8 ``EncryptedPrivateKeyInfo`` (PBES2, RFC 8018) to its ``PrivateKeyInfo``.

Only for keys cryptography's loader decrypts but cannot then read (ML-DSA keys in the forms
holding an expanded key): every other key goes through cryptography. PBES2 with PBKDF2
(HMAC-SHA-1/224/256/384/512) or scrypt, and AES-128/192/256-CBC: what ``openssl pkcs8 -topk8``
and cryptography write.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from rolesanywhere.errors import SourceError
from rolesanywhere.x509.der import (
    _INTEGER,
    _OCTET_STRING,
    _OID,
    _SEQUENCE,
    _exactly,
    _expect,
    _unsigned,
)

__all__ = ["decrypt_pkcs8"]

_PBES2 = bytes.fromhex("2a864886f70d01050d")  # 1.2.840.113549.1.5.13
_PBKDF2 = bytes.fromhex("2a864886f70d01050c")  # 1.2.840.113549.1.5.12
_SCRYPT = bytes.fromhex("2b06010401da47040b")  # 1.3.6.1.4.1.11591.4.11
_PRFS: dict[bytes, type[hashes.HashAlgorithm]] = {
    bytes.fromhex("2a864886f70d0207"): hashes.SHA1,
    bytes.fromhex("2a864886f70d0208"): hashes.SHA224,
    bytes.fromhex("2a864886f70d0209"): hashes.SHA256,
    bytes.fromhex("2a864886f70d020a"): hashes.SHA384,
    bytes.fromhex("2a864886f70d020b"): hashes.SHA512,
}
_HMAC_SHA1 = bytes.fromhex("2a864886f70d0207")
#: AES-CBC OID -> key bytes.
_AES_CBC: dict[bytes, int] = {
    bytes.fromhex("608648016503040102"): 16,
    bytes.fromhex("608648016503040116"): 24,
    bytes.fromhex("60864801650304012a"): 32,
}
_MAX_SCRYPT_MEMORY = 1 << 30


def _algorithm(data: bytes, offset: int, end: int, source: str) -> tuple[bytes, int, int, int]:
    """(OID, parameters start, parameters end, end) of an AlgorithmIdentifier."""
    start, stop = _expect(data, offset, end, _SEQUENCE, "an AlgorithmIdentifier", source)
    oid_start, oid_end = _expect(data, start, stop, _OID, "an OBJECT IDENTIFIER", source)
    return data[oid_start:oid_end], oid_end, stop, stop


def _pbkdf2(data: bytes, start: int, end: int, size: int, password: bytes, source: str) -> bytes:
    pos, stop = _exactly(data, start, end, _SEQUENCE, "PBKDF2 parameters", source)
    salt_start, salt_end = _expect(data, pos, stop, _OCTET_STRING, "a salt", source)
    iterations, pos = _unsigned(data, salt_end, stop, source)
    if pos < stop and data[pos] == _INTEGER:
        length, pos = _unsigned(data, pos, stop, source)
        if length != size:
            raise SourceError("PBKDF2 key length does not fit the cipher", source=source)
    prf = _HMAC_SHA1
    if pos < stop:
        prf, _, _, pos = _algorithm(data, pos, stop, source)
    if pos != stop or prf not in _PRFS or not 1 <= iterations <= 10_000_000:
        raise SourceError("unsupported PBKDF2 parameters", source=source)
    return PBKDF2HMAC(_PRFS[prf](), size, data[salt_start:salt_end], iterations).derive(password)


def _scrypt(data: bytes, start: int, end: int, size: int, password: bytes, source: str) -> bytes:
    pos, stop = _exactly(data, start, end, _SEQUENCE, "scrypt parameters", source)
    salt_start, salt_end = _expect(data, pos, stop, _OCTET_STRING, "a salt", source)
    n, pos = _unsigned(data, salt_end, stop, source)
    r, pos = _unsigned(data, pos, stop, source)
    p, pos = _unsigned(data, pos, stop, source)
    if pos < stop:
        length, pos = _unsigned(data, pos, stop, source)
        if length != size:
            raise SourceError("scrypt key length does not fit the cipher", source=source)
    if pos != stop or n < 2 or n & (n - 1) or not 1 <= r * p < 1 << 20:
        raise SourceError("unsupported scrypt parameters", source=source)
    if 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise SourceError("scrypt parameters need too much memory", source=source)
    return Scrypt(data[salt_start:salt_end], size, n, r, p).derive(password)


def decrypt_pkcs8(der: bytes, password: bytes, *, source: str) -> bytes | None:
    """The ``PrivateKeyInfo`` DER inside an ``EncryptedPrivateKeyInfo``; ``None`` when the
    password does not decrypt it. :class:`SourceError` for a structure or scheme not read here."""
    data = bytes(der)
    pos, stop = _exactly(data, 0, len(data), _SEQUENCE, "an EncryptedPrivateKeyInfo", source)
    scheme, params_start, params_end, pos = _algorithm(data, pos, stop, source)
    ct_start, ct_end = _exactly(data, pos, stop, _OCTET_STRING, "encrypted data", source)
    if scheme != _PBES2:
        raise SourceError("not PBES2", source=source)
    inner, inner_end = _exactly(data, params_start, params_end, _SEQUENCE, "PBES2", source)
    kdf, kdf_start, kdf_end, pos = _algorithm(data, inner, inner_end, source)
    cipher, iv_at, _, pos = _algorithm(data, pos, inner_end, source)
    if pos != inner_end or cipher not in _AES_CBC:
        raise SourceError("unsupported PBES2 cipher", source=source)
    iv_start, iv_end = _expect(data, iv_at, pos, _OCTET_STRING, "an IV", source)
    size = _AES_CBC[cipher]
    if kdf == _PBKDF2:
        key = _pbkdf2(data, kdf_start, kdf_end, size, password, source)
    elif kdf == _SCRYPT:
        key = _scrypt(data, kdf_start, kdf_end, size, password, source)
    else:
        raise SourceError("unsupported PBES2 key derivation", source=source)
    ciphertext = data[ct_start:ct_end]
    if iv_end - iv_start != 16 or not ciphertext or len(ciphertext) % 16:
        raise SourceError("malformed PBES2 data", source=source)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[iv_start:iv_end])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None
