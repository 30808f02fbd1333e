"""``SigV4Auth`` with httpx's MockTransport: sync and async, bodies, retry on stale credentials."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rolesanywhere import errors
from rolesanywhere.auth.sigv4auth import SigV4Auth, region_from_host
from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import UnsignableBodyError
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI

OSIS = "https://pipe-abc123.us-east-1.osis.amazonaws.com/log/ingest"


def creds(n: int = 0) -> Credentials:
    return Credentials(
        f"ASIAKEY{n}",
        f"secret-{n}",
        f"token-{n}",
        datetime.now(UTC) + timedelta(hours=1),
    )


class Source:
    """A credential source that counts calls and hands out new credentials each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Credentials:
        self.calls += 1
        return creds(self.calls)


def expected_signature(request: httpx.Request, body: bytes, secret: str) -> str:
    """An independent spec-level SigV4 computation over what the server received."""
    headers = request.headers
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0]
    date = headers["x-amz-date"]
    payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    lines = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in signed.split(";"))
    query = "&".join(sorted(request.url.query.decode().split("&"))) if request.url.query else ""
    canonical = "\n".join([request.method, request.url.path, query, lines, signed, payload])
    scope = f"{date[:8]}/us-east-1/osis/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (date[:8], "us-east-1", "osis", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class Server:
    """A MockTransport handler that checks signatures and can answer 401 'expired' first."""

    def __init__(self, expire_first: int = 0, body: bytes = b"") -> None:
        self.expire_first = expire_first
        self.seen: list[tuple[httpx.Request, bytes]] = []
        #: The access key of each request as it arrived (requests are re-signed in place).
        self.keys: list[str] = []
        self.secrets = {f"ASIAKEY{n}": f"secret-{n}" for n in range(0, 20)}

    def _check(self, request: httpx.Request, body: bytes) -> bool:
        auth = request.headers["authorization"]
        akid = auth.split("Credential=")[1].split("/")[0]
        signature = auth.rsplit("Signature=", 1)[1]
        return signature == expected_signature(request, body, self.secrets[akid])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.seen.append((request, body))
        self.keys.append(request.headers["authorization"].split("Credential=")[1].split("/")[0])
        if not self._check(request, body):
            return httpx.Response(403, text="The request signature we calculated does not match")
        if self.expire_first:
            self.expire_first -= 1
            return httpx.Response(401, text="The security token included in the request is expired")
        return httpx.Response(200, text="ok")

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self(request)


@pytest.fixture
def server() -> Server:
    return Server()


def test_bytes_body_sync(server: Server) -> None:
    source = Source()
    auth = SigV4Auth(source, service="osis")
    with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
        response = client.post(OSIS, json=[{"date": 1.5, "log": "hello  world"}])
    assert response.status_code == 200
    request, _ = server.seen[-1]
    auth_header = request.headers["authorization"]
    assert auth_header.startswith("AWS4-HMAC-SHA256 Credential=ASIAKEY1/")
    assert "/us-east-1/osis/aws4_request, SignedHeaders=" in auth_header
    assert ", Signature=" in auth_header
    signed = auth_header.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert signed == ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    assert request.headers["x-amz-security-token"] == "token-1"


def test_bytes_body_async(server: Server) -> None:
    async def go() -> int:
        auth = SigV4Auth(Source(), service="osis")
        transport = httpx.MockTransport(server.handle_async)
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            response = await client.post(OSIS, content=b'[{"log":"x"}]')
        return response.status_code

    assert asyncio.run(go()) == 200


def test_seekable_file_body_is_hashed_and_replayed(server: Server) -> None:
    data = b'[{"log":"' + b"x" * 200_000 + b'"}]'
    with httpx.Client(
        transport=httpx.MockTransport(server), auth=SigV4Auth(Source(), service="osis")
    ) as client:
        response = client.post(OSIS, content=io.BytesIO(data))
    assert response.status_code == 200
    request, body = server.seen[-1]
    assert body == data
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()


def test_one_shot_stream_needs_unsigned_payload(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'[{"log":'
        yield b'"x"}]'

    with (
        httpx.Client(
            transport=httpx.MockTransport(server), auth=SigV4Auth(Source(), service="osis")
        ) as client,
        pytest.raises(UnsignableBodyError, match="unsigned_payload=True"),
    ):
        client.post(OSIS, content=chunks())
    auth = SigV4Auth(Source(), service="osis", unsigned_payload=True)
    with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
        response = client.post(OSIS, content=chunks())
    assert response.status_code == 200
    request, body = server.seen[-1]
    assert body == b'[{"log":"x"}]'
    assert request.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "x-amz-content-sha256" in request.headers["authorization"]


def test_unsigned_payload_async_stream(server: Server) -> None:
    async def chunks() -> Iterator[bytes]:  # type: ignore[misc]
        yield b"[]"

    async def go() -> tuple[int, str]:
        auth = SigV4Auth(Source(), service="osis", unsigned_payload=True)
        transport = httpx.MockTransport(server.handle_async)
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            response = await client.post(OSIS, content=chunks())
        return response.status_code, server.seen[-1][0].headers["x-amz-content-sha256"]

    assert asyncio.run(go()) == (200, "UNSIGNED-PAYLOAD")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_expired_token_401_refreshes_and_retries_once(flavour: str) -> None:
    server = Server(expire_first=1)
    source = Source()
    auth = SigV4Auth(source, service="osis")
    if flavour == "sync":
        with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
            status = client.post(OSIS, content=b"[]").status_code
    else:

        async def go() -> int:
            transport = httpx.MockTransport(server.handle_async)
            async with httpx.AsyncClient(transport=transport, auth=auth) as client:
                return (await client.post(OSIS, content=b"[]")).status_code

        status = asyncio.run(go())
    assert status == 200
    assert source.calls == 2
    assert auth.retries == 1
    assert server.keys == ["ASIAKEY1", "ASIAKEY2"]


def test_retry_happens_only_once() -> None:
    server = Server(expire_first=5)
    source = Source()
    with httpx.Client(
        transport=httpx.MockTransport(server), auth=SigV4Auth(source, service="osis")
    ) as client:
        assert client.post(OSIS, content=b"[]").status_code == 401
    assert len(server.seen) == 2


def test_seekable_file_is_rewound_for_the_retry() -> None:
    server = Server(expire_first=1)
    data = b'[{"log":"rewind me"}]'
    with httpx.Client(
        transport=httpx.MockTransport(server), auth=SigV4Auth(Source(), service="osis")
    ) as client:
        assert client.post(OSIS, content=io.BytesIO(data)).status_code == 200
    assert [body for _, body in server.seen] == [data, data]


def test_other_403_is_not_retried() -> None:
    def deny(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="User is not authorized to perform: osis:Ingest")

    source = Source()
    with httpx.Client(
        transport=httpx.MockTransport(deny), auth=SigV4Auth(source, service="osis")
    ) as client:
        assert client.post(OSIS, content=b"[]").status_code == 403
    assert source.calls == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_stale_answers_force_at_most_one_refresh_per_floor(flavour: str) -> None:
    server = Server(expire_first=8)
    source = Source()
    clock = FakeClock()
    auth = SigV4Auth(source, service="osis", clock=clock)

    def post_all(count: int) -> list[int]:
        if flavour == "sync":
            with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
                return [client.post(OSIS, content=b"[]").status_code for _ in range(count)]

        async def go() -> list[int]:
            transport = httpx.MockTransport(server.handle_async)
            async with httpx.AsyncClient(transport=transport, auth=auth) as client:
                return [(await client.post(OSIS, content=b"[]")).status_code for _ in range(count)]

        return asyncio.run(go())

    # the first stale answer forces a refresh and a retry; within the floor, no more of either
    assert post_all(4) == [401, 401, 401, 401]
    assert source.calls == 2 and auth.forced_refreshes == 1 and auth.retries == 1
    assert len(server.seen) == 5
    clock.now += 59.0
    assert post_all(1) == [401]
    assert source.calls == 2
    clock.now += 1.0  # the floor has passed: one more forced refresh
    assert post_all(2) == [401, 200]
    assert source.calls == 3 and auth.forced_refreshes == 2


def test_a_stale_answer_to_credentials_already_replaced_retries_without_a_refresh() -> None:
    source = Source()
    clock = FakeClock()
    auth = SigV4Auth(source, service="osis", clock=clock)
    auth.credentials.get()  # ASIAKEY1
    signed_by_0 = "AWS4-HMAC-SHA256 Credential=ASIAKEY0/20240102/us-east-1/osis/aws4_request"
    request = httpx.Request("POST", OSIS, headers={"authorization": signed_by_0})
    expired = httpx.Response(
        401, text="The security token included in the request is expired", request=request
    )
    assert auth.refresh_if_stale(expired)  # newer credentials are held: send again with them
    assert source.calls == 1 and auth.forced_refreshes == 0
    denied = httpx.Response(
        403,
        json={"message": "User is not authorized to perform: osis:Ingest"},
        headers={"x-amzn-ErrorType": "AccessDeniedException"},
        request=request,
    )
    assert not auth.refresh_if_stale(denied)
    with pytest.raises(errors.InvalidParameterError, match="forced_refresh_interval"):
        SigV4Auth(source, service="osis", forced_refresh_interval=-1)


def test_region_inference() -> None:
    assert region_from_host("pipe-abc123.us-east-1.osis.amazonaws.com") == "us-east-1"
    assert region_from_host("sqs.eu-west-1.amazonaws.com") == "eu-west-1"
    assert region_from_host("x.aoss.cn-north-1.amazonaws.com.cn") == "cn-north-1"
    assert region_from_host("s3.dualstack.ap-south-1.amazonaws.com") == "ap-south-1"
    assert region_from_host("localhost") is None
    # the one region inference, also for rolesanywhere ship's configuration
    assert region_from_host("my-pipeline-abc123def456.us-east-1.osis.amazonaws.com") == "us-east-1"
    assert region_from_host("logs-x1.ap-southeast-2.osis.amazonaws.com") == "ap-southeast-2"
    assert region_from_host("ingest.example.com") is None
    assert region_from_host("x.notaregion.osis.amazonaws.com") is None
    assert region_from_host("") is None
    auth = SigV4Auth(creds(), service="osis")
    transport = httpx.MockTransport(Server())
    with (
        httpx.Client(transport=transport, auth=auth) as client,
        pytest.raises(errors.InvalidParameterError, match="region"),
    ):
        client.post("http://127.0.0.1:9/log/ingest", content=b"[]")


def test_explicit_region_and_static_credentials_for_loopback() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    auth = SigV4Auth(creds(7), service="osis", region="eu-west-3")
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.post("http://127.0.0.1:9/log/ingest?x=a b", content=b"[]")
    assert "/eu-west-3/osis/aws4_request" in seen[0].headers["authorization"]
    assert "ASIAKEY7" in seen[0].headers["authorization"]


def test_repr_has_no_secret() -> None:
    auth = SigV4Auth(creds(3), service="osis")
    assert "secret-3" not in repr(auth) and "token-3" not in repr(auth)
    assert sigv4.EMPTY_SHA256  # the module is importable alongside


def test_from_roles_anywhere_one_liner(
    rolesanywhere_pki: PKI, rolesanywhere_emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    leaf = rolesanywhere_pki.leaf("ec-p384")
    cert, key = leaf.write(tmp_path, "client")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(rolesanywhere_pki.intermediate.cert_pem())
    emu = rolesanywhere_emulator
    auth = SigV4Auth.from_roles_anywhere(
        certificate=str(cert),
        private_key=str(key),
        intermediates=str(chain),
        trust_anchor_arn=emu.trust_anchor_arn,
        profile_arn=emu.profile_arn,
        role_arn=emu.role_arn,
        endpoint=emu.url,
        service="osis",
    )
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-amz-security-token"])
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        for _ in range(3):
            client.post(OSIS, content=b"[]")
    assert emu.calls == 1
    issued = emu.issued[0]
    assert seen == [issued.session_token] * 3
