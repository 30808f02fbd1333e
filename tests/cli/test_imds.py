"""serve: the IMDSv2 look-alike, checked by hand and by botocore's own IMDS client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.utils import ContainerMetadataFetcher, InstanceMetadataFetcher

from rolesanywhere.cli.imds import ImdsCore, make_server, role_name_from_arn, serve
from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import NetworkError
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, KeyFormat

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CREDS = Credentials("ASIAIMDS", "imds-secret", "imds-token", NOW + timedelta(hours=1))
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(source: object = None) -> tuple[ImdsCore, Clock]:
    clock = Clock()
    core = ImdsCore(
        "onprem", source if callable(source) else (lambda: CREDS), monotonic=clock, now=lambda: NOW
    )
    return core, clock


def token(core: ImdsCore, ttl: str = "60") -> str:
    answer = core.handle("PUT", "/latest/api/token", {"x-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert answer.status == 200
    assert ("X-aws-ec2-metadata-token-ttl-seconds", ttl) in answer.headers
    return answer.body.decode()


def test_role_name_is_the_last_segment_of_the_arn() -> None:
    assert role_name_from_arn("arn:aws:iam::123456789012:role/team/onprem") == "onprem"


def test_credentials_need_a_live_token() -> None:
    core, clock = make()
    assert core.handle("GET", CREDS_PATH, {}).status == 401
    assert core.handle("GET", CREDS_PATH, {"x-aws-ec2-metadata-token": "forged"}).status == 401
    live = token(core, "60")
    listing = core.handle("GET", CREDS_PATH, {"x-aws-ec2-metadata-token": live})
    assert (listing.status, listing.body) == (200, b"onprem")
    answer = core.handle("GET", CREDS_PATH + "onprem", {"x-aws-ec2-metadata-token": live})
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "Code": "Success", "LastUpdated": "2026-11-27T12:00:00Z", "Type": "AWS-HMAC",
        "AccessKeyId": "ASIAIMDS", "SecretAccessKey": "imds-secret", "Token": "imds-token",
        "Expiration": "2026-11-27T13:00:00Z",
    }  # fmt: skip
    clock.t += 60  # the token expires
    assert core.handle("GET", CREDS_PATH, {"x-aws-ec2-metadata-token": live}).status == 401


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("PUT", {}, 400),
        ("PUT", {"x-aws-ec2-metadata-token-ttl-seconds": "0"}, 400),
        ("PUT", {"x-aws-ec2-metadata-token-ttl-seconds": "21601"}, 400),
        ("PUT", {"x-aws-ec2-metadata-token-ttl-seconds": "ten"}, 400),
        ("PUT", {"x-aws-ec2-metadata-token-ttl-seconds": "21600"}, 200),
        ("PUT", {"x-aws-ec2-metadata-token-ttl-seconds": "1", "x-forwarded-for": "10.0.0.1"}, 400),
        ("GET", {"x-aws-ec2-metadata-token-ttl-seconds": "60"}, 405),
        ("POST", {"x-aws-ec2-metadata-token-ttl-seconds": "60"}, 405),
    ],
)
def test_token_requests(method: str, headers: dict[str, str], status: int) -> None:
    core, _ = make()
    assert core.handle(method, "/latest/api/token", headers).status == status


def test_unknown_paths_roles_and_methods() -> None:
    core, _ = make()
    live = {"x-aws-ec2-metadata-token": token(core)}
    assert core.handle("GET", CREDS_PATH + "other-role", live).status == 404
    assert core.handle("GET", "/latest/meta-data/instance-id", live).status == 404
    assert core.handle("PUT", CREDS_PATH + "onprem", live).status == 405


def test_a_failed_refresh_serves_the_still_valid_credentials() -> None:
    answers: list[Credentials | Exception] = [CREDS, NetworkError("down"), NetworkError("down")]

    def source() -> Credentials:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    core, _ = make(source)
    live = {"x-aws-ec2-metadata-token": token(core)}
    first = core.handle("GET", CREDS_PATH + "onprem", live)
    again = core.handle("GET", CREDS_PATH + "onprem", live)
    assert again.status == 200 and again.body == first.body
    # Nothing served yet and the source fails: a 500, not empty credentials with a 200.
    empty, _ = make(lambda: (_ for _ in ()).throw(NetworkError("down")))
    live = {"x-aws-ec2-metadata-token": token(empty)}
    assert empty.handle("GET", CREDS_PATH + "onprem", live).status == 500


def test_container_credentials_need_the_authorization_token() -> None:
    core = ImdsCore("onprem", lambda: CREDS, container_token="s3cr3t-container-token")
    assert core.handle("GET", "/credentials", {}).status == 401
    assert core.handle("GET", "/credentials", {"authorization": "wrong"}).status == 401
    assert (
        core.handle("PUT", "/credentials", {"authorization": "s3cr3t-container-token"}).status
        == 405
    )
    answer = core.handle("GET", "/credentials", {"authorization": "s3cr3t-container-token"})
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "AccessKeyId": "ASIAIMDS", "SecretAccessKey": "imds-secret", "Token": "imds-token",
        "Expiration": "2026-11-27T13:00:00Z",
    }  # fmt: skip
    # Without a token configured there is no container endpoint at all.
    plain, _ = make()
    assert plain.handle("GET", "/credentials", {"authorization": ""}).status == 404


# botocore reads the real clock and extends credentials it finds expired, so what the served
# tests hand it expires an hour after the real now, whatever the date.
LIVE = Credentials(
    "ASIAIMDS",
    "imds-secret",
    "imds-token",
    datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
)
LIVE_EXPIRY = LIVE.expiration.strftime("%Y-%m-%dT%H:%M:%SZ") if LIVE.expiration else ""


@contextlib.contextmanager
def serving(core: ImdsCore, **kwargs: Any) -> Iterator[int]:
    """``serve(core, **kwargs)`` on a free port, on a thread, for the ``with`` block: the port."""
    stop = threading.Event()
    ports: list[int] = []
    ready = threading.Event()

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    worker = threading.Thread(
        target=serve, args=(core,), kwargs={"port": 0, "ready": on_ready, "stop": stop, **kwargs}
    )
    worker.start()
    assert ready.wait(10)
    yield ports[0]
    stop.set()
    worker.join(10)


@pytest.fixture
def served() -> Iterator[tuple[int, ImdsCore]]:
    core = ImdsCore("onprem", lambda: LIVE, container_token="s3cr3t-container-token")
    with serving(core) as port:
        yield port, core


def test_botocore_fetches_the_credentials(served: tuple[int, ImdsCore]) -> None:
    port, _ = served
    fetcher = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=f"http://127.0.0.1:{port}/"
    )
    got = fetcher.retrieve_iam_role_credentials()
    assert got["role_name"] == "onprem"
    assert (got["access_key"], got["secret_key"], got["token"]) == (
        "ASIAIMDS", "imds-secret", "imds-token",
    )  # fmt: skip
    assert got["expiry_time"] == LIVE_EXPIRY


def test_botocore_fetches_container_credentials(served: tuple[int, ImdsCore]) -> None:
    port, _ = served
    got = ContainerMetadataFetcher().retrieve_full_uri(
        f"http://127.0.0.1:{port}/credentials", headers={"Authorization": "s3cr3t-container-token"}
    )
    assert (got["AccessKeyId"], got["Token"], got["Expiration"]) == (
        "ASIAIMDS", "imds-token", LIVE_EXPIRY,
    )  # fmt: skip


def test_the_server_listens_on_loopback_only(served: tuple[int, ImdsCore]) -> None:
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        assert conn.getpeername()[0] == "127.0.0.1"
    # Other addresses of this host do not answer on that port: 127.0.0.2 (a server bound to
    # 0.0.0.0 or 127.0.0.0/8 would answer there) and the address of the default route.
    others = {"127.0.0.2"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.255", 9))  # no packet is sent
            others.add(probe.getsockname()[0])
        except OSError:
            pass
    for address in others - {"127.0.0.1"}:
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=1):
            pass


def test_cli_serve_runs_until_sigterm(tmp_path: Path) -> None:
    pki = PKI(name="serve")
    cert, key = pki.leaf("ec-p256", issuer="root").write(
        tmp_path, "client", key_format=KeyFormat.PKCS8_PEM
    )
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rolesanywhere", "serve", "--port", "0", "--hop-limit", "1",
             "--certificate", str(cert), "--private-key", str(key),
             "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
             "--role-arn", emu.role_arn, "--endpoint", emu.url],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok"},
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert "serving credentials for role" in line, line
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            fetcher = InstanceMetadataFetcher(
                timeout=5, num_attempts=1, base_url=f"http://127.0.0.1:{port}/"
            )
            got = fetcher.retrieve_iam_role_credentials()
            (issued,) = emu.issued
            assert got["access_key"] == issued.access_key_id
            full_uri = line.split("AWS_CONTAINER_CREDENTIALS_FULL_URI=")[1].split(")")[0]
            assert full_uri == f"http://127.0.0.1:{port}/credentials"
            container = ContainerMetadataFetcher().retrieve_full_uri(
                full_uri, headers={"Authorization": "tok"}
            )
            assert container["AccessKeyId"] == issued.access_key_id
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert issued.secret_access_key not in proc.stderr.read()
        finally:
            proc.kill()


@pytest.mark.parametrize("hop_limit", [1, 7])
def test_accepted_connections_send_with_the_hop_limit(hop_limit: int) -> None:
    server = make_server(ImdsCore("onprem", lambda: CREDS), port=0, hop_limit=hop_limit)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=2):
            conn, _ = server.get_request()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == hop_limit
    finally:
        server.server_close()
