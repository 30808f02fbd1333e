"""Sync and async CreateSession clients at unit level (respx): retries, timeouts, errors."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from rolesanywhere import errors
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient
from rolesanywhere.session.transport import AsyncHttpxTransport
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.identity import Identity

ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a1b2c3d4-0000-0000-0000-000000000001"
)
PROFILE = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/a1b2c3d4-0000-0000-0000-000000000002"
)
ROLE = "arn:aws:iam::123456789012:role/test"
URL = "https://rolesanywhere.us-east-1.amazonaws.com/sessions"
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002, throttle_base_delay=0.001)

OK_BODY = {
    "credentialSet": [
        {
            "credentials": {
                "accessKeyId": "ASIAUNIT",
                "secretAccessKey": "unit-secret-value",
                "sessionToken": "unit-token-value",
                "expiration": "2099-01-01T00:00:00Z",
            }
        }
    ]
}


@pytest.fixture(scope="module")
def identity() -> Identity:
    pki = PKI()
    leaf = pki.leaf("ec-p256")
    return leaf.identity()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def make(identity: Identity, cls: type = RolesAnywhereClient, **kw: Any) -> Any:
    return cls(
        identity,
        trust_anchor_arn=ANCHOR,
        profile_arn=PROFILE,
        role_arn=ROLE,
        retry=kw.pop("retry", FAST),
        proxy_from_env=False,
        **kw,
    )


def ok() -> httpx.Response:
    return httpx.Response(201, json=OK_BODY)


def test_request_shape(identity: Identity, mock: respx.MockRouter) -> None:
    route = mock.post(url__startswith=URL).mock(return_value=ok())
    client = make(identity)
    creds = client.create_session()
    assert creds.access_key_id == "ASIAUNIT"
    request = route.calls.last.request
    assert request.url.query.decode() == (
        "profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A123456789012%3Aprofile%2F"
        "a1b2c3d4-0000-0000-0000-000000000002&roleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2F"
        "test&trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A123456789012%3Atrust-anchor"
        "%2Fa1b2c3d4-0000-0000-0000-000000000001"
    )
    assert request.content == b'{"durationSeconds":3600}'
    auth = request.headers["authorization"]
    assert auth.startswith(f"AWS4-X509-ECDSA-SHA256 Credential={identity.serial_number}/")
    assert "/us-east-1/rolesanywhere/aws4_request, SignedHeaders=" in auth
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain," in auth
    assert request.headers["x-amz-x509-chain"] == identity.chain_b64[0]
    assert request.headers["host"] == "rolesanywhere.us-east-1.amazonaws.com"


@pytest.mark.parametrize("status", [500, 429, 503])
def test_retries_then_succeeds(identity: Identity, mock: respx.MockRouter, status: int) -> None:
    route = mock.post(url__startswith=URL).mock(
        side_effect=[httpx.Response(status, json={"message": "x"}), httpx.Response(status), ok()]
    )
    client = make(identity)
    assert client.create_session().access_key_id == "ASIAUNIT"
    assert client.attempts == 3 and route.call_count == 3
    # each attempt is signed afresh (ECDSA signatures are randomised, so all three differ)
    assert len({call.request.headers["authorization"] for call in route.calls}) == 3


def test_gives_up_after_three(identity: Identity, mock: respx.MockRouter) -> None:
    route = mock.post(url__startswith=URL).mock(
        return_value=httpx.Response(
            429,
            headers={"x-amzn-ErrorType": "ThrottlingException"},
            json={"message": "Rate exceeded"},
        )
    )
    client = make(identity)
    with pytest.raises(errors.ThrottlingError, match="Rate exceeded"):
        client.create_session()
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("status", "etype", "cls"),
    [
        (403, "AccessDeniedException", errors.AccessDeniedError),
        (400, "ValidationException", errors.ServiceValidationError),
        (404, "ResourceNotFoundException", errors.ResourceNotFoundError),
    ],
)
def test_4xx_not_retried(
    identity: Identity, mock: respx.MockRouter, status: int, etype: str, cls: type[Exception]
) -> None:
    route = mock.post(url__startswith=URL).mock(
        return_value=httpx.Response(
            status, headers={"X-Amzn-ErrorType": etype}, json={"message": "m"}
        )
    )
    with pytest.raises(cls):
        make(identity).create_session()
    assert route.call_count == 1


def test_connection_errors_retried(identity: Identity, mock: respx.MockRouter) -> None:
    route = mock.post(url__startswith=URL).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.ConnectError("refused"), ok()]
    )
    assert make(identity).create_session().access_key_id == "ASIAUNIT"
    assert route.call_count == 3


def test_network_error_after_retries(identity: Identity, mock: respx.MockRouter) -> None:
    mock.post(url__startswith=URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.NetworkError, match="cannot reach https://rolesanywhere"):
        make(identity).create_session()


def test_timeout_maps_to_timeout_error(identity: Identity, mock: respx.MockRouter) -> None:
    mock.post(url__startswith=URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(errors.RequestTimeoutError):
        make(identity).create_session()


def test_debug_output_has_canonical_request_and_no_secrets(
    identity: Identity, mock: respx.MockRouter
) -> None:
    mock.post(url__startswith=URL).mock(return_value=ok())
    lines: list[str] = []
    make(identity, debug=lines.append).create_session()
    text = "\n".join(lines)
    assert "canonical request" in text and "string to sign" in text
    assert "AWS4-X509-ECDSA-SHA256\n" in text
    assert "unit-secret-value" not in text and "unit-token-value" not in text


def test_async_client_retries(identity: Identity, mock: respx.MockRouter) -> None:
    route = mock.post(url__startswith=URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(500), ok()]
    )

    async def run() -> str:
        async with make(identity, AsyncRolesAnywhereClient) as client:
            creds = await client.create_session()
            assert client.attempts == 3
            return str(creds.access_key_id)

    assert asyncio.run(run()) == "ASIAUNIT"
    assert route.call_count == 3


def test_validation_happens_before_network(identity: Identity, mock: respx.MockRouter) -> None:
    route = mock.post(url__startswith=URL).mock(return_value=ok())
    with pytest.raises(errors.InvalidParameterError):
        make(identity, duration_seconds=60)
    assert route.call_count == 0


def test_repr_has_no_secrets(identity: Identity, mock: respx.MockRouter) -> None:
    mock.post(url__startswith=URL).mock(return_value=ok())
    creds = make(identity).create_session()
    assert "unit-secret-value" not in repr(creds) and "unit-token-value" not in repr(creds)
    assert json.loads(creds.to_process_json())["SecretAccessKey"] == "unit-secret-value"


def test_async_client_works_on_every_event_loop(
    rolesanywhere_emulator: RolesAnywhereEmulator, rolesanywhere_pki: PKI
) -> None:
    # One client used from two asyncio.run() calls in turn, then from two loops in two threads
    # at once: each loop gets its own HTTP pool (one pool on a second loop fails).
    emu = rolesanywhere_emulator
    client = emu.async_client(rolesanywhere_pki.leaf().identity())

    async def one() -> str:
        return (await client.create_session()).access_key_id

    keys = [asyncio.run(one()), asyncio.run(one())]
    results: list[str] = []
    errors_seen: list[BaseException] = []

    def in_thread() -> None:
        try:
            results.append(asyncio.run(one()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors_seen.append(exc)

    threads = [threading.Thread(target=in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors_seen == []
    keys += results
    assert len(set(keys)) == 4 and emu.calls == 4
    asyncio.run(client.aclose())


def test_pools_of_finished_event_loops_are_let_go(
    rolesanywhere_emulator: RolesAnywhereEmulator, rolesanywhere_pki: PKI
) -> None:
    import gc
    import os

    client = rolesanywhere_emulator.async_client(rolesanywhere_pki.leaf().identity())

    async def one() -> None:
        await client.create_session()

    asyncio.run(one())
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(8):
        asyncio.run(one())
        gc.collect()
    transport = client.transport()
    assert isinstance(transport, AsyncHttpxTransport)
    assert len(transport._per_loop) <= 1
    assert len(os.listdir("/proc/self/fd")) <= before + 2  # no socket per finished loop
