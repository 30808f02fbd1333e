"""SigV4 canonicalisation: pure functions over strings, shared by every signer in the package.

Both the X.509 CreateSession signature (``AWS4-X509-*``) and the HMAC signature used with the
temporary credentials (``AWS4-HMAC-SHA256``) are built from the same canonical request and string
to sign; only the credential and the final signing step differ.

Rules (AWS SigV4 specification, checked against the aws-c-auth test suite):

- path: dot segments removed and duplicate slashes collapsed (``normalize``), then each segment
  URI-encoded on top of its wire form (``double_encode``); both are off for S3;
- query: keys and values percent-decoded, re-encoded leaving only ``A-Za-z0-9-_.~`` bare, sorted by
  key then value;
- headers: names lower-cased and sorted, values trimmed with inner whitespace runs collapsed to one
  space, repeated names joined with ``,``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "amz_date",
    "authorization_value",
    "canonical_header_value",
    "canonical_headers",
    "canonical_path",
    "canonical_query",
    "canonical_query_from_pairs",
    "canonical_query_pairs",
    "canonical_request",
    "credential_scope",
    "encode_path_once",
    "normalize_path",
    "sha256_hex",
    "string_to_sign",
    "uri_encode",
]

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_RESERVED_RUN = re.compile(r"[^A-Za-z0-9\-_.~]+")
_RESERVED_RUN_KEEP_SLASH = re.compile(r"[^A-Za-z0-9\-_.~/]+")
_UNRESERVED_ONLY = re.compile(r"[A-Za-z0-9\-_.~]*")
_UNRESERVED_ONLY_OR_SLASH = re.compile(r"[A-Za-z0-9\-_.~/]*")
_HEX = [f"%{b:02X}" for b in range(256)]
_AMZ_DATE_CACHE: list[tuple[int, str]] = [(-1, "")]


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def amz_date(when: datetime | None = None) -> str:
    """``X-Amz-Date`` for ``when`` (now by default), always in UTC: ``20240102T030405Z``."""
    if when is None:
        second = int(time.time())
        cached_second, text = _AMZ_DATE_CACHE[0]
        if cached_second != second:
            text = time.strftime(AMZ_DATE_FORMAT, time.gmtime(second))
            _AMZ_DATE_CACHE[0] = (second, text)
        return text
    if when.tzinfo is None:
        raise ValueError("amz_date needs a timezone-aware datetime")
    return when.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def _percent_encode(match: re.Match[str]) -> str:
    return "".join([_HEX[b] for b in match.group().encode("utf-8", "surrogatepass")])


def uri_encode(value: str | bytes, *, keep_slash: bool = False) -> str:
    """Percent-encode everything but ``A-Za-z0-9-_.~`` (and ``/`` when ``keep_slash``), upper hex.

    ``bytes`` are taken as they are (they may be any encoding); ``str`` is encoded as UTF-8.
    """
    if isinstance(value, bytes | bytearray):
        return quote(bytes(value), safe="/" if keep_slash else "")
    pattern = _RESERVED_RUN_KEEP_SLASH if keep_slash else _RESERVED_RUN
    return pattern.sub(_percent_encode, value)


def normalize_path(path: str) -> str:
    """Remove ``.`` and ``..`` segments (RFC 3986 §5.2.4) and collapse duplicate slashes.

    A trailing slash is kept; the result always starts with ``/``.
    """
    segments = path.split("/")
    out: list[str] = []
    for segment in segments:
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    normalized = "/" + "/".join(out)
    last = segments[-1]
    if out and (last in ("", ".", "..")):
        normalized += "/"
    return normalized


def canonical_path(path: str, *, normalize: bool = True, double_encode: bool = True) -> str:
    """The canonical URI of a wire-form (already escaped) path.

    With ``double_encode`` every segment is encoded again, so ``%20`` becomes ``%2520`` and a raw
    space becomes ``%20`` (what every service but S3 expects). With both options off the wire
    form is used as it is, with only characters that cannot travel raw encoded (see
    :func:`encode_path_once` for the strict single encoding S3 expects).
    """
    if not path:
        return "/"
    if normalize and ("//" in path or "/." in path):
        # Without "//" or "/." an absolute path has no empty or dot segment to remove.
        path = normalize_path(path)
    if double_encode:
        return uri_encode(path, keep_slash=True)
    return quote(path, safe="/%-_.~!$&'()*+,;=:@")


def encode_path_once(path: str) -> str:
    """Single encoding (S3): decode the wire form, then encode all but ``A-Za-z0-9-_.~/``.

    S3 signs the object key, so ``/a b`` and ``/a%20b`` on the wire both give ``/a%20b``, and
    an escaped slash (``%2F``) is the same key as a bare one.
    """
    if not path:
        return "/"
    if _UNRESERVED_ONLY_OR_SLASH.fullmatch(path):
        return path
    return uri_encode(unquote_to_bytes(path), keep_slash=True)


def canonical_query_from_pairs(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> str:
    """Encode decoded ``(key, value)`` pairs and sort them by key, then value."""
    encoded = sorted([(uri_encode(k), uri_encode(v)) for k, v in pairs])
    return "&".join([f"{k}={v}" for k, v in encoded])


def canonical_query_pairs(query: str) -> list[tuple[str, str]]:
    """The encoded ``(key, value)`` pairs of a raw (wire-form) query, in wire order (unsorted).

    Each key and value is percent-decoded, then re-encoded leaving only ``A-Za-z0-9-_.~`` bare
    (``+`` stays a literal plus, so it becomes ``%2B``). A key without ``=`` gets an empty value;
    empty parts (``a=1&&b=2``) are skipped.
    """
    pairs: list[tuple[str, str]] = []
    bare = _UNRESERVED_ONLY.fullmatch
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if not bare(key):
            key = uri_encode(unquote_to_bytes(key))
        if value and not bare(value):
            value = uri_encode(unquote_to_bytes(value))
        pairs.append((key, value))
    return pairs


def canonical_query(query: str) -> str:
    """The canonical query string of a raw (wire-form) query, without the leading ``?``.

    Each key and value is percent-decoded first (``+`` stays a literal plus), so a pre-encoded
    and a raw query canonicalise alike. A key without ``=`` gets an empty value.
    """
    if not query:
        return ""
    return "&".join([f"{k}={v}" for k, v in sorted(canonical_query_pairs(query))])


def canonical_header_value(value: str) -> str:
    """Trim a header value and collapse each inner whitespace run to one space.

    Whitespace is what :meth:`str.split` splits on (a folded line's ``\\n`` and indent, tabs,
    other Unicode spaces), the same rule botocore applies.
    """
    value = value.strip()
    if "  " in value or not value.isprintable():
        # Every whitespace character but the ASCII space is non-printable.
        return " ".join(value.split())
    return value


_header_value = canonical_header_value


def canonical_headers(
    headers: Iterable[tuple[str, str]], signed: Iterable[str] | None = None
) -> tuple[str, str]:
    """``(canonical headers block, signed headers list)`` for the headers to sign.

    ``headers`` may repeat a name; values of a repeated name join with ``,`` in order. When
    ``signed`` is given only those names (any case) are included; otherwise all of them.
    Each line of the block ends with ``\\n``.
    """
    wanted = None if signed is None else {name.lower() for name in signed}
    merged: dict[str, str] = {}
    for name, value in headers:
        lname = name.lower()
        if wanted is not None and lname not in wanted:
            continue
        previous = merged.get(lname)
        value = canonical_header_value(value)
        merged[lname] = value if previous is None else f"{previous},{value}"
    names = sorted(merged)
    block = "".join([f"{name}:{merged[name]}\n" for name in names])
    return block, ";".join(names)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers_block: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    """Join already-canonical parts into the canonical request."""
    return f"{method.upper()}\n{path}\n{query}\n{headers_block}\n{signed_headers}\n{payload_hash}"


def credential_scope(date: str, region: str, service: str) -> str:
    """``yyyymmdd/region/service/aws4_request``; ``date`` may be a full ``X-Amz-Date``."""
    return f"{date[:8]}/{region}/{service}/aws4_request"


def string_to_sign(algorithm: str, x_amz_date: str, scope: str, canonical: str) -> str:
    """The string to sign: algorithm, date, scope and the hex SHA-256 of the canonical request."""
    return f"{algorithm}\n{x_amz_date}\n{scope}\n{sha256_hex(canonical.encode())}"


def authorization_value(
    algorithm: str, credential: str, scope: str, signed_headers: str, signature_hex: str
) -> str:
    """The ``Authorization`` value, ``", "`` between its parts (OpenSearch needs the space)."""
    return (
        f"{algorithm} Credential={credential}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature_hex}"
    )
