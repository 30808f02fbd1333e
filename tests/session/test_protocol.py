"""CreateSession request building and response parsing (sans-I/O)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere import errors
from rolesanywhere.session.protocol import (
    HttpRequest,
    parse_create_session_response,
    service_error,
    sign_x509,
)
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.x509.keys import SoftwareSigningKey
from tests.conformance import X509, require, x509_cases


@pytest.mark.parametrize("case", x509_cases())
def test_known_answer_vectors(case: str) -> None:
    folder = require(X509) / case
    spec = json.loads((folder / "case.json").read_text())
    cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), None)
    signing_key = SoftwareSigningKey.from_private_key(key)
    assert signing_key.algorithm == spec["algorithm"]
    import base64

    headers = [(k, v) for k, v in spec.get("headers", {}).items()]
    headers += [
        ("Host", spec["host"]),
        ("X-Amz-Date", spec["x_amz_date"]),
        ("X-Amz-X509", base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()),
    ]
    query = sigv4.canonical_query_from_pairs(spec["query"].items())
    request = HttpRequest(
        spec["method"],
        f"https://{spec['host']}{spec['path']}?{query}",
        tuple(headers),
        spec["body"].encode(),
    )
    signed = sign_x509(
        request,
        key=signing_key,
        serial=cert.serial_number,
        region=spec["region"],
        signed_headers=spec["signed_headers"].split(";"),
    )
    assert signed.canonical_request == (folder / "canonical-request.txt").read_text()
    assert signed.string_to_sign == (folder / "string-to-sign.txt").read_text()
    assert signed.header("Authorization") == spec["expected_authorization"]


def test_x509_cases_present() -> None:
    require(X509)
    assert len(x509_cases()) == 2


GOOD_BODY = json.dumps(
    {
        "credentialSet": [
            {
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLE",
                    "secretAccessKey": "SECRETSECRET",
                    "sessionToken": "TOKENTOKEN",
                    "expiration": "2026-11-27T05:00:00Z",
                }
            }
        ],
        "subjectArn": "arn:aws:rolesanywhere:us-east-1:123456789012:subject/x",
    }
).encode()


def test_parse_success() -> None:
    creds = parse_create_session_response(201, {}, GOOD_BODY)
    assert creds.access_key_id == "ASIAEXAMPLE"
    assert creds.expiration == datetime(2026, 11, 27, 5, tzinfo=UTC)
    assert "SECRETSECRET" not in repr(creds) and "TOKENTOKEN" not in str(creds)
    assert creds.to_process_json() == (
        '{"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"SECRETSECRET",'
        '"SessionToken":"TOKENTOKEN","Expiration":"2026-11-27T05:00:00Z"}'
    )


@pytest.mark.parametrize(
    ("status", "headers", "body", "cls", "etype"),
    [
        (
            403,
            {"X-Amzn-ErrorType": "AccessDeniedException:http://x"},
            b'{"message":"Invalid signature"}',
            errors.AccessDeniedError,
            "AccessDeniedException",
        ),
        (
            400,
            {},
            b'{"__type":"com.amazon#ValidationException","message":"bad"}',
            errors.ServiceValidationError,
            "ValidationException",
        ),
        (404, {}, b'{"message":"nope"}', errors.ResourceNotFoundError, None),
        (
            429,
            {"x-amzn-errortype": "ThrottlingException"},
            b"",
            errors.ThrottlingError,
            "ThrottlingException",
        ),
        (500, {}, b"<html>oops\nbad</html>", errors.ServiceError, None),
    ],
)
def test_parse_errors(
    status: int, headers: dict[str, str], body: bytes, cls: type[Exception], etype: str | None
) -> None:
    with pytest.raises(cls) as info:
        parse_create_session_response(status, headers, body)
    assert type(info.value) is cls
    assert info.value.error_type == etype
    assert "\n" not in str(info.value)


def test_request_id_reported() -> None:
    err = service_error(403, [("x-amzn-RequestId", "abc-123")], b'{"message":"Invalid signature"}')
    assert err.request_id == "abc-123" and "abc-123" in str(err)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"credentialSet":[]}',
        b'{"credentialSet":[{"credentials":{}}]}',
        b"[1]",
        b'{"credentialSet":[{"credentials":{"accessKeyId":"A","secretAccessKey":"SECRETX",'
        b'"sessionToken":"T","expiration":"not a date"}}]}',
    ],
)
def test_unusable_success_body(body: bytes) -> None:
    with pytest.raises(errors.CredentialsError) as info:
        parse_create_session_response(201, {}, body)
    assert "SECRETX" not in str(info.value)


@given(st.integers(100, 599), st.binary(max_size=200))
def test_parse_any_answer_raises_only_library_errors(status: int, body: bytes) -> None:
    with contextlib.suppress(errors.RolesAnywhereError):
        parse_create_session_response(status, {}, body)
