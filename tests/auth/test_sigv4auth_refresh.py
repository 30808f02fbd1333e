"""Issue 3, acceptance 2: ``SigV4Auth`` against the local Roles Anywhere emulator.

Requests go to an httpx ``MockTransport`` that records, for each request as it arrives, which
credentials signed it; those credentials come from the emulator over real sockets, through a
``RefreshingCredentials`` that reads the same fake clock as the emulator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.refresh import RefreshingCredentials
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from tests.session.test_refresh import FakeClock

OSIS = "https://pipe-abc123.us-east-1.osis.amazonaws.com/log/ingest"


class Recorder:
    """A MockTransport handler noting (access key, seconds left at signing time) per request."""

    def __init__(self, emulator: RolesAnywhereEmulator, clock: FakeClock) -> None:
        self.emulator = emulator
        self.clock = clock
        self.lock = threading.Lock()
        self.seen: list[tuple[str, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        akid = request.headers["authorization"].split("Credential=")[1].split("/")[0]
        issued = self.emulator.lookup(akid)
        assert issued is not None, "signed with credentials the emulator never issued"
        assert request.headers["x-amz-security-token"] == issued.session_token
        left = (issued.expiration - self.clock()).total_seconds()
        with self.lock:
            self.seen.append((akid, left))
        return httpx.Response(200)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        return self(request)


@pytest.fixture
def auth(
    rolesanywhere_emulator: RolesAnywhereEmulator, rolesanywhere_pki: PKI, clock: FakeClock
) -> Iterator[SigV4Auth]:
    identity = rolesanywhere_pki.leaf("ec-p256").identity()
    with (
        rolesanywhere_emulator.client(
            identity, duration_seconds=900, retry=RetryPolicy(max_attempts=1)
        ) as client,
        RefreshingCredentials(client, clock=clock) as refresher,
    ):
        yield SigV4Auth(refresher, service="osis")


def test_100_requests_900s_session_one_create_session(
    auth: SigV4Auth, rolesanywhere_emulator: RolesAnywhereEmulator, clock: FakeClock
) -> None:
    recorder = Recorder(rolesanywhere_emulator, clock)
    with httpx.Client(transport=httpx.MockTransport(recorder), auth=auth) as client:
        for _ in range(100):
            assert client.post(OSIS, json=[{"log": "x"}]).status_code == 200
            clock.advance(3)  # 300 s in all: still outside the advisory window (225 s left)
    assert rolesanywhere_emulator.calls == 1
    assert len({akid for akid, _ in recorder.seen}) == 1


def test_200_threads_and_200_tasks_in_the_mandatory_window_one_create_session(
    auth: SigV4Auth, rolesanywhere_emulator: RolesAnywhereEmulator, clock: FakeClock
) -> None:
    recorder = Recorder(rolesanywhere_emulator, clock)
    with httpx.Client(transport=httpx.MockTransport(recorder), auth=auth) as client:
        client.post(OSIS, content=b"[]")
    assert rolesanywhere_emulator.calls == 1
    clock.advance(900 - 30)  # 30 s left: every caller must wait for one refresh
    rolesanywhere_emulator.delay = 0.2
    threads, tasks = 200, 200
    barrier = threading.Barrier(threads + 1, timeout=30)
    sync_client = httpx.Client(transport=httpx.MockTransport(recorder), auth=auth)

    def in_thread() -> int:
        barrier.wait()
        return sync_client.post(OSIS, content=b"[]").status_code

    def in_loop() -> list[int]:
        async def main() -> list[int]:
            transport = httpx.MockTransport(recorder.handle_async)
            async with httpx.AsyncClient(transport=transport, auth=auth) as client:
                go = asyncio.Event()

                async def one() -> int:
                    await go.wait()
                    return (await client.post(OSIS, content=b"[]")).status_code

                pending = [asyncio.ensure_future(one()) for _ in range(tasks)]
                await asyncio.to_thread(barrier.wait)
                go.set()
                return list(await asyncio.gather(*pending))

        return asyncio.run(main())

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads + 1) as pool:
        futures = [pool.submit(in_thread) for _ in range(threads)]
        loop = pool.submit(in_loop)
        statuses = [f.result(timeout=60) for f in futures] + loop.result(timeout=60)
    sync_client.close()
    assert time.monotonic() - started >= 0.2
    assert statuses == [200] * (threads + tasks)
    assert rolesanywhere_emulator.calls == 2  # the first session and exactly one refresh
    assert len({akid for akid, _ in recorder.seen[1:]}) == 1
    assert min(left for _, left in recorder.seen[1:]) > 800


def test_no_request_signed_with_less_than_60_s_left(
    auth: SigV4Auth, rolesanywhere_emulator: RolesAnywhereEmulator, clock: FakeClock
) -> None:
    recorder = Recorder(rolesanywhere_emulator, clock)
    with httpx.Client(transport=httpx.MockTransport(recorder), auth=auth) as client:
        for step in range(400):  # about 2.5 simulated hours, in 7 s and 37 s steps
            client.post(OSIS, content=b"[]")
            clock.advance(37 if step % 3 == 0 else 7)
    assert len(recorder.seen) == 400
    assert min(left for _, left in recorder.seen) >= 60
    sessions = rolesanywhere_emulator.calls
    assert 8 <= sessions <= 20  # refreshed ahead of expiry, not on every request
