"""The request checks of the Roles Anywhere emulator that need no emulator state.

:class:`~rolesanywhere.testing.emulator.RolesAnywhereEmulator` runs them in the order its module
documents; each refuses by raising :class:`Reject` (:func:`denied` 403, :func:`invalid` 400,
:func:`not_found` 404), which the emulator turns into the service's error answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from rolesanywhere.errors import UnsupportedKeyError
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing._server import authorization_parameters, clock_skew_error
from rolesanywhere.testing.emulator_records import RecordedRequest
from rolesanywhere.x509.keys import (
    ALGORITHM_ECDSA,
    ALGORITHM_MLDSA,
    ALGORITHM_RSA,
    algorithm_for_public_key,
    verify_signature,
)

# Reject is an internal signal, caught by the emulator: not exported.
__all__ = [
    "MAX_CHAIN_DEPTH",
    "MAX_CLOCK_SKEW",
    "MAX_DURATION",
    "MIN_DURATION",
    "SERVICE",
    "Authorization",
    "Verified",
    "arn_region",
    "build_path",
    "denied",
    "invalid",
    "not_found",
    "parse_authorization",
    "parse_params",
    "verify_request_signature",
]

SERVICE = "rolesanywhere"
MAX_CLOCK_SKEW = timedelta(minutes=5)
MIN_DURATION = 900
MAX_DURATION = 43200
MAX_CHAIN_DEPTH = 5
_ALGORITHMS = frozenset({ALGORITHM_RSA, ALGORITHM_ECDSA, ALGORITHM_MLDSA})
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


class Reject(Exception):
    """An error answer raised from inside the checks."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def denied(message: str) -> Reject:
    return Reject(403, "AccessDeniedException", message)


def invalid(message: str) -> Reject:
    return Reject(400, "ValidationException", message)


def not_found(message: str) -> Reject:
    return Reject(404, "ResourceNotFoundException", message)


@dataclass(frozen=True, slots=True)
class Authorization:
    algorithm: str
    serial: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True, slots=True)
class Verified:
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def parse_authorization(request: RecordedRequest, endpoint_region: str) -> Authorization:
    """The ``Authorization`` header, checked against ``X-Amz-Date``, ``endpoint_region`` and the
    signed headers (403)."""
    header = request.header("authorization")
    if not header:
        raise denied("Missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm not in _ALGORITHMS:
        raise denied(f"Unsupported signing algorithm: {algorithm[:64]!r}")
    parts = authorization_parameters(rest, denied)
    scope = parts["Credential"].split("/")
    if len(scope) != 5:
        raise denied("Credential should be <serial>/<date>/<region>/rolesanywhere/aws4_request")
    serial, date, region, service, terminator = scope
    auth = Authorization(
        algorithm=algorithm,
        serial=serial,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(parts["SignedHeaders"].split(";")),
        signature=parts["Signature"],
    )
    x_amz_date = request.header("x-amz-date")
    if not x_amz_date:
        raise denied("Missing X-Amz-Date header")
    if not _AMZ_DATE.fullmatch(x_amz_date.strip()):
        raise denied(f"X-Amz-Date must be in the form YYYYMMDDTHHMMSSZ, not {x_amz_date!r}")
    if auth.date != x_amz_date.strip()[:8]:
        raise denied(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
            f"date from HTTP: '{auth.date}' != '{x_amz_date[:8]}', from '{x_amz_date}'."
        )
    if auth.region != endpoint_region:
        raise denied(f"Credential should be scoped to a valid region, not '{auth.region}'.")
    if auth.service != SERVICE:
        raise denied(
            f"Credential should be scoped to correct service: '{SERVICE}', not '{auth.service}'."
        )
    if auth.terminator != "aws4_request":
        raise denied(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{auth.terminator}'."
        )
    signed = set(auth.signed_headers)
    present = {name.lower() for name, _ in request.headers}
    required = ["host", "x-amz-date", "x-amz-x509"]
    required += [h for h in ("content-type", "x-amz-x509-chain") if h in present]
    for name in required:
        if name not in signed:
            raise denied(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
    for name in auth.signed_headers:
        if name not in present:
            raise denied(f"Signed header '{name}' is not in the request.")
    return auth


def verify_request_signature(
    request: RecordedRequest, auth: Authorization, now: datetime, max_skew: timedelta
) -> Verified:
    """The certificates decoded (400), the serial, key type and signature checked, and
    ``X-Amz-Date`` within ``max_skew`` of ``now`` (403)."""
    leaf = _decode_certificate(request.header("x-amz-x509") or "", "X-Amz-X509")
    chain_header = request.header("x-amz-x509-chain")
    chain: tuple[x509.Certificate, ...] = ()
    if chain_header is not None:
        chain = tuple(
            _decode_certificate(item, "X-Amz-X509-Chain") for item in chain_header.split(",")
        )
    if not auth.serial.isdigit() or int(auth.serial) != leaf.serial_number:
        raise denied("Credential serial number does not match the signing certificate")
    try:
        expected = algorithm_for_public_key(leaf.public_key())
    except (UnsupportedKeyError, UnsupportedAlgorithm):
        raise denied("Unsupported key type in the signing certificate") from None
    if auth.algorithm != expected:
        raise denied(
            f"Signing algorithm {auth.algorithm} does not match the certificate's key "
            f"(expected {expected})"
        )
    try:
        signature = bytes.fromhex(auth.signature)
    except ValueError:
        raise denied("Invalid signature") from None
    x_amz_date = (request.header("x-amz-date") or "").strip()
    block, signed = sigv4.canonical_headers(request.headers, auth.signed_headers)
    canonical = sigv4.canonical_request(
        request.method,
        sigv4.canonical_path(request.path),
        sigv4.canonical_query(request.query),
        block,
        signed,
        sigv4.sha256_hex(request.body),
    )
    scope = sigv4.credential_scope(auth.date, auth.region, auth.service)
    to_sign = sigv4.string_to_sign(auth.algorithm, x_amz_date, scope, canonical)
    if not verify_signature(leaf.public_key(), auth.algorithm, to_sign.encode(), signature):
        raise denied("Invalid signature")
    skew = clock_skew_error(x_amz_date, now, max_skew)
    if skew is not None:
        raise denied(skew)
    return Verified(leaf, chain)


def _decode_certificate(text: str, header: str) -> x509.Certificate:
    if not text.strip():
        raise invalid(f"Missing {header} header")
    try:
        der = base64.b64decode(text.strip(), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise invalid(f"Unable to parse the certificate in {header}") from None


def arn_region(arn: str, key: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != SERVICE:
        raise invalid(f"Value '{arn}' at '{key}' failed to satisfy constraint: not an ARN")
    return parts[3]


def parse_params(request: RecordedRequest) -> dict[str, Any]:
    """The CreateSession parameters: ARNs from the query (else the body), the body's options."""
    try:
        payload = json.loads(request.body) if request.body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise invalid("Request body is not valid JSON") from None
    except RecursionError:  # deeper than the parser goes: the client's fault, not a 500
        raise invalid("Request body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise invalid("Request body must be a JSON object")
    query: dict[str, str] = {}
    for part in request.query.split("&"):
        raw_key, sep, raw_value = part.partition("=")
        if sep:
            query.setdefault(unquote(raw_key), unquote(raw_value))
    params: dict[str, Any] = {}
    errors: list[str] = []
    for key in ("trustAnchorArn", "profileArn", "roleArn"):
        value = query.get(key, payload.get(key))
        if not isinstance(value, str) or not value:
            errors.append(
                f"Value null at '{key}' failed to satisfy constraint: Member must not be null"
            )
        params[key] = value
    duration = payload.get("durationSeconds", 3600)
    if isinstance(duration, bool) or not isinstance(duration, int):
        errors.append(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            "Member must be an integer"
        )
    elif duration < MIN_DURATION:
        errors.append(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {MIN_DURATION}"
        )
    elif duration > MAX_DURATION:
        errors.append(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MAX_DURATION}"
        )
    params["durationSeconds"] = duration
    name = payload.get("roleSessionName")
    if name is not None and (not isinstance(name, str) or not _SESSION_NAME.fullmatch(name)):
        errors.append(
            f"Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: [\\w+=,.@-]{2,64}"
        )
    params["roleSessionName"] = name
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise invalid(f"{count} validation {noun} detected: " + "; ".join(errors))
    return params


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def build_path(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> list[x509.Certificate]:
    """Leaf → intermediates from ``chain`` → one of ``anchors``; refused when none is reached."""

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = path[-1]
        for anchor in anchors:
            if _issued_by(current, anchor):
                return [*path, anchor]
        if len(path) > MAX_CHAIN_DEPTH:
            return None
        for candidate in chain:
            if candidate in path or not _is_ca(candidate) or not _issued_by(current, candidate):
                continue
            found = extend([*path, candidate])
            if found is not None:
                return found
        return None

    found = extend([leaf])
    if found is None:
        raise denied("Untrusted Signing Certificate")
    return found
