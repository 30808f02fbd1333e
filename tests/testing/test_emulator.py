"""The local Roles Anywhere emulator, driven over real sockets by our own request builder."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rolesanywhere.credentials import format_expiration
from rolesanywhere.errors import NetworkError
from rolesanywhere.session.endpoints import resolve_endpoint
from rolesanywhere.session.protocol import (
    HttpRequest,
    SessionParams,
    SignedRequest,
    build_create_session_request,
    sign_x509,
)
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import KEY_TYPES, MLDSA_KEY_TYPES, PKI, IssuedCert
from rolesanywhere.x509 import keyfiles
from rolesanywhere.x509.identity import Identity
from rolesanywhere.x509.keys import ALGORITHM_ECDSA, ALGORITHM_RSA, SigningKey, SoftwareSigningKey

DENIED = "AccessDeniedException"
INVALID = "ValidationException"
NOT_FOUND = "ResourceNotFoundException"


# --- helpers --------------------------------------------------------------------------------------


def identity(cert: IssuedCert, *, chain: bool = True, key: SigningKey | None = None) -> Identity:
    signing_key = key or keyfiles.signing_key(cert.private_key, "leaf", "leaf")
    return Identity(cert.certificate, signing_key, cert.chain if chain else ())


def params(emu: RolesAnywhereEmulator, **overrides: object) -> SessionParams:
    values: dict[str, object] = {
        "trust_anchor_arn": emu.trust_anchor_arn,
        "profile_arn": emu.profile_arn,
        "role_arn": emu.role_arn,
    }
    values.update(overrides)
    return SessionParams(**values)  # type: ignore[arg-type]


def request_for(
    emu: RolesAnywhereEmulator,
    ident: Identity,
    *,
    now: datetime | None = None,
    **overrides: object,
) -> SignedRequest:
    """What our client sends (build_create_session_request), pointed at the emulator."""
    endpoint = resolve_endpoint(emu.region, endpoint=emu.url)
    return build_create_session_request(ident, params(emu, **overrides), endpoint, now=now)


def arn_query(trust_anchor_arn: str, profile_arn: str, role_arn: str) -> str:
    return sigv4.canonical_query_from_pairs(
        [("profileArn", profile_arn), ("roleArn", role_arn), ("trustAnchorArn", trust_anchor_arn)]
    )


def raw_request(
    emu: RolesAnywhereEmulator,
    ident: Identity,
    *,
    query: str | None = None,
    body: bytes = b'{"durationSeconds":3600}',
    now: datetime | None = None,
    region: str | None = None,
    serial: int | None = None,
    signed_headers: Sequence[str] | None = None,
    x509_value: str | None = None,
) -> SignedRequest:
    """A CreateSession request built by hand (for what SessionParams refuses), sign_x509-signed."""
    if query is None:
        query = arn_query(emu.trust_anchor_arn, emu.profile_arn, emu.role_arn)
    headers = [
        ("Content-Type", "application/json"),
        ("Host", emu.endpoint_host),
        ("X-Amz-Date", sigv4.amz_date(now)),
        ("X-Amz-X509", ident.certificate_b64 if x509_value is None else x509_value),
    ]
    if ident.chain:
        headers.append(("X-Amz-X509-Chain", ",".join(ident.chain_b64)))
    url = f"{emu.url}/sessions" + (f"?{query}" if query else "")
    request = HttpRequest("POST", url, tuple(headers), body)
    return sign_x509(
        request,
        key=ident.signing_key,
        serial=ident.serial_number if serial is None else serial,
        region=region or emu.region,
        signed_headers=signed_headers,
    )


def send(client: httpx.Client, request: HttpRequest) -> httpx.Response:
    return client.request(
        request.method, request.url, headers=list(request.headers), content=request.body
    )


def assert_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["X-Amzn-ErrorType"] == error_type
    assert response.json() == {"message": message}
    assert response.headers["x-amzn-RequestId"]


def credentials_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 201, response.text
    creds: dict[str, str] = response.json()["credentialSet"][0]["credentials"]
    return creds


def with_authorization(request: SignedRequest, authorization: str) -> HttpRequest:
    headers = tuple(
        (n, authorization if n.lower() == "authorization" else v) for n, v in request.headers
    )
    return HttpRequest(request.method, request.url, headers, request.body)


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["intermediate", "root"])
@pytest.mark.parametrize("key_type", KEY_TYPES + MLDSA_KEY_TYPES)
def test_every_key_type_gets_credentials(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, key_type: str, issuer: str
) -> None:
    leaf = pki.leaf(key_type, issuer=issuer)  # type: ignore[arg-type]
    assert bool(leaf.chain) is (issuer == "intermediate")
    response = send(http, request_for(emu, identity(leaf)))
    creds = credentials_of(response)
    assert response.headers["x-amzn-RequestId"]
    assert creds["accessKeyId"].startswith("ASIA")
    assert len(creds["accessKeyId"]) == 20
    issued = emu.lookup(creds["accessKeyId"])
    assert issued is not None
    assert issued.secret_access_key == creds["secretAccessKey"]
    assert issued.session_token == creds["sessionToken"]
    assert issued.role_arn == emu.role_arn
    assert issued.certificate_serial == leaf.serial_number
    assert format_expiration(issued.expiration) == creds["expiration"]
    assert (emu.calls, emu.successes) == (1, 1)


def test_response_shape_with_injected_clock(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    fixed = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    emu.clock = lambda: fixed
    leaf = pki.leaf("ec-p384", common_name="worker-7")
    ident = identity(leaf)
    request = request_for(
        emu, ident, now=fixed, duration_seconds=7200, role_session_name="my-session"
    )
    response = send(http, request)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"credentialSet", "subjectArn"}
    (entry,) = body["credentialSet"]
    assert set(entry) == {
        "assumedRoleUser",
        "credentials",
        "packedPolicySize",
        "roleArn",
        "sourceIdentity",
    }
    assert entry["roleArn"] == emu.role_arn
    assert entry["sourceIdentity"] == "CN=worker-7"
    assert entry["assumedRoleUser"]["arn"] == (
        "arn:aws:sts::123456789012:assumed-role/test-role/my-session"
    )
    assert entry["assumedRoleUser"]["assumedRoleId"].endswith(":my-session")
    assert entry["credentials"]["expiration"] == format_expiration(fixed + timedelta(hours=2))
    assert body["subjectArn"].startswith("arn:aws:rolesanywhere:us-east-1:123456789012:subject/")
    # Fresh credentials on every call.
    again = credentials_of(send(http, request_for(emu, ident, now=fixed)))
    assert again["accessKeyId"] != entry["credentials"]["accessKeyId"]
    assert again["secretAccessKey"] != entry["credentials"]["secretAccessKey"]


def test_default_session_name_is_hex_serial(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf()
    creds = credentials_of(send(http, request_for(emu, identity(leaf))))
    issued = emu.lookup(creds["accessKeyId"])
    assert issued is not None
    assert issued.session_name == format(leaf.serial_number, "x")
    assert issued.assumed_role_arn.endswith(f"/test-role/{issued.session_name}")


def test_arns_in_json_body(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    body = json.dumps(
        {
            "durationSeconds": 900,
            "profileArn": emu.profile_arn,
            "roleArn": emu.role_arn,
            "trustAnchorArn": emu.trust_anchor_arn,
        }
    ).encode()
    response = send(http, raw_request(emu, identity(pki.leaf()), query="", body=body))
    credentials_of(response)


def test_endpoint_with_path_prefix(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    endpoint = resolve_endpoint(emu.region, endpoint=emu.url + "/prefix/v1")
    request = build_create_session_request(identity(pki.leaf()), params(emu), endpoint)
    assert "/prefix/v1/sessions?" in request.url
    credentials_of(send(http, request))
    assert emu.requests[-1].path == "/prefix/v1/sessions"


@pytest.mark.parametrize("duration", [900, 43200])
def test_duration_bounds_accepted(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, duration: int
) -> None:
    fixed = datetime.now(UTC).replace(microsecond=0)
    emu.clock = lambda: fixed
    request = request_for(emu, identity(pki.leaf()), now=fixed, duration_seconds=duration)
    creds = credentials_of(send(http, request))
    assert creds["expiration"] == format_expiration(fixed + timedelta(seconds=duration))


@pytest.mark.parametrize("skew", [timedelta(minutes=-4), timedelta(minutes=4)])
def test_small_clock_skew_accepted(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, skew: timedelta
) -> None:
    now = datetime.now(UTC) + skew
    credentials_of(send(http, request_for(emu, identity(pki.leaf()), now=now)))


# --- signature and authorization rejections -------------------------------------------------------


def test_signed_by_another_key(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    leaf = pki.leaf("ec-p256")
    other = pki.leaf("ec-p256")
    key = SoftwareSigningKey.from_private_key(other.private_key)
    response = send(http, request_for(emu, identity(leaf, key=key)))
    assert_error(response, 403, DENIED, "Invalid signature")
    assert (emu.calls, emu.successes) == (1, 0)


def test_signature_digit_altered(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    request = request_for(emu, identity(pki.leaf("rsa-2048")))
    authorization = request.header("Authorization")
    assert authorization is not None
    last = authorization[-1]
    altered = with_authorization(request, authorization[:-1] + ("0" if last != "0" else "1"))
    assert_error(send(http, altered), 403, DENIED, "Invalid signature")
    credentials_of(send(http, request))  # the unaltered request is fine


def test_body_altered_after_signing(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    request = request_for(emu, identity(pki.leaf()))
    altered = HttpRequest(request.method, request.url, request.headers, b'{"durationSeconds":3601}')
    assert_error(send(http, altered), 403, DENIED, "Invalid signature")


def test_wrong_serial(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    leaf = pki.leaf()
    response = send(http, raw_request(emu, identity(leaf), serial=leaf.serial_number + 1))
    assert_error(
        response, 403, DENIED, "Credential serial number does not match the signing certificate"
    )


@pytest.mark.parametrize(
    ("key_type", "claimed", "expected"),
    [("rsa-2048", ALGORITHM_ECDSA, ALGORITHM_RSA), ("ec-p256", ALGORITHM_RSA, ALGORITHM_ECDSA)],
)
def test_algorithm_does_not_match_key(
    emu: RolesAnywhereEmulator,
    http: httpx.Client,
    pki: PKI,
    key_type: str,
    claimed: str,
    expected: str,
) -> None:
    leaf = pki.leaf(key_type)
    assert isinstance(leaf.private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    liar = SoftwareSigningKey(leaf.private_key, claimed)
    response = send(http, request_for(emu, identity(leaf, key=liar)))
    assert_error(
        response,
        403,
        DENIED,
        f"Signing algorithm {claimed} does not match the certificate's key (expected {expected})",
    )


def test_unsupported_leaf_key(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    leaf = pki.leaf("rsa-1024")
    assert isinstance(leaf.private_key, rsa.RSAPrivateKey)
    key = SoftwareSigningKey(leaf.private_key, ALGORITHM_RSA)
    response = send(http, request_for(emu, identity(leaf, key=key)))
    assert_error(response, 403, DENIED, "Unsupported key type in the signing certificate")


@pytest.mark.parametrize(
    ("skew", "message"),
    [
        (
            timedelta(minutes=-6),
            "Signature expired: {sent} is now earlier than {edge} ({now} - 5 min.)",
        ),
        (
            timedelta(minutes=6),
            "Signature not yet current: {sent} is still later than {edge} ({now} + 5 min.)",
        ),
    ],
)
def test_date_skew_over_five_minutes(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, skew: timedelta, message: str
) -> None:
    fixed = datetime.now(UTC).replace(microsecond=0)
    emu.clock = lambda: fixed
    sent = fixed + skew
    edge = fixed + (timedelta(minutes=5) if skew > timedelta(0) else timedelta(minutes=-5))
    response = send(http, request_for(emu, identity(pki.leaf()), now=sent))
    expected = message.format(
        sent=sigv4.amz_date(sent), edge=sigv4.amz_date(edge), now=sigv4.amz_date(fixed)
    )
    assert_error(response, 403, DENIED, expected)


def test_wrong_region_in_scope(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    response = send(http, raw_request(emu, identity(pki.leaf()), region="eu-west-1"))
    assert_error(
        response, 403, DENIED, "Credential should be scoped to a valid region, not 'eu-west-1'."
    )


def test_scope_date_must_match_x_amz_date(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    request = request_for(emu, identity(pki.leaf()))
    authorization = request.header("Authorization")
    x_amz_date = request.header("X-Amz-Date")
    assert authorization is not None
    assert x_amz_date is not None
    day = x_amz_date[:8]
    other = (datetime.strptime(day, "%Y%m%d") - timedelta(days=1)).strftime("%Y%m%d")
    altered = with_authorization(request, authorization.replace(f"/{day}/", f"/{other}/"))
    assert_error(
        send(http, altered),
        403,
        DENIED,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        f"HTTP: '{other}' != '{day}', from '{x_amz_date}'.",
    )


@pytest.mark.parametrize(
    "left_out", ["host", "x-amz-date", "x-amz-x509", "x-amz-x509-chain", "content-type"]
)
def test_required_header_not_signed(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, left_out: str
) -> None:
    ident = identity(pki.leaf())  # issued by the intermediate, so the chain is sent
    signed = [
        h for h in ("content-type", "host", "x-amz-date", "x-amz-x509", "x-amz-x509-chain")
        if h != left_out
    ]  # fmt: skip
    response = send(http, raw_request(emu, ident, signed_headers=signed))
    assert_error(
        response, 403, DENIED, f"'{left_out}' must be a 'SignedHeader' in the AWS Authorization."
    )


def test_missing_authorization(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    request = request_for(emu, identity(pki.leaf()))
    headers = [(n, v) for n, v in request.headers if n.lower() != "authorization"]
    response = http.post(request.url, headers=headers, content=request.body)
    assert_error(response, 403, DENIED, "Missing Authentication Token")


def test_signed_header_absent_from_request(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    request = request_for(emu, identity(pki.leaf()))
    authorization = request.header("Authorization")
    assert authorization is not None
    altered = authorization.replace("x-amz-x509-chain,", "x-amz-x509-chain;x-custom,")
    assert altered != authorization
    response = send(http, with_authorization(request, altered))
    assert_error(response, 403, DENIED, "Signed header 'x-custom' is not in the request.")


def test_unparseable_certificate(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    response = send(http, raw_request(emu, identity(pki.leaf()), x509_value="bm90IGEgY2VydA=="))
    assert_error(response, 400, INVALID, "Unable to parse the certificate in X-Amz-X509")


# --- certificate trust and validity ---------------------------------------------------------------


def test_untrusted_leaf(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    response = send(http, request_for(emu, identity(pki.untrusted_leaf())))
    assert_error(response, 403, DENIED, "Untrusted Signing Certificate")


def test_chain_must_lead_to_the_named_trust_anchor(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    foreign = PKI(name="Foreign")
    foreign_anchor = emu.add_trust_anchor(foreign.root)
    # Our leaf with the foreign anchor: refused; the foreign leaf with it: accepted.
    ours = request_for(emu, identity(pki.leaf()), trust_anchor_arn=foreign_anchor)
    assert_error(send(http, ours), 403, DENIED, "Untrusted Signing Certificate")
    theirs = request_for(emu, identity(foreign.leaf()), trust_anchor_arn=foreign_anchor)
    credentials_of(send(http, theirs))


def test_missing_chain_for_intermediate_issued_leaf(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf(issuer="intermediate")
    response = send(http, request_for(emu, identity(leaf, chain=False)))
    assert_error(response, 403, DENIED, "Untrusted Signing Certificate")


def test_intermediate_as_trust_anchor(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    anchor = emu.add_trust_anchor(pki.intermediate)
    leaf = pki.leaf(issuer="intermediate")
    request = request_for(emu, identity(leaf, chain=False), trust_anchor_arn=anchor)
    credentials_of(send(http, request))


def test_expired_leaf(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    response = send(http, request_for(emu, identity(pki.expired_leaf())))
    assert_error(response, 403, DENIED, "Certificate expired")


def test_not_yet_valid_leaf(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    response = send(http, request_for(emu, identity(pki.not_yet_valid_leaf())))
    assert_error(response, 403, DENIED, "Certificate not yet valid")


def test_leaf_expires_on_the_emulator_clock(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf()
    ident = identity(leaf)
    end = leaf.certificate.not_valid_after_utc
    emu.clock = lambda: end
    credentials_of(send(http, request_for(emu, ident, now=end)))
    later = end + timedelta(seconds=1)
    emu.clock = lambda: later
    assert_error(send(http, request_for(emu, ident, now=later)), 403, DENIED, "Certificate expired")


# --- resources and parameters ---------------------------------------------------------------------


def _unknown(kind: str) -> str:
    return f"arn:aws:rolesanywhere:us-east-1:123456789012:{kind}/{uuid.uuid4()}"


def test_unknown_trust_anchor(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    arn = _unknown("trust-anchor")
    response = send(http, request_for(emu, identity(pki.leaf()), trust_anchor_arn=arn))
    assert_error(response, 404, NOT_FOUND, f"Trust anchor {arn} not found")


def test_unknown_profile(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    arn = _unknown("profile")
    response = send(http, request_for(emu, identity(pki.leaf()), profile_arn=arn))
    assert_error(response, 404, NOT_FOUND, f"Profile {arn} not found")


def test_unknown_role(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    arn = "arn:aws:iam::123456789012:role/nobody"
    response = send(http, request_for(emu, identity(pki.leaf()), role_arn=arn))
    assert_error(response, 404, NOT_FOUND, f"Role {arn} not found")


def test_role_not_in_profile(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    other = emu.add_role("other-role")
    response = send(http, request_for(emu, identity(pki.leaf()), role_arn=other))
    assert_error(
        response, 403, DENIED, f"Unable to assume role for {other}: the profile does not allow it"
    )
    allowing = emu.add_profile([other])
    request = request_for(emu, identity(pki.leaf()), role_arn=other, profile_arn=allowing)
    credentials_of(send(http, request))


def test_profile_in_another_region(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    profile = emu.profile_arn.replace(":us-east-1:", ":us-west-2:")
    query = arn_query(emu.trust_anchor_arn, profile, emu.role_arn)
    response = send(http, raw_request(emu, identity(pki.leaf()), query=query))
    assert_error(
        response,
        400,
        INVALID,
        f"profileArn {profile} is in region 'us-west-2', but this endpoint serves 'us-east-1'",
    )


@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        (899, "Member must have value greater than or equal to 900"),
        (43201, "Member must have value less than or equal to 43200"),
        ('"3600"', "Member must be an integer"),
    ],
)
def test_bad_duration(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, value: object, constraint: str
) -> None:
    body = f'{{"durationSeconds":{value}}}'.encode()
    response = send(http, raw_request(emu, identity(pki.leaf()), body=body))
    shown = str(value).strip('"')
    assert_error(
        response,
        400,
        INVALID,
        f"1 validation error detected: Value '{shown}' at 'durationSeconds' failed to satisfy "
        f"constraint: {constraint}",
    )


def test_duration_over_profile_maximum(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    short = emu.add_profile([emu.role_arn], duration_seconds=3600)
    ident = identity(pki.leaf())
    credentials_of(send(http, request_for(emu, ident, profile_arn=short, duration_seconds=3600)))
    response = send(http, request_for(emu, ident, profile_arn=short, duration_seconds=3601))
    assert_error(
        response, 400, INVALID, "durationSeconds 3601 exceeds the profile's maximum of 3600 seconds"
    )


def test_missing_arns(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    response = send(http, raw_request(emu, identity(pki.leaf()), query=""))
    assert response.status_code == 400
    assert response.headers["X-Amzn-ErrorType"] == INVALID
    message = response.json()["message"]
    assert message.startswith("3 validation errors detected: Value null at 'trustAnchorArn'")


def test_bad_role_session_name(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    body = b'{"durationSeconds":3600,"roleSessionName":"a"}'
    response = send(http, raw_request(emu, identity(pki.leaf()), body=body))
    assert response.status_code == 400
    assert response.headers["X-Amzn-ErrorType"] == INVALID
    assert "at 'roleSessionName' failed to satisfy constraint" in response.json()["message"]


def test_profile_refusing_session_names(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    strict = emu.add_profile([emu.role_arn], accept_role_session_name=False)
    ident = identity(pki.leaf())
    credentials_of(send(http, request_for(emu, ident, profile_arn=strict)))
    response = send(http, request_for(emu, ident, profile_arn=strict, role_session_name="named"))
    assert_error(response, 403, DENIED, "Not authorized to set roleSessionName.")


def test_chunked_body(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    request = request_for(emu, identity(pki.leaf()))
    headers = [(n, v) for n, v in request.headers if n.lower() != "content-length"]
    body = request.body
    chunks = iter([body[:5], body[5:]])
    response = http.request("POST", request.url, headers=headers, content=chunks)
    assert emu.requests[-1].header("transfer-encoding") == "chunked"
    credentials_of(response)


def test_body_too_large(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    body = b'{"durationSeconds":3600,"pad":"' + b"x" * (1 << 20) + b'"}'
    response = send(http, raw_request(emu, identity(pki.leaf()), body=body))
    assert_error(response, 413, INVALID, "Request body is too large")
    assert emu.calls == 1
    credentials_of(send(http, request_for(emu, identity(pki.leaf()))))  # connection still usable


@pytest.mark.parametrize("nested", [b"[" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_deeply_nested_body_is_400(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, nested: bytes
) -> None:
    response = send(http, raw_request(emu, identity(pki.leaf()), body=nested))
    assert_error(response, 400, INVALID, "Request body is not valid JSON: nested too deeply")
    credentials_of(send(http, request_for(emu, identity(pki.leaf()))))  # still serving


def test_internal_failure_answers_500(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    def broken_clock() -> datetime:
        raise RuntimeError("clock unplugged")

    request = request_for(emu, identity(pki.leaf()))
    emu.clock = broken_clock
    response = send(http, request)
    assert_error(
        response, 500, "InternalServerException", "emulator error: RuntimeError: clock unplugged"
    )


def test_unknown_operation(emu: RolesAnywhereEmulator, http: httpx.Client) -> None:
    response = http.get(emu.url + "/trustanchors")
    assert_error(response, 404, "UnknownOperationException", "No operation at GET /trustanchors")
    assert emu.calls == 0
    assert [r.target for r in emu.requests] == ["/trustanchors"]


# --- fault injection, counters, records -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ],
)
def test_fail_next(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI, status: int, error_type: str
) -> None:
    ident = identity(pki.leaf())
    emu.fail_next(2, status=status)
    for _ in range(2):
        response = send(http, request_for(emu, ident))
        assert response.status_code == status
        assert response.headers["X-Amzn-ErrorType"] == error_type
        assert response.headers["x-amzn-RequestId"]
    credentials_of(send(http, request_for(emu, ident)))
    assert (emu.calls, emu.successes) == (3, 1)


def test_fail_next_refuses_success_status(emu: RolesAnywhereEmulator) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        emu.fail_next(1, status=200)


def test_requests_are_recorded_and_reset(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    ident = identity(pki.leaf())
    request = request_for(emu, ident)
    send(http, request)
    (recorded,) = emu.requests
    assert recorded.method == "POST"
    assert recorded.path == "/sessions"
    assert recorded.query == request.url.partition("?")[2]
    assert recorded.header("x-amz-x509") == ident.certificate_b64
    assert recorded.header("X-AMZ-X509-CHAIN") == ",".join(ident.chain_b64)
    assert recorded.body == request.body
    emu.fail_next(5, status=503)
    emu.delay = 3.0
    emu.reset()
    assert (emu.calls, emu.successes, emu.requests, emu.delay) == (0, 0, [], 0.0)
    creds = credentials_of(send(http, request_for(emu, ident)))
    assert emu.lookup(creds["accessKeyId"]) is not None  # issued credentials survive reset


def test_lookup_unknown_and_repr_hides_secrets(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    assert emu.lookup("ASIANOTISSUED0000000") is None
    creds = credentials_of(send(http, request_for(emu, identity(pki.leaf()))))
    issued = emu.lookup(creds["accessKeyId"])
    assert issued is not None
    assert not issued.expired()
    assert issued.expired(issued.expiration)
    text = repr(issued)
    assert creds["accessKeyId"] in text
    assert creds["secretAccessKey"] not in text
    assert creds["sessionToken"] not in text
    assert emu.issued == [issued]


def test_concurrent_requests(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    ident = identity(pki.leaf())
    emu.delay = 0.3
    results: list[int] = []
    keys: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        response = send(http, request_for(emu, ident))
        with lock:
            results.append(response.status_code)
            if response.status_code == 201:
                keys.append(response.json()["credentialSet"][0]["credentials"]["accessKeyId"])

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - started
    assert results == [201] * 8
    assert len(set(keys)) == 8
    assert (emu.calls, emu.successes) == (8, 8)
    assert elapsed < 8 * 0.3  # served in parallel, not one after another


def test_delayed_answer_times_out_and_stop_is_fast(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    emu.delay = 30.0
    request = request_for(emu, identity(pki.leaf()))
    with pytest.raises(httpx.ReadTimeout):
        http.request(
            request.method,
            request.url,
            headers=list(request.headers),
            content=request.body,
            timeout=0.3,
        )
    assert emu.calls == 1
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2.0
    assert not emu.running


def test_stop_closes_kept_alive_connections(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    ident = identity(pki.leaf())
    credentials_of(send(http, request_for(emu, ident)))
    second = request_for(emu, ident)
    emu.stop()
    with pytest.raises(httpx.TransportError):
        send(http, second)


def test_lifecycle_errors(pki: PKI) -> None:
    emu = RolesAnywhereEmulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.url
    with pytest.raises(AttributeError, match="for_pki"):
        _ = emu.trust_anchor_arn
    with emu:
        assert emu.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already running"):
            emu.start()
    assert not emu.running
    emu.stop()  # stopping twice is harmless


# --- TLS ------------------------------------------------------------------------------------------


def test_tls_emulator(rolesanywhere_tls_emulator: RolesAnywhereEmulator, pki: PKI) -> None:
    emu = rolesanywhere_tls_emulator
    assert emu.url.startswith("https://127.0.0.1:")
    assert emu.ca_bundle is not None
    request = request_for(emu, identity(pki.leaf()))
    with httpx.Client(verify=ssl.create_default_context(cafile=emu.ca_bundle)) as client:
        credentials_of(send(client, request))
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.ConnectError):
        send(client, request)  # the system CAs do not know the test root
    assert emu.successes == 1


# --- clients over TLS, and the documented examples ----------------------------------------------


def test_clients_trust_a_tls_emulator(pki: PKI, tmp_path: Path) -> None:
    import asyncio

    with RolesAnywhereEmulator.for_pki(pki, tls=True) as emu:
        assert emu.url.startswith("https://") and emu.ca_bundle is None
        with emu.client(identity(pki.leaf())) as client:  # trusts tls_ca_pem
            assert client.create_session().access_key_id

        async def run() -> str:
            async with emu.async_client(identity(pki.leaf())) as aclient:
                return (await aclient.create_session()).access_key_id

        assert asyncio.run(run())
        emu.write_ca_bundle(tmp_path)  # a bundle file alone is enough too
        emu.tls_ca_pem = None
        assert emu.ca_bundle is not None
        with emu.client(identity(pki.leaf())) as client:
            assert client.create_session().access_key_id
        other = tmp_path / "other-ca.pem"  # verify= given: used as given
        other.write_bytes(PKI(name="another CA").trust_anchor_pem())
        with emu.client(identity(pki.leaf()), verify=str(other)) as c, pytest.raises(NetworkError):
            c.create_session()
        assert emu.successes == 3


def _doc_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_docs_testing_examples_run_as_written(tmp_path: Path) -> None:
    """Every ``python`` block of docs/testing.md, run in order in one namespace."""
    blocks = _doc_blocks(Path(__file__).resolve().parents[2] / "docs" / "testing.md")
    assert len(blocks) == 4
    namespace: dict[str, object] = {"tmp_path": tmp_path}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"docs/testing.md block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation, run as a reader would
    assert (tmp_path / "client.key").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY")
    assert (tmp_path / "ec.key").read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY")
