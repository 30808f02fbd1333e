"""The log shipper: encoding, batching, every answer's handling, settlement, back-pressure.

Unit-level cases use an httpx ``MockTransport`` (:class:`Server`); end-to-end cases run over real
sockets on 127.0.0.1 against the project's emulators (Roles Anywhere issuing the credentials,
OpenSearch Ingestion verifying SigV4 and storing what it accepts).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import os
import random
import socket
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import InvalidParameterError, ShipperClosedError, ShipperInterruptedError
from rolesanywhere.ship import core as core_module
from rolesanywhere.ship.batch import Ticket
from rolesanywhere.ship.build import shipper_config
from rolesanywhere.ship.config.model import ShipConfig
from rolesanywhere.ship.core import Core
from rolesanywhere.ship.encoder import Encoder
from rolesanywhere.ship.shipper import MAX_BATCH_BYTES, AsyncShipper, Shipper, ShipperConfig
from rolesanywhere.ship.statedir import default_state_dir
from rolesanywhere.ship.tail import Tailer
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import CredentialRecord, OsisEmulator, StaticCredentials
from rolesanywhere.testing.pki import PKI

REGION = "us-east-1"
MOCK_URL = "https://pipe-abc123.us-east-1.osis.amazonaws.com/log/ingest"


# --- helpers --------------------------------------------------------------------------------------


def make_config(tmp_path: Path, url: str = MOCK_URL, **options: Any) -> ShipperConfig:
    options.setdefault("trust_env", False)
    options.setdefault("backoff_base", 0.001)
    options.setdefault("backoff_max", 0.01)
    options.setdefault("flush_interval", 60.0)  # only flush() or full batches send
    options.setdefault("request_timeout", 10.0)
    return ShipperConfig(url=url, state_dir=str(tmp_path), **options)


Decide = Callable[[list[dict[str, Any]]], int]


class Server:
    """A MockTransport handler: scripted answers first, then ``decide(events)`` (200 by default).

    Script entries are statuses or exceptions to raise. Records every request.
    """

    def __init__(
        self,
        script: list[int | Exception] | None = None,
        decide: Decide | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.script: deque[int | Exception] = deque(script or ())
        self.decide = decide
        self.gate = gate
        self.requests: list[tuple[int, int, list[dict[str, Any]]]] = []
        self.delivered: list[dict[str, Any]] = []
        self.raw: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.gate is not None:
            self.gate.wait()
        content = request.content
        if request.headers.get("content-encoding") == "gzip":
            content = gzip.decompress(content)
        events: list[dict[str, Any]] = json.loads(content)
        with self.lock:
            self.raw.append(request)
            entry = self.script.popleft() if self.script else None
            if isinstance(entry, Exception):
                raise entry
            status = entry if entry is not None else (self.decide(events) if self.decide else 200)
            self.requests.append((status, len(content), events))
            if 200 <= status < 300:
                self.delivered.extend(events)
        return httpx.Response(status, text=f"answer {status}: poisoned record" if status else "")

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def logs(self) -> list[str]:
        with self.lock:
            return [event["log"] for event in self.delivered]


class FakeClock:
    """A clock that moves only when told, or when a shipper pauses on it: ``wait`` returns at
    once, the clock moved on by the pause (pauses of several workers add up)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def wait(self, event: threading.Event, seconds: float) -> bool:
        with self.lock:
            self.now += seconds
        return event.is_set()


def dead_letters(config: ShipperConfig) -> list[dict[str, Any]]:
    path = Path(config.resolved_dead_letter_path())
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def lines(n: int, prefix: str = "line") -> list[bytes]:
    return [f"{prefix} {i:06d} some log text here".encode() for i in range(n)]


# --- emulator fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(name="shipper tests")


@pytest.fixture(scope="module")
def ra(pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki) as emulator:
        yield emulator


@pytest.fixture
def auth(ra: RolesAnywhereEmulator, pki: PKI) -> Iterator[SigV4Auth]:
    with ra.client(pki.leaf("ec-p256").identity()) as client:
        yield SigV4Auth(client, service="osis", region=REGION)


class Keys:
    """The OSIS emulator's credential lookup, able to expire or revoke an access key."""

    def __init__(self, ra: RolesAnywhereEmulator) -> None:
        self.ra = ra
        self.expired: set[str] = set()
        self.revoked: set[str] = set()

    def __call__(self, access_key_id: str) -> CredentialRecord | None:
        record = self.ra.lookup(access_key_id)
        if record is None or access_key_id in self.revoked:
            return None
        if access_key_id in self.expired:
            past = datetime.now(UTC) - timedelta(seconds=1)
            return StaticCredentials(
                record.access_key_id, record.secret_access_key, record.session_token, past
            )
        return record


@pytest.fixture
def keys(ra: RolesAnywhereEmulator) -> Keys:
    return Keys(ra)


@pytest.fixture
def osis_factory(keys: Keys) -> Iterator[Callable[..., OsisEmulator]]:
    started: list[OsisEmulator] = []

    def factory(**options: Any) -> OsisEmulator:
        options.setdefault("credentials", keys)
        options.setdefault("region", REGION)
        emulator = OsisEmulator(**options).start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.close()


# --- configuration --------------------------------------------------------------------------------


def test_config_refuses_batches_over_1_mib_and_nonsense(tmp_path: Path) -> None:
    assert make_config(tmp_path).batch_bytes == MAX_BATCH_BYTES == 1 << 20
    with pytest.raises(InvalidParameterError, match="1 MiB"):
        make_config(tmp_path, batch_bytes=MAX_BATCH_BYTES + 1)
    bad: list[dict[str, Any]] = [
        {"url": "ftp://host/x"},
        {"batch_events": 0},
        {"flush_interval": 0},
        {"max_pending_bytes": 1000},
        {"max_in_flight": 0},
        {"retry_limit": -1},
        {"oversize": "drop"},
        {"gzip_level": 10},
        {"refusal_breaker": -1},
        {"refusal_hold": -0.5},
    ]
    for options in bad:
        with pytest.raises(InvalidParameterError):
            make_config(tmp_path, **options)


def test_sigv4_auth_without_a_region_for_an_ip_endpoint_is_refused(tmp_path: Path) -> None:
    creds = Credentials("AKIDEXAMPLE", "secret")
    with pytest.raises(InvalidParameterError, match="region"):
        Shipper(make_config(tmp_path, "http://127.0.0.1:9/log"), SigV4Auth(creds, service="osis"))


def test_dead_letter_path_defaults_to_state_dir(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert config.resolved_dead_letter_path() == str(tmp_path / "dead-letter.jsonl")


def test_default_state_dir() -> None:
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/ship:/x"}) == "/var/lib/ship"
    assert default_state_dir({"XDG_STATE_HOME": "/s"}) == "/s/rolesanywhere/ship"
    assert default_state_dir({"HOME": "/h"}) == "/h/.local/state/rolesanywhere/ship"


def test_config_from_a_ship_config(tmp_path: Path) -> None:
    ship = ShipConfig(
        paths=("/var/log/*.log",),
        url=MOCK_URL,
        region=REGION,
        compress=True,
        batch_bytes=512 << 10,
        batch_events=100,
        retry_limit=5,
        max_backoff=12.0,
        ca_bundle="/etc/ca.pem",
        path_key="file",
        fields=(("env", "prod"),),
        state_dir=str(tmp_path),
    )
    config = shipper_config(ship, max_in_flight=1)
    assert (config.url, config.gzip, config.batch_bytes, config.batch_events) == (
        MOCK_URL,
        True,
        512 << 10,
        100,
    )
    assert (config.retry_limit, config.backoff_max, config.verify) == (5, 12.0, "/etc/ca.pem")
    assert config.path_key == "file" and config.fields == (("env", "prod"),)
    assert config.max_in_flight == 1
    assert config.resolved_dead_letter_path() == str(tmp_path / "dead-letter.jsonl")


# --- encoding -------------------------------------------------------------------------------------


def test_lines_become_fluent_bit_records_with_optional_fields(tmp_path: Path) -> None:
    server = Server()
    config = make_config(
        tmp_path,
        path_key="file",
        host_key="host",
        hostname="web-1",
        fields=(("env", "prod"), ("n", 3)),
    )
    before = time.time()
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(
            [b"plain", "w\u00f6rld \u2603", b"bad \xff\xfe utf8", b'quote " and \\ \t'],
            source="/var/log/app.log",
        )
        shipper.submit([{"msg": "a record", "log": "kept", "env": "dev"}], source="/x.log")
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    body = server.raw[0].content
    assert body.isascii()
    assert body.startswith(b'[{"date":') and b", " not in body.split(b'"log"')[0]
    events = server.delivered
    assert [list(e) for e in events[:4]] == [["date", "log", "file", "host", "env", "n"]] * 4
    assert [e["log"] for e in events[:4]] == [
        "plain",
        "w\u00f6rld \u2603",
        "bad \ufffd\ufffd utf8",
        'quote " and \\ \t',
    ]
    assert before <= events[0]["date"] <= time.time()
    assert isinstance(events[0]["date"], float)
    assert events[0]["file"] == "/var/log/app.log" and events[0]["host"] == "web-1"
    record = events[4]
    assert record["msg"] == "a record" and record["log"] == "kept"
    assert record["env"] == "dev"  # the record's own value wins over fixed fields
    assert record["file"] == "/x.log" and record["host"] == "web-1" and "date" in record
    assert stats.invalid_utf8_lines == 1
    assert stats.events_delivered == 5 and stats.pending_events == 0


def test_date_formats_and_explicit_dates(tmp_path: Path) -> None:
    encoder = Encoder(make_config(tmp_path, date_format="iso8601"))
    out = encoder.encode([b"x"], None, 1700000000.25)
    assert json.loads(out.items[0])["date"] == "2023-11-14T22:13:20.250000Z"
    encoder = Encoder(make_config(tmp_path, date_format="epoch", date_key="ts", log_key="msg"))
    assert json.loads(encoder.encode([b"x"], None, 1700000000.75).items[0]) == {
        "ts": 1700000000,
        "msg": "x",
    }
    encoder = Encoder(make_config(tmp_path, date_key=None))
    assert json.loads(encoder.encode([b"x"], None, 1.0).items[0]) == {"log": "x"}


def test_encoding_throughput(tmp_path: Path) -> None:
    """Events/s of encoding alone (printed, not asserted: machines differ)."""
    config = make_config(tmp_path, path_key="file", host_key="host")
    encoder = Encoder(config)
    sample = [
        b"2024-01-02T03:04:05.123Z INFO [main] com.example.Service - request id=%08d "
        b"user=alice status=200 latency_ms=12" % i
        for i in range(200_000)
    ]
    started = time.perf_counter()
    for i in range(0, len(sample), 2048):
        encoder.encode(sample[i : i + 2048], "/var/log/app.log", time.time())
    encode_rate = len(sample) / (time.perf_counter() - started)
    core = Core(config)
    bodies: list[bytes] = []
    started = time.perf_counter()
    for i in range(0, len(sample), 2048):
        core.add(encoder.encode(sample[i : i + 2048], "/a", time.time()), Ticket(None), 0.0)
    while (batch := core.take(1e9)) is not None:
        bodies.append(core.body(batch))
    batch_rate = len(sample) / (time.perf_counter() - started)
    assert sum(body.count(b'{"date":') for body in bodies) == len(sample)
    assert max(map(len, bodies)) <= MAX_BATCH_BYTES
    print(
        f"\nencoding: {encode_rate:,.0f} events/s; encoding + batching + body: "
        f"{batch_rate:,.0f} events/s ({len(sample[0])}-byte lines)"
    )


# --- batching -------------------------------------------------------------------------------------


def test_batches_by_size_never_exceed_the_limit_and_keep_order(tmp_path: Path) -> None:
    server = Server()
    limit = 4096
    config = make_config(tmp_path, batch_bytes=limit, max_in_flight=1)
    rng = random.Random(7)
    sent = [("x" * rng.randint(0, 3000)).encode() + b" %d" % i for i in range(600)]
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(sent)
        assert shipper.flush(timeout=20)
    sizes = [size for _, size, _ in server.requests]
    assert max(sizes) <= limit
    assert server.logs() == [line.decode() for line in sent]
    # greedy: each batch was closed only because the next event did not fit
    for (_, size, _), (_, _, following) in zip(server.requests, server.requests[1:], strict=False):
        first = json.dumps(following[0], separators=(",", ":"))
        assert size + 1 + len(first) > limit


@pytest.mark.parametrize("whole", [False, True])
def test_whole_submissions_are_not_split_across_batches(tmp_path: Path, whole: bool) -> None:
    config = make_config(tmp_path, batch_bytes=4096, whole_submissions=whole)
    encoder, core = Encoder(config), Core(config)
    tickets = [Ticket(n) for n in range(12)]
    for n, ticket in enumerate(tickets):  # submissions of ~1.2 KiB: three fit in a batch
        core.add(
            encoder.encode([b"x" * 100 + b" %d" % i for i in range(9)], None, 1.0), ticket, 0.0
        )
        core.seal(ticket)
        assert n == ticket.token
    batches = []
    while (batch := core.take(1e9)) is not None:
        batches.append(batch)
    assert max(len(core.body(b)) for b in batches) <= 4096
    spans = [len({id(run[0]) for run in b.runs}) for b in batches]
    straddling = [t for t in tickets if sum(any(r[0] is t for r in b.runs) for b in batches) > 1]
    if whole:
        assert not straddling and max(spans) == 3
    else:
        assert straddling  # greedy packing splits some submissions


def test_batches_by_count(tmp_path: Path) -> None:
    server = Server()
    config = make_config(tmp_path, batch_events=7, max_in_flight=1)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(lines(50))
        assert shipper.flush(timeout=10)
    assert [len(events) for _, _, events in server.requests] == [7] * 7 + [1]


def test_batches_by_time(tmp_path: Path) -> None:
    server = Server()
    config = make_config(tmp_path, flush_interval=0.3)
    with Shipper(config, transport=server.transport) as shipper:
        started = time.monotonic()
        shipper.submit(lines(3))
        time.sleep(0.1)
        assert server.requests == []  # not full, not due yet
        while not server.requests and time.monotonic() - started < 5:
            time.sleep(0.01)
        waited = time.monotonic() - started
    assert 0.25 <= waited < 3
    assert len(server.requests) == 1 and len(server.requests[0][2]) == 3


# --- gzip -----------------------------------------------------------------------------------------


def test_gzip_body_decodes_to_the_same_json_and_is_what_was_signed(tmp_path: Path) -> None:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    creds = Credentials("ASIAEXAMPLE", "secret-key", "session-token", expiry)
    auth = SigV4Auth(creds, service="osis", region=REGION, content_sha256=True)
    plain, zipped = Server(), Server()
    for server, compress in ((plain, False), (zipped, True)):
        config = make_config(tmp_path, gzip=compress)
        with Shipper(config, auth, transport=server.transport) as shipper:
            shipper.submit(lines(500), date=1700000000.5)
            assert shipper.flush(timeout=10)
    request = zipped.raw[0]
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(request.content).hexdigest()
    assert gzip.decompress(request.content) == plain.raw[0].content
    assert len(request.content) < len(plain.raw[0].content)


def test_gzip_against_the_osis_emulator_verifying_signatures(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory(compression="gzip")
    with Shipper(make_config(tmp_path, osis.ingest_url, gzip=True), auth) as shipper:
        shipper.submit(lines(2000))
        assert shipper.flush(timeout=20)
    assert osis.count() == 2000
    assert all(batch.gzip for batch in osis.batches)
    assert osis.rejections == []


def test_https_endpoint_verified_with_a_ca_bundle_path(
    tmp_path: Path,
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_tls_osis: OsisEmulator,
) -> None:
    emu, osis = rolesanywhere_emulator, rolesanywhere_tls_osis
    with emu.client(rolesanywhere_pki.leaf("ec-p256").identity()) as client:
        auth = SigV4Auth(client, service="osis", region=emu.region)
        assert osis.ingest_url.startswith("https://") and osis.ca_bundle is not None
        config = make_config(tmp_path, osis.ingest_url, verify=osis.ca_bundle)
        with Shipper(config, auth) as shipper:
            shipper.submit(lines(10))
            assert shipper.flush(timeout=20)
        assert osis.count() == 10
        untrusted = make_config(tmp_path, osis.ingest_url, retry_limit=0)  # system CAs only
        with Shipper(untrusted, auth) as shipper:
            shipper.submit(lines(1))
            assert shipper.flush(timeout=20)
            assert shipper.stats().quarantined == {"retry_limit": 1}
            assert "CERTIFICATE_VERIFY_FAILED" in (shipper.stats().last_error or "")
    assert osis.count() == 10


# --- oversize events ------------------------------------------------------------------------------


def test_oversize_line_is_truncated_marked_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server()
    limit = 1024
    config = make_config(tmp_path, batch_bytes=limit, path_key="file")
    long_line = ("\u00e9t\u00e9 " * 2000).encode()  # non-ASCII: escaping multiplies its size
    with (
        caplog.at_level(logging.WARNING, "rolesanywhere.ship.shipper"),
        Shipper(config, transport=server.transport) as shipper,
    ):
        shipper.submit([b"short", long_line, b"after"], source="/a.log")
        shipper.submit([{"log": "y" * 5000, "k": 1}])
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    assert max(size for _, size, _ in server.requests) <= limit
    events = server.delivered
    assert [e["log"] for e in events[::2]] == ["short", "after"]
    cut = events[1]
    assert cut["truncated"] is True and cut["file"] == "/a.log"
    assert long_line.decode().startswith(cut["log"]) and len(cut["log"]) > 100
    record = events[3]
    assert record["truncated"] is True and record["k"] == 1 and set(record["log"]) == {"y"}
    assert stats.truncated_events == 2 and stats.events_quarantined == 0
    assert "truncated" in caplog.text


def test_oversize_event_quarantined_when_configured(tmp_path: Path) -> None:
    server = Server()
    settled: list[Any] = []
    config = make_config(tmp_path, batch_bytes=1024, oversize="quarantine")
    with Shipper(config, transport=server.transport, on_settled=settled.extend) as shipper:
        shipper.submit([b"ok", b"z" * 5000, b"ok too"], token="t1")
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    assert server.logs() == ["ok", "ok too"]
    assert settled == ["t1"]
    assert stats.quarantined == {"oversize": 1} and stats.events_quarantined == 1
    assert stats.pending_bytes == 0
    (letter,) = dead_letters(config)
    assert letter["event"]["log"] == "z" * 5000
    assert "exceeds" in letter["reason"] and letter["status"] is None


def test_unencodable_record_is_quarantined_not_raised(tmp_path: Path) -> None:
    server = Server()
    config = make_config(tmp_path)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit([{"log": "fine"}, {"log": "nan", "value": float("nan")}])
        assert shipper.flush(timeout=10)
        assert shipper.stats().quarantined == {"unencodable": 1}
    assert server.logs() == ["fine"]
    (letter,) = dead_letters(config)
    assert letter["event"]["log"] == "nan" and "JSON" in letter["reason"]


# --- answers --------------------------------------------------------------------------------------


def test_retryable_statuses_back_off_until_delivered(tmp_path: Path) -> None:
    server = Server(script=[408, 429, 500, 502, 503, 504, 200])
    config = make_config(tmp_path)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(lines(10), token="t")
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    assert server.logs() == [line.decode() for line in lines(10)]  # delivered exactly once
    assert stats.retries == {k: 1 for k in ("408", "429", "500", "502", "503", "504")}
    assert stats.requests == 7 and stats.events_quarantined == 0
    assert stats.last_error is not None and "504" in stats.last_error


def test_backoff_is_exponential_with_full_jitter_and_honours_retry_after(tmp_path: Path) -> None:
    core = Core(make_config(tmp_path, backoff_base=0.5, backoff_max=30), rand=lambda: 1.0)
    assert [core.delay(n, None) for n in (1, 2, 3, 6, 7, 20)] == [0.5, 1, 2, 16, 30, 30]
    jitter = Core(make_config(tmp_path, backoff_base=0.5, backoff_max=30), rand=lambda: 0.25)
    assert jitter.delay(3, None) == 0.5
    assert core.delay(1, 7.0) == 7.0 and core.delay(1, 100.0) == 30


def test_connection_errors_and_timeouts_are_retried(tmp_path: Path) -> None:
    server = Server(
        script=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ConnectError("x")]
    )
    with Shipper(make_config(tmp_path), transport=server.transport) as shipper:
        shipper.submit(lines(5))
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    assert len(server.delivered) == 5
    assert stats.retries == {"conn": 2, "timeout": 1}


def test_retry_limit_sends_the_batch_to_the_dead_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    server = Server(decide=lambda events: 503)
    settled: list[Any] = []
    config = make_config(tmp_path, retry_limit=2)
    with Shipper(config, transport=server.transport, on_settled=settled.extend) as shipper:
        shipper.submit(lines(4), token="t")
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    assert len(server.requests) == 3  # the first attempt and 2 retries
    assert settled == ["t"]
    assert stats.quarantined == {"retry_limit": 4} and stats.events_delivered == 0
    letters = dead_letters(config)
    assert [letter["event"]["log"] for letter in letters] == [x.decode() for x in lines(4)]
    assert all(letter["status"] == 503 for letter in letters)
    assert "retry limit (2)" in letters[0]["reason"]
    assert len(synced) == 1  # one durable write for the batch, before it settled
    mode = stat.S_IMODE(os.stat(config.resolved_dead_letter_path()).st_mode)
    assert mode == 0o600


def test_retry_limit_zero_means_no_retries(tmp_path: Path) -> None:
    server = Server(script=[httpx.ConnectError("down")])
    config = make_config(tmp_path, retry_limit=0)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(lines(2))
        assert shipper.flush(timeout=10)
    assert len(dead_letters(config)) == 2
    assert dead_letters(config)[0]["status"] is None
    assert "ConnectError" in dead_letters(config)[0]["reason"]


def test_413_splits_recursively_until_accepted(tmp_path: Path) -> None:
    server = Server(decide=lambda events: 413 if len(events) > 3 else 200)
    with Shipper(make_config(tmp_path, max_in_flight=1), transport=server.transport) as shipper:
        shipper.submit(lines(40))
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    assert server.logs() == [line.decode() for line in lines(40)]  # order kept, nothing twice
    assert stats.splits_413 >= 7 and stats.events_quarantined == 0
    assert all(len(events) <= 3 for status, _, events in server.requests if status == 200)


def test_413_for_a_single_event_quarantines_it(tmp_path: Path) -> None:
    server = Server(decide=lambda events: 413 if any("big" in e["log"] for e in events) else 200)
    config = make_config(tmp_path)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit([b"a", b"b", b"big one", b"c"])
        assert shipper.flush(timeout=10)
        assert shipper.stats().quarantined == {"413": 1}
    assert sorted(server.logs()) == ["a", "b", "c"]
    (letter,) = dead_letters(config)
    assert letter["status"] == 413 and letter["event"]["log"] == "big one"


def test_413_split_against_the_osis_emulator(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory(split_threshold=20_000)
    with Shipper(make_config(tmp_path, osis.ingest_url), auth) as shipper:
        shipper.submit(lines(3000))
        assert shipper.flush(timeout=20)
        stats = shipper.stats()
    assert osis.count() == 3000 and osis.duplicates() == {}
    assert stats.splits_413 > 0 and osis.status_counts[413] > 0


def test_400_bisects_to_the_one_poisoned_record_among_1000(tmp_path: Path) -> None:
    def decide(events: list[dict[str, Any]]) -> int:
        return 400 if any(e["log"] == "POISON" for e in events) else 200

    server = Server(decide=decide)
    sent = [line.decode() for line in lines(1000)]
    sent[613] = "POISON"
    config = make_config(tmp_path, max_in_flight=1)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(sent)
        assert shipper.flush(timeout=20)
        stats = shipper.stats()
    delivered = server.logs()
    assert Counter(delivered) == Counter(sent) - Counter(["POISON"])  # each exactly once
    (letter,) = dead_letters(config)
    assert letter["event"]["log"] == "POISON" and letter["status"] == 400
    assert "HTTP 400" in letter["reason"] and "poisoned record" in letter["reason"]
    assert stats.quarantined == {"400": 1} and stats.events_delivered == 999
    assert stats.requests <= 1 + 2 * 10  # log2(1000) levels, two halves each
    assert stats.bisections_400 == 10


def test_a_pipeline_refusing_everything_opens_the_breaker_instead_of_dead_lettering_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every request answered 400 (say gzip sent to a pipeline without compression: gzip) until
    # the pipeline is fixed: at most a breaker's worth of events reach the dead letter, the
    # rest are held and delivered once the pipeline accepts them again.
    refusing = threading.Event()
    refusing.set()
    server = Server(decide=lambda events: 400 if refusing.is_set() else 200)
    config = make_config(tmp_path, batch_bytes=4096, max_in_flight=1, refusal_hold=60.0)
    sent = [line.decode() for line in lines(3000)]
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(sent)
        shipper.flush(timeout=0)
        deadline = time.monotonic() + 20
        while shipper.stats().refusal_trips == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        held = shipper.stats()
        assert held.refusal_trips == 1
        assert held.events_quarantined < config.refusal_breaker
        assert held.last_error is not None and "held" in held.last_error
        refusing.clear()
        assert shipper.flush(timeout=20)
        stats = shipper.stats()
    assert any("refused the last 32 requests in a row" in r.message for r in caplog.records)
    quarantined = [x["event"]["log"] for x in dead_letters(config)]
    assert len(quarantined) == stats.events_quarantined == held.events_quarantined
    assert Counter(server.logs()) == Counter(sent) - Counter(quarantined)  # nothing twice
    assert stats.events_delivered + stats.events_quarantined == 3000
    assert stats.refusal_trips == 1 and stats.pending_events == 0


def test_gzip_to_a_pipeline_without_compression_is_held_until_the_pipeline_is_fixed(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory(compression="none")  # answers 400 to every gzip body
    config = make_config(
        tmp_path, osis.ingest_url, gzip=True, batch_bytes=8192, max_in_flight=1,
        refusal_hold=60.0,
    )  # fmt: skip
    with Shipper(config, auth) as shipper:
        shipper.submit(lines(2000))
        shipper.flush(timeout=0)
        deadline = time.monotonic() + 20
        while shipper.stats().refusal_trips == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shipper.stats().refusal_trips == 1
        osis.compression = "gzip"  # the pipeline is fixed
        assert shipper.flush(timeout=20)
        stats = shipper.stats()
    assert stats.events_quarantined < config.refusal_breaker
    assert osis.count() + stats.events_quarantined == 2000 and osis.duplicates() == {}


def test_the_breaker_resumes_bisection_after_holding(tmp_path: Path) -> None:
    # Refused for good: after each hold the shipper bisects again, so it never stalls for ever;
    # every event ends in the dead letter, as without the breaker.
    server = Server(decide=lambda events: 400)
    config = make_config(
        tmp_path, batch_bytes=2048, max_in_flight=1, refusal_breaker=8, refusal_hold=0.05
    )
    clock = FakeClock()
    with Shipper(config, transport=server.transport, clock=clock, wait=clock.wait) as shipper:
        shipper.submit(lines(200))
        assert shipper.flush(timeout=30)
        stats = shipper.stats()
    assert stats.events_quarantined == 200 and stats.quarantined == {"400": 200}
    assert stats.refusal_trips >= 2
    assert len(dead_letters(config)) == 200


def test_the_breaker_can_be_turned_off(tmp_path: Path) -> None:
    server = Server(decide=lambda events: 400)
    config = make_config(tmp_path, batch_bytes=2048, refusal_breaker=0)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(lines(100))
        assert shipper.flush(timeout=30)
        stats = shipper.stats()
    assert stats.refusal_trips == 0 and stats.quarantined == {"400": 100}
    # bisected down to every single event
    assert sum(1 for _, _, events in server.requests if len(events) == 1) == 100


def test_a_transient_400_from_the_emulator_loses_nothing(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory()
    osis.script([400])
    with Shipper(make_config(tmp_path, osis.ingest_url), auth) as shipper:
        shipper.submit(lines(100))
        assert shipper.flush(timeout=20)
        assert shipper.stats().events_quarantined == 0
    assert osis.count() == 100 and osis.duplicates() == {}


def test_credentials_expiring_mid_stream_are_refreshed_and_the_batch_delivered(
    tmp_path: Path,
    auth: SigV4Auth,
    keys: Keys,
    ra: RolesAnywhereEmulator,
    osis_factory: Callable[..., OsisEmulator],
) -> None:
    osis = osis_factory()
    with Shipper(make_config(tmp_path, osis.ingest_url), auth) as shipper:
        shipper.submit(lines(100, "first"))
        assert shipper.flush(timeout=20)
        held = auth.credentials.credentials
        assert held is not None
        keys.expired.add(held.access_key_id)  # the OSIS side now answers 401 ExpiredToken
        shipper.submit(lines(100, "second"))
        assert shipper.flush(timeout=20)
        stats = shipper.stats()
    assert osis.count() == 200 and osis.duplicates() == {}
    assert osis.status_counts.get(401) == 1
    assert auth.retries == 1  # SigV4Auth re-signed with fresh credentials itself
    fresh = auth.credentials.credentials
    assert fresh is not None and fresh.access_key_id != held.access_key_id
    assert stats.events_quarantined == 0


def test_an_unknown_access_key_401_gets_fresh_credentials_at_once(
    tmp_path: Path,
    auth: SigV4Auth,
    keys: Keys,
    osis_factory: Callable[..., OsisEmulator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    osis = osis_factory()
    with (
        caplog.at_level(logging.DEBUG),
        Shipper(make_config(tmp_path, osis.ingest_url), auth) as shipper,
    ):
        shipper.submit(lines(10, "first"))
        assert shipper.flush(timeout=20)
        held = auth.credentials.credentials
        assert held is not None
        keys.revoked.add(held.access_key_id)  # 401 UnrecognizedClientException: credentials
        shipper.submit(lines(10, "second"))
        assert shipper.flush(timeout=20)
        stats = shipper.stats()
    assert osis.count() == 20
    assert osis.status_counts.get(401) == 1
    assert auth.retries == 1 and auth.forced_refreshes == 1  # SigV4Auth re-signed at once
    assert stats.retries == {}
    assert held.secret_access_key not in caplog.text
    assert held.session_token is not None and held.session_token not in caplog.text
    assert held.secret_access_key not in shipper.status_line()


def counting_source(issued: list[str]) -> Callable[[], Credentials]:
    """A credential source that counts its calls (each one a CreateSession)."""

    def source() -> Credentials:
        issued.append(f"ASIA{len(issued):016d}")
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return Credentials(issued[-1], "secret", "token", expiry)

    return source


def aws_answer(status: int, error_type: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"message": message}, headers={"x-amzn-ErrorType": f"{error_type}:http://x/"}
    )


def refuse_then_deliver(
    answer: Callable[[], httpx.Response], refusals: list[int], delivered: list[Any]
) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that gives ``answer()`` while ``refusals[0]`` (counted down) lasts, then takes
    each batch into ``delivered`` and answers 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        if refusals[0]:
            refusals[0] -= 1
            return answer()
        delivered.extend(json.loads(request.content))
        return httpx.Response(200)

    return handler


@pytest.mark.parametrize(
    "refusal",
    [
        lambda: httpx.Response(403, text="answer 403: poisoned record"),
        lambda: httpx.Response(403, text="Forbidden"),
        lambda: aws_answer(
            403,
            "AccessDeniedException",
            "User: arn:aws:sts::1:assumed-role/r/s is not "
            "authorized to perform: osis:Ingest on resource: arn:aws:osis:us-east-1:1:pipeline/p",
        ),
    ],
    ids=["plain-text", "forbidden", "access-denied"],
)
def test_403s_not_about_the_credentials_cost_no_create_session(
    tmp_path: Path, refusal: Callable[[], httpx.Response]
) -> None:
    issued: list[str] = []
    auth = SigV4Auth(counting_source(issued), service="osis", region=REGION)
    refusals = [20]
    delivered: list[Any] = []
    transport = httpx.MockTransport(refuse_then_deliver(refusal, refusals, delivered))
    with Shipper(make_config(tmp_path), auth, transport=transport) as shipper:
        shipper.submit(lines(3))
        assert shipper.flush(timeout=10)
        stats = shipper.stats()
    print(f"\n[403 not about credentials] 20 answers -> {len(issued) - 1} extra CreateSession")
    assert len(delivered) == 3 and stats.retries == {"403": 20}
    assert len(issued) == 1  # the first session only: none per refusal
    assert auth.forced_refreshes == 0 and auth.retries == 0


@pytest.mark.parametrize(
    "stale",
    [
        lambda: aws_answer(
            401, "ExpiredTokenException", "The security token included in the request is expired"
        ),
        lambda: aws_answer(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        lambda: aws_answer(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        ),
        lambda: httpx.Response(403, text="The security token included in the request is expired"),
    ],
    ids=["expired-401", "unrecognized", "bad-signature", "expired-plain-text"],
)
def test_stale_credential_answers_force_at_most_one_refresh_per_floor(
    tmp_path: Path, stale: Callable[[], httpx.Response]
) -> None:
    issued: list[str] = []
    clock = FakeClock()
    auth = SigV4Auth(counting_source(issued), service="osis", region=REGION, clock=clock)
    refusals = [30]
    delivered: list[Any] = []
    transport = httpx.MockTransport(refuse_then_deliver(stale, refusals, delivered))
    with Shipper(make_config(tmp_path), auth, transport=transport) as shipper:
        shipper.submit(lines(3, "first"))
        assert shipper.flush(timeout=10)
        first = len(issued)
        # a minute later (by the auth's clock) the next stale answer may force one more refresh
        clock.now += 60.0
        refusals[0] = 30
        shipper.submit(lines(3, "second"))
        assert shipper.flush(timeout=10)
    print(
        f"\n[stale credentials] 30 answers -> {first - 1} forced CreateSession; "
        f"60 s later 30 more -> {len(issued) - first}"
    )
    assert len(delivered) == 6
    assert first == 2  # the first session, and one forced refresh for 30 stale answers
    assert len(issued) == 3 and auth.forced_refreshes == 2


def test_connection_refused_then_the_server_appears(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.extend(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    config = make_config(tmp_path, f"http://127.0.0.1:{port}/log/ingest", backoff_max=0.1)
    server: ThreadingHTTPServer | None = None
    try:
        with Shipper(config) as shipper:
            shipper.submit(lines(50))
            assert not shipper.flush(timeout=0.4)  # nobody listens yet
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            assert shipper.flush(timeout=10)
            stats = shipper.stats()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    assert len(received) == 50
    assert stats.retries["conn"] >= 1 and stats.events_quarantined == 0


# --- settlement -----------------------------------------------------------------------------------


def test_every_token_settles_once_after_all_its_events_with_splits_and_bisections(
    tmp_path: Path,
) -> None:
    rng = random.Random(11)
    faults = random.Random(5)
    lock = threading.Lock()
    seen: set[str] = set()

    def decide(events: list[dict[str, Any]]) -> int:
        if any(e["log"].startswith("poison") for e in events):
            return 400
        if len(events) > 25:
            return 413
        if faults.random() < 0.2:
            return 503
        with lock:
            seen.update(e["log"] for e in events)
        return 200

    submissions: dict[str, list[str]] = {}
    for t in range(300):
        size = rng.choice([0, 1, 2, 5, 17, 40, 90])
        logs = [f"{'poison' if rng.random() < 0.01 else 'ok'} t{t} e{i}" for i in range(size)]
        submissions[f"token-{t}"] = logs
    settled: list[str] = []
    early: list[str] = []

    def on_settled(tokens: list[Any]) -> None:
        for token in tokens:
            with lock:
                missing = [x for x in submissions[token] if x not in seen and "poison" not in x]
            if missing:
                early.append(token)
            settled.append(token)

    server = Server(decide=decide)
    config = make_config(tmp_path, batch_bytes=4096)
    with Shipper(config, transport=server.transport, on_settled=on_settled) as shipper:
        for token, logs in submissions.items():
            shipper.submit(logs, token)
        assert shipper.flush(timeout=30)
        stats = shipper.stats()
    assert sorted(settled) == sorted(submissions)  # each exactly once, empty ones included
    assert early == []
    poisoned = [x for logs in submissions.values() for x in logs if x.startswith("poison")]
    assert stats.quarantined == {"400": len(poisoned)}
    assert sorted(x["event"]["log"] for x in dead_letters(config)) == sorted(poisoned)
    total = sum(map(len, submissions.values()))
    assert Counter(server.logs()) == Counter(
        x for logs in submissions.values() for x in logs if not x.startswith("poison")
    )
    assert stats.events_delivered + stats.events_quarantined == total
    assert stats.splits_413 > 0 and stats.bisections_400 > 0 and stats.retries["503"] > 0
    assert stats.tokens_settled == len(submissions)
    assert stats.pending_events == 0 and stats.pending_bytes == 0 and stats.in_flight == 0


def test_a_token_spanning_many_slices_settles_only_after_its_last_event(tmp_path: Path) -> None:
    server = Server()
    settled: list[Any] = []
    seen_early: list[list[Any]] = []
    config = make_config(tmp_path, batch_events=64)  # 2048 events: 32 full batches

    with Shipper(config, transport=server.transport, on_settled=settled.extend) as shipper:

        def events() -> Iterator[bytes]:
            for i in range(3000):
                if i == 2048:  # the first slice is in; let all of it be delivered
                    deadline = time.monotonic() + 10
                    while len(server.delivered) < 2048 and time.monotonic() < deadline:
                        time.sleep(0.005)
                    time.sleep(0.05)
                    seen_early.append(list(settled))
                yield b"event %d" % i

        shipper.submit(events(), "big")
        assert shipper.flush(timeout=10)
    assert len(server.delivered) == 3000
    assert seen_early == [[]]  # 2048 delivered, yet the token waited for the rest
    assert settled == ["big"]


def test_callback_errors_are_counted_and_do_not_stop_shipping(tmp_path: Path) -> None:
    def explode(tokens: list[Any]) -> None:
        raise RuntimeError("callback bug")

    server = Server()
    with Shipper(make_config(tmp_path), transport=server.transport, on_settled=explode) as shipper:
        shipper.submit(lines(3), "a")
        assert shipper.flush(timeout=10)
        shipper.submit(lines(3), "b")
        assert shipper.flush(timeout=10)
        assert shipper.stats().callback_errors == 2
    assert len(server.delivered) == 6


def test_tailer_offsets_are_committed_only_after_delivery(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory()
    osis.script([503] * 4)
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    written = [f"tail line {i}" for i in range(2000)]
    log.write_text("".join(x + "\n" for x in written))
    state = tmp_path / "state"
    config = make_config(
        tmp_path, osis.ingest_url, path_key="file", backoff_base=0.2, backoff_max=0.2
    )
    with (
        Tailer([str(log)], state_dir=str(state), read_from_head=True) as tailer,
        Shipper(config, auth, on_settled=tailer.commit, rand=lambda: 1.0) as shipper,
    ):
        polled = 0
        while chunks := tailer.poll(max_bytes=8 << 10):
            polled += len(chunks)
            shipper.submit_chunks(chunks)
        assert polled > 1
        time.sleep(0.1)  # two workers x two 503s, 0.2 s apart: nothing delivered yet
        assert tailer.uncommitted_bytes() == log.stat().st_size
        assert shipper.flush(timeout=20)
        assert tailer.uncommitted_bytes() == 0
    assert sorted(map(str, osis.logs())) == sorted(written)
    assert {doc["file"] for doc in osis.documents()} == {str(log)}


# --- back-pressure and closing --------------------------------------------------------------------


def test_back_pressure_blocks_the_producer_instead_of_growing_memory(tmp_path: Path) -> None:
    gate = threading.Event()
    delivered = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        gate.wait()
        delivered[0] += request.content.count(b'{"date":')
        return httpx.Response(200)

    total_bytes = 50 << 20
    line = b"x" * 100
    count = total_bytes // len(line)
    config = make_config(tmp_path, max_pending_bytes=4 << 20, max_in_flight=1)
    shipper = Shipper(config, transport=httpx.MockTransport(handler))
    peak = [0]
    done = threading.Event()

    def produce() -> None:
        shipper.submit(line for _ in range(count))
        done.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        peak[0] = max(peak[0], shipper.stats().pending_bytes)
        time.sleep(0.005)
    stalled = shipper.stats()
    assert not done.is_set()  # blocked: the server does not answer
    assert stalled.events_submitted < count // 5
    slack = 2048 * 200  # one encoded slice
    assert peak[0] <= config.max_pending_bytes + slack
    gate.set()
    assert done.wait(timeout=30)
    try:
        assert shipper.flush(timeout=30)
    finally:
        shipper.close()
    assert delivered[0] == count
    print(f"\nback-pressure: peak pending {peak[0] / 2**20:.1f} MiB for a 50 MiB submission")


def test_close_with_a_timeout_abandons_without_hanging_or_settling(tmp_path: Path) -> None:
    server = Server(decide=lambda events: 503)
    settled: list[Any] = []
    config = make_config(tmp_path, backoff_base=0.05, backoff_max=0.05)
    shipper = Shipper(config, transport=server.transport, on_settled=settled.extend)
    shipper.submit(lines(20), "t")
    started = time.monotonic()
    assert shipper.close(timeout=0.3) is False
    assert time.monotonic() - started < 5
    stats = shipper.stats()
    assert stats.abandoned_events == 20 and stats.events_delivered == 0
    assert settled == [] and dead_letters(config) == []
    with pytest.raises(ShipperClosedError):
        shipper.submit(lines(1))
    assert shipper.close() is False  # idempotent


def test_status_line(tmp_path: Path) -> None:
    server = Server(script=[503])
    with Shipper(make_config(tmp_path), transport=server.transport) as shipper:
        shipper.submit(lines(10))
        assert shipper.flush(timeout=10)
        line = shipper.status_line()
    assert line.startswith("shipped 10 events (")
    assert "retries 503x1" in line and "quarantined 0" in line and "last error: HTTP 503" in line


# --- end to end -----------------------------------------------------------------------------------


def test_20000_lines_with_20_percent_faults_arrive_exactly_once(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory(fault_rate=0.2, seed=1234)
    sent = [f"fault-run line {i:05d} " + "p" * (i % 200) for i in range(20_000)]
    config = make_config(tmp_path, osis.ingest_url, batch_bytes=64 << 10, flush_interval=0.05)
    started = time.perf_counter()
    with Shipper(config, auth) as shipper:
        for i in range(0, len(sent), 500):
            shipper.submit(sent[i : i + 500])
        assert shipper.flush(timeout=40)
        stats = shipper.stats()
    elapsed = time.perf_counter() - started
    logs = osis.logs()
    assert len(logs) == 20_000 and osis.duplicates() == {}
    assert set(logs) == set(sent)
    assert stats.events_quarantined == 0 and sum(stats.retries.values()) > 0
    print(f"\n20,000 lines, fault rate 0.2: {elapsed:.2f} s, {shipper.status_line()}")


def test_end_to_end_throughput_against_the_emulator(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    """Events/s through SigV4 to the emulator (printed; it shares this process's CPU)."""
    osis = osis_factory(store=False)
    sample = [
        b"2024-01-02T03:04:05.123Z INFO [main] com.example.Service - request id=%08d "
        b"user=alice status=200 latency_ms=12" % i
        for i in range(200_000)
    ]
    with Shipper(make_config(tmp_path, osis.ingest_url), auth) as shipper:
        shipper.submit(sample[:100])
        assert shipper.flush(timeout=10)
        started = time.perf_counter()
        for i in range(0, len(sample), 5000):
            shipper.submit(sample[i : i + 5000])
        assert shipper.flush(timeout=60)
        elapsed = time.perf_counter() - started
    assert osis.events_accepted == len(sample) + 100
    print(f"\nend to end (SigV4, emulator in-process): {len(sample) / elapsed:,.0f} events/s")


# --- asyncio --------------------------------------------------------------------------------------


def test_async_shipper_statuses_splits_bisection_and_tokens(tmp_path: Path) -> None:
    def decide(events: list[dict[str, Any]]) -> int:
        if any(e["log"] == "POISON" for e in events):
            return 400
        return 413 if len(events) > 30 else 200

    server = Server(script=[503, httpx.ConnectError("refused")], decide=decide)
    config = make_config(tmp_path)
    settled: list[Any] = []

    async def on_settled(tokens: list[Any]) -> None:
        await asyncio.sleep(0)
        settled.extend(tokens)

    async def main() -> None:
        async with AsyncShipper(
            config, transport=httpx.MockTransport(server), on_settled=on_settled
        ) as shipper:
            await shipper.submit(lines(100, "a"), "a")
            await shipper.submit([b"x", b"POISON", b"y"], "b")
            await shipper.submit([], "empty")
            assert await shipper.flush(timeout=10)
            stats = shipper.stats()
            assert stats.retries == {"503": 1, "conn": 1}
            assert stats.quarantined == {"400": 1} and stats.splits_413 > 0
        with pytest.raises(ShipperClosedError):
            await shipper.submit([b"late"])

    asyncio.run(main())
    assert sorted(settled) == ["a", "b", "empty"]
    assert Counter(server.logs()) == Counter([x.decode() for x in lines(100, "a")] + ["x", "y"])
    assert [x["event"]["log"] for x in dead_letters(config)] == ["POISON"]


def test_async_shipper_against_the_emulator_with_faults_and_back_pressure(
    tmp_path: Path, auth: SigV4Auth, osis_factory: Callable[..., OsisEmulator]
) -> None:
    osis = osis_factory(fault_rate=0.2, seed=99, compression="gzip")
    sent = [f"async line {i}" for i in range(5000)]
    config = make_config(
        tmp_path, osis.ingest_url, gzip=True, batch_bytes=8192, max_pending_bytes=16384
    )

    async def main() -> int:
        peak = 0
        async with AsyncShipper(config, auth) as shipper:
            for i in range(0, len(sent), 100):
                await shipper.submit(sent[i : i + 100])
                peak = max(peak, shipper.stats().pending_bytes)
            assert await shipper.flush(timeout=30)
        return peak

    peak = asyncio.run(main())
    assert peak <= 16384 + 100 * 64
    assert sorted(map(str, osis.logs())) == sorted(sent) and osis.duplicates() == {}


def test_async_close_timeout_abandons(tmp_path: Path) -> None:
    server = Server(decide=lambda events: 500)

    async def main() -> AsyncShipper:
        shipper = AsyncShipper(make_config(tmp_path), transport=httpx.MockTransport(server))
        await shipper.submit(lines(5), "t")
        assert await shipper.aclose(timeout=0.2) is False
        return shipper

    started = time.monotonic()
    shipper = asyncio.run(main())
    assert time.monotonic() - started < 5
    assert shipper.stats().abandoned_events == 5


def test_the_breaker_holds_by_the_clock_and_never_spins(tmp_path: Path) -> None:
    # backoff 0 and several workers: held batches still wait between tries, and the hold ends
    # by the clock, not by a sum of pauses.
    server = Server(decide=lambda events: 400)
    config = make_config(
        tmp_path, batch_bytes=2048, max_in_flight=4, backoff_base=0, backoff_max=0,
        refusal_breaker=8, refusal_hold=0.5,
    )  # fmt: skip
    clock = FakeClock()  # the hold and the pauses by the shipper's clock, not the wall's
    with Shipper(config, transport=server.transport, clock=clock, wait=clock.wait) as shipper:
        shipper.submit(lines(60))
        started = clock()
        assert shipper.flush(timeout=30)
        elapsed = clock() - started
        stats = shipper.stats()
    assert stats.quarantined == {"400": 60} and stats.refusal_trips >= 1
    assert elapsed >= 0.5 * stats.refusal_trips * 0.9
    # at most one try per worker per 50 ms pause while held, plus the bisection requests
    assert stats.requests <= 4 * (elapsed / 0.05 + 1) + 4 * 60


def test_a_bug_while_delivering_sends_the_batch_to_the_dead_letter_not_to_limbo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Any, attempt: int, retry_after: float | None) -> float:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(core_module.Core, "delay", broken)
    server = Server(script=[503])  # the retry asks for a delay: the bug
    config = make_config(tmp_path, max_in_flight=1)
    with Shipper(config, transport=server.transport) as shipper:
        shipper.submit(lines(10))
        started = time.monotonic()
        assert shipper.flush(timeout=10)  # returns, at once: nothing left pending
        assert time.monotonic() - started < 4
        stats = shipper.stats()
    assert stats.quarantined == {"error": 10} and stats.pending_events == 0
    letters = dead_letters(config)
    assert (
        len(letters) == 10 and "internal error (ZeroDivisionError: a bug)" in letters[0]["reason"]
    )
    assert any("shipper worker failed" in r.message for r in caplog.records)


def test_a_bug_in_the_async_shipper_also_settles_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, attempt: int, retry_after: float | None) -> float:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(core_module.Core, "delay", broken)
    server = Server(script=[503])
    config = make_config(tmp_path, max_in_flight=1)

    async def run() -> dict[str, int]:
        async with AsyncShipper(config, transport=httpx.MockTransport(server)) as shipper:
            await shipper.submit(lines(10))
            assert await shipper.flush(timeout=5)
            return shipper.stats().quarantined

    started = time.monotonic()
    assert asyncio.run(run()) == {"error": 10}
    assert time.monotonic() - started < 4


def test_submit_waiting_for_room_gives_up_soon_after_stop_is_set(tmp_path: Path) -> None:
    """``ship``'s signal handler sets ``stop``: a producer blocked behind 8 MiB of undelivered
    events must notice it (it used to wait for room for ever while the endpoint failed)."""
    settled: list[Any] = []
    server = Server(decide=lambda events: 503)
    config = make_config(tmp_path, max_pending_bytes=64 << 10, batch_bytes=16 << 10)
    shipper = Shipper(config, transport=server.transport, on_settled=settled.extend)
    stop = threading.Event()
    outcome: list[BaseException | None] = []

    def produce() -> None:
        try:
            shipper.submit(lines(20_000), "token", stop=stop)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        time.sleep(0.3)
        assert not outcome, "the producer must be blocked: nothing is ever delivered"
        stop.set()
        producer.join(timeout=2)
        assert len(outcome) == 1 and isinstance(outcome[0], ShipperInterruptedError)
    finally:
        assert not shipper.close(timeout=0.2)
    stats = shipper.stats()
    assert settled == [] and stats.events_delivered == 0  # never settled: sent again next run
    assert 0 < stats.events_submitted < 20_000
