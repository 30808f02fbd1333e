"""The emulator against clients and vectors no one on this project wrote.

- awslabs ``iam-rolesanywhere-session`` (botocore SigV4Auth subclass; ARNs in the JSON body,
  always https): it must obtain credentials, and any change to what it signed must be refused.
- The known-answer CreateSession vectors in ``../shared/conformance/rolesanywhere-x509``: their
  signatures must pass the emulator's signature check.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from botocore.awsrequest import AWSRequest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from iam_rolesanywhere_session import (
    CredentialsRetrievalError,
    IAMRolesAnywhereSession,
    IAMRolesAnywhereSigner,
)

from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, IssuedCert
from tests.conformance import X509, require, x509_cases

Headers = dict[str, str]
Mutation = Callable[[Headers, bytes], tuple[Headers, bytes]]


@pytest.fixture
def emu(rolesanywhere_tls_emulator: RolesAnywhereEmulator) -> RolesAnywhereEmulator:
    return rolesanywhere_tls_emulator


@pytest.fixture(scope="module")
def https(rolesanywhere_ca_bundle: str) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=rolesanywhere_ca_bundle)
    with httpx.Client(verify=context, timeout=10) as client:
        yield client


def peer_session(emu: RolesAnywhereEmulator, leaf: IssuedCert) -> IAMRolesAnywhereSession:
    assert emu.ca_bundle is not None
    return IAMRolesAnywhereSession(
        profile_arn=emu.profile_arn,
        role_arn=emu.role_arn,
        trust_anchor_arn=emu.trust_anchor_arn,
        certificate=leaf.cert_pem(),
        private_key=leaf.key_bytes(),
        certificate_chain=leaf.chain_pem() or None,
        region=emu.region,
        endpoint=emu.endpoint_host,
        verify=emu.ca_bundle,
        session_duration=900,
    )


# --- (1) the peer client obtains credentials ----------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "issuer"),
    [("rsa-2048", "intermediate"), ("ec-p256", "intermediate"), ("ec-p384", "root")],
)
def test_peer_client_gets_credentials(
    emu: RolesAnywhereEmulator, rolesanywhere_pki: PKI, key_type: str, issuer: str
) -> None:
    leaf = rolesanywhere_pki.leaf(key_type, issuer=issuer)  # type: ignore[arg-type]
    frozen = peer_session(emu, leaf).get_refreshable_credentials().get_frozen_credentials()
    issued = emu.lookup(frozen.access_key)
    assert issued is not None
    assert issued.secret_access_key == frozen.secret_key
    assert issued.session_token == frozen.token
    assert issued.certificate_serial == leaf.serial_number
    assert (emu.calls, emu.successes) == (1, 1)
    (recorded,) = emu.requests
    assert recorded.query == ""  # the peer puts the ARNs in the JSON body
    assert json.loads(recorded.body)["trustAnchorArn"] == emu.trust_anchor_arn


def test_peer_client_sees_our_errors(emu: RolesAnywhereEmulator, rolesanywhere_pki: PKI) -> None:
    session = peer_session(emu, rolesanywhere_pki.untrusted_leaf())
    with pytest.raises(CredentialsRetrievalError) as caught:
        session.get_refreshable_credentials().get_frozen_credentials()
    assert caught.value.status_code == 403
    assert caught.value.message == "Untrusted Signing Certificate"


def test_peer_algorithm_from_certificate_hash_is_refused(
    emu: RolesAnywhereEmulator, rolesanywhere_pki: PKI
) -> None:
    # The peer names the algorithm after the CA's hash (…-SHA384 here); the service, and so the
    # emulator, only know AWS4-X509-{RSA,ECDSA}-SHA256 (PROTOCOL.md §1).
    leaf = rolesanywhere_pki.leaf("ec-p256", signature_hash="sha384")
    with pytest.raises(CredentialsRetrievalError) as caught:
        peer_session(emu, leaf).get_refreshable_credentials().get_frozen_credentials()
    assert caught.value.status_code == 403
    assert caught.value.message == "Unsupported signing algorithm: 'AWS4-X509-ECDSA-SHA384'"


# --- (2) requests signed by the peer's signer, sent unmodified or with one change ----------------


def peer_signed(emu: RolesAnywhereEmulator, leaf: IssuedCert) -> tuple[str, Headers, bytes]:
    signer = IAMRolesAnywhereSigner(
        certificate=leaf.cert_pem(),
        private_key=leaf.key_bytes(),
        certificate_chain=leaf.chain_pem() or None,
        region=emu.region,
    )
    body = json.dumps(
        {
            "durationSeconds": 3600,
            "profileArn": emu.profile_arn,
            "roleArn": emu.role_arn,
            "trustAnchorArn": emu.trust_anchor_arn,
        }
    )
    request = AWSRequest(method="POST", url=f"https://{emu.endpoint_host}/sessions", data=body)
    signer.add_auth(request)
    prepared = request.prepare()
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    raw = prepared.body
    data = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
    return prepared.url, headers, data


def _replace_header(name: str, change: Callable[[str], str]) -> Mutation:
    def mutate(headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        (key,) = [k for k in headers if k.lower() == name]
        altered = change(headers[key])
        assert altered != headers[key]
        return {**headers, key: altered}, body

    return mutate


def _move_date(value: str) -> str:
    when = datetime.strptime(value, sigv4.AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    moved = when + timedelta(seconds=1 if when.second == 0 else -1)  # stays on the same day
    assert sigv4.amz_date(moved)[:8] == value[:8]
    return sigv4.amz_date(moved)


def _flip_last_hex_digit(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def _alter_body(headers: Headers, body: bytes) -> tuple[Headers, bytes]:
    altered = body.replace(b'"durationSeconds": 3600', b'"durationSeconds": 3601')
    assert altered != body
    return headers, altered


MUTATIONS: dict[str, Mutation] = {
    "content-type-value": _replace_header("content-type", lambda v: "application/json"),
    "host-value": _replace_header("host", lambda v: v.replace("127.0.0.1", "localhost")),
    "chain-value": _replace_header("x-amz-x509-chain", lambda v: f"{v},{v}"),
    "body": _alter_body,
    "x-amz-date-moved-one-second": _replace_header("x-amz-date", _move_date),
    "signature-one-hex-digit": _replace_header("authorization", _flip_last_hex_digit),
}


def test_peer_signed_request_unmodified_is_accepted(
    emu: RolesAnywhereEmulator, rolesanywhere_pki: PKI, https: httpx.Client
) -> None:
    url, headers, body = peer_signed(emu, rolesanywhere_pki.leaf("ec-p256"))
    assert headers["Authorization"].startswith("AWS4-X509-ECDSA-SHA256 Credential=")
    response = https.post(url, headers=headers, content=body)
    assert response.status_code == 201, response.text
    access_key = response.json()["credentialSet"][0]["credentials"]["accessKeyId"]
    assert emu.lookup(access_key) is not None


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256"])
@pytest.mark.parametrize("change", list(MUTATIONS))
def test_peer_signed_request_with_one_change_is_refused(
    emu: RolesAnywhereEmulator,
    rolesanywhere_pki: PKI,
    https: httpx.Client,
    change: str,
    key_type: str,
) -> None:
    url, headers, body = peer_signed(emu, rolesanywhere_pki.leaf(key_type))
    altered_headers, altered_body = MUTATIONS[change](dict(headers), body)
    response = https.post(url, headers=altered_headers, content=altered_body)
    assert response.status_code == 403, response.text
    assert response.headers["X-Amzn-ErrorType"] == "AccessDeniedException"
    assert response.json() == {"message": "Invalid signature"}
    # The change alone made the difference: the original still goes through.
    assert https.post(url, headers=headers, content=body).status_code == 201
    assert (emu.calls, emu.successes) == (2, 1)


# --- (3) known-answer vectors from other implementations -----------------------------------------


def _case(name: str) -> tuple[dict[str, object], x509.Certificate]:
    folder: Path = require(X509) / name
    spec = json.loads((folder / "case.json").read_text())
    cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    return spec, cert


@pytest.mark.parametrize("case", x509_cases())
@pytest.mark.parametrize("tamper", [False, True])
def test_known_answer_signature_passes_the_emulator(
    rolesanywhere_pki: PKI, case: str, tamper: bool
) -> None:
    spec, cert = _case(case)
    query: dict[str, str] = spec["query"]  # type: ignore[assignment]
    sent = datetime.strptime(str(spec["x_amz_date"]), sigv4.AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    emu = RolesAnywhereEmulator(str(spec["region"]), clock=lambda: sent + timedelta(seconds=30))
    # The vectors' CAs are not available: the emulator trusts an unrelated root, so the best
    # outcome is "Untrusted Signing Certificate", which is only checked after the signature.
    emu.add_trust_anchor(rolesanywhere_pki.root, arn=query["trustAnchorArn"])
    role = emu.add_role(query["roleArn"])
    emu.add_profile([role], arn=query["profileArn"])
    authorization = str(spec["expected_authorization"])
    if tamper:
        authorization = _flip_last_hex_digit(authorization)
    headers = [(k, v) for k, v in spec.get("headers", {}).items()]  # type: ignore[attr-defined]
    headers += [
        ("Host", str(spec["host"])),
        ("X-Amz-Date", str(spec["x_amz_date"])),
        ("X-Amz-X509", _b64_der(cert)),
        ("Authorization", authorization),
    ]
    body = str(spec["body"]).encode()
    with emu, httpx.Client(timeout=10) as client:
        url = f"{emu.url}{spec['path']}?{sigv4.canonical_query_from_pairs(query.items())}"
        response = client.post(url, headers=headers, content=body)
    assert response.status_code == 403, response.text
    expected = "Invalid signature" if tamper else "Untrusted Signing Certificate"
    assert response.json() == {"message": expected}


def _b64_der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
