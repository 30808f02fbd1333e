"""The local OpenSearch Ingestion emulator: Data Prepper ``http`` source semantics, SigV4 checked
against credentials a real Roles Anywhere emulator issued, storage and the query API.

Requests are signed with botocore's ``SigV4Auth`` (an independent implementation), never with
``rolesanywhere.sigv4.signer``.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import http.client
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from rolesanywhere.credentials import Credentials
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import (
    CredentialRegistry,
    OsisEmulator,
    StaticCredentials,
)
from rolesanywhere.testing.pki import PKI

REGION = "us-east-1"
MiB = 1024 * 1024
BAD_SIGNATURE = "The request signature we calculated does not match"


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(name="osis tests")


@pytest.fixture(scope="module")
def ra(pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        yield emu


def create_session(emu: RolesAnywhereEmulator, pki: PKI) -> Credentials:
    with emu.client(pki.leaf("ec-p256").identity()) as client:
        return client.create_session()


@pytest.fixture(scope="module")
def creds(ra: RolesAnywhereEmulator, pki: PKI) -> Credentials:
    credentials = create_session(ra, pki)
    assert credentials.session_token
    assert ra.lookup(credentials.access_key_id) is not None
    return credentials


@pytest.fixture
def make(ra: RolesAnywhereEmulator) -> Iterator[Callable[..., OsisEmulator]]:
    """Start an OSIS emulator verifying against ``ra`` (override any option); closed after."""
    started: list[OsisEmulator] = []

    def factory(**options: Any) -> OsisEmulator:
        options.setdefault("credentials", ra)
        osis = OsisEmulator(**options).start()
        started.append(osis)
        return osis

    yield factory
    for osis in started:
        osis.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30) as c:
        yield c


def sign(
    url: str,
    body: bytes,
    creds: Credentials | BotoCredentials | None,
    *,
    when: datetime | None = None,
    headers: dict[str, str] | None = None,
    region: str = REGION,
    service: str = "osis",
    method: str = "POST",
) -> dict[str, str]:
    """The headers botocore's SigV4Auth produces (at ``when`` if given)."""
    base = {"Content-Type": "application/json"} if headers is None else dict(headers)
    request = AWSRequest(method=method, url=url, data=body, headers=base)
    if creds is None:
        return dict(request.headers.items())
    if isinstance(creds, Credentials):
        creds = BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    auth = SigV4Auth(creds, service, region)
    if when is None:
        auth.add_auth(request)
    else:
        moment = when.astimezone(UTC).replace(tzinfo=None)
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=moment):
            auth.add_auth(request)
    return dict(request.headers.items())


def post(
    client: httpx.Client,
    osis: OsisEmulator,
    body: bytes,
    creds: Credentials | BotoCredentials | None,
    **kw: Any,
) -> httpx.Response:
    headers = sign(osis.ingest_url, body, creds, **kw)
    return client.post(osis.ingest_url, content=body, headers=headers)


def events(n: int, prefix: str = "line", start: float = 1732039662.0) -> bytes:
    return json.dumps(
        [{"date": start + i / 1000, "log": f"{prefix} {i}"} for i in range(n)]
    ).encode()


def frozen(at: datetime) -> Callable[[], datetime]:
    return lambda: at


# --- accepted batches, timestamps, indices -------------------------------------------------------


def test_accepted_batch_stored_with_timestamp_in_daily_index(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    now = datetime.now(UTC).replace(microsecond=123456)
    osis = make(clock=frozen(now))
    body = json.dumps(
        [
            {"date": 1732039662.399, "log": "first"},
            {"log": "second", "stream": "stdout"},
            {"date": "2024-11-19T18:07:42.5+01:00", "log": "third"},
            {"date": 1732039662, "log": "fourth"},
            {},
        ]
    ).encode()
    response = post(client, osis, body, creds, when=now)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    index = "logs-" + now.strftime("%Y.%m.%d")
    assert osis.indices() == {index: 5}
    assert osis.count() == 5
    assert osis.count(index) == 5
    assert osis.logs() == ["first", "second", "third", "fourth", None]
    docs = osis.documents()
    received = now.strftime("%Y-%m-%dT%H:%M:%S.123Z")
    assert [d["@timestamp"] for d in docs] == [
        "2024-11-19T18:07:42.399Z",
        received,
        "2024-11-19T17:07:42.500Z",
        "2024-11-19T18:07:42.000Z",
        received,
    ]
    assert docs[1] == {"log": "second", "stream": "stdout", "@timestamp": received}
    assert docs[4] == {"@timestamp": received}
    (batch,) = osis.batches
    assert batch.index == index
    assert batch.access_key_id == creds.access_key_id
    assert [e.get("log") for e in batch.events] == ["first", "second", "third", "fourth", None]
    assert batch.body_bytes == len(body) and not batch.gzip
    stats = osis.stats()
    assert (stats.requests, stats.accepted_requests, stats.events_accepted) == (1, 1, 5)
    assert stats.bytes_received == stats.bytes_accepted == len(body)
    assert stats.status_counts == {200: 1}
    assert osis.rejections == []


def test_index_per_receive_day_and_pattern() -> None:
    day = datetime(2026, 11, 27, 23, 59, 59, 999000, tzinfo=UTC)
    clock = [day]
    with OsisEmulator(verify_signatures=False, clock=lambda: clock[0]) as osis:
        assert osis.index_name(day) == "logs-2026.11.27"
        with httpx.Client(trust_env=False) as c:
            assert c.post(osis.ingest_url, content=b'[{"log":"a"}]').status_code == 200
            clock[0] = day + timedelta(milliseconds=1)
            # Data Prepper names the index after the time of processing, not the event's date.
            assert c.post(osis.ingest_url, content=b'[{"log":"b","date":0.5}]').status_code == 200
        assert osis.indices() == {"logs-2026.11.27": 1, "logs-2026.11.28": 1}
        assert [d["@timestamp"] for d in osis.documents()] == [
            "2026-11-27T23:59:59.999Z",
            "1970-01-01T00:00:00.500Z",
        ]
    custom = OsisEmulator(verify_signatures=False, index="app-%{yyyy-MM}-x", index_time="event")
    with custom, httpx.Client(trust_env=False) as c:
        body = b'[{"date":1732039662.4,"log":"a"},{"date":1735689600,"log":"b"}]'
        assert c.post(custom.ingest_url, content=body).status_code == 200
        assert custom.indices() == {"app-2024-11-x": 1, "app-2025-01-x": 1}
    with pytest.raises(ValueError, match="unsupported date token"):
        OsisEmulator(verify_signatures=False, index="logs-%{yyyy.MM.dd.mm}")


def test_query_api(make: Callable[..., OsisEmulator], client: httpx.Client) -> None:
    clock = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    osis = make(verify_signatures=False, clock=lambda: clock[0])
    # the second day's batch carries older dates: @timestamp order is not insertion order
    assert client.post(osis.ingest_url, content=events(15, "a", 2000.0)).status_code == 200
    clock[0] += timedelta(days=1)
    assert client.post(osis.ingest_url, content=events(10, "b", 1000.0)).status_code == 200

    text = client.get(f"{osis.url}/_cat/indices?v").text.splitlines()
    assert text[0].split() == [
        "health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
        "store.size", "pri.store.size",
    ]  # fmt: skip
    rows = {line.split()[2]: line.split() for line in text[1:]}
    assert set(rows) == {"logs-2026.11.27", "logs-2026.11.28"}
    assert rows["logs-2026.11.27"][:2] == ["green", "open"]
    assert rows["logs-2026.11.27"][6] == "15" and rows["logs-2026.11.28"][6] == "10"
    bare = client.get(f"{osis.url}/_cat/indices").text.splitlines()
    assert len(bare) == 2 and not bare[0].startswith("health")
    as_json = client.get(f"{osis.url}/_cat/indices/logs-*28?format=json").json()
    assert [(i["index"], i["docs.count"]) for i in as_json] == [("logs-2026.11.28", "10")]

    def search(index: str, body: dict[str, Any] | None, method: str = "POST") -> Any:
        content = b"" if body is None else json.dumps(body).encode()
        response = client.request(method, f"{osis.url}/{index}/_search", content=content)
        assert response.status_code == 200, response.text
        return response.json()

    result = search("logs-*", {"query": {"match_all": {}}})
    assert result["timed_out"] is False and isinstance(result["took"], int)
    assert result["hits"]["total"] == {"value": 25, "relation": "eq"}
    assert len(result["hits"]["hits"]) == 10  # default size
    hit = result["hits"]["hits"][0]
    assert set(hit) >= {"_index", "_id", "_source"} and hit["_source"]["log"] == "a 0"

    desc_forms: list[Any] = [
        [{"@timestamp": {"order": "desc"}}],
        ["@timestamp:desc"],
        {"@timestamp": "desc"},
    ]
    for form in desc_forms:
        hits = search("logs-*", {"size": 3, "sort": form}, "GET")["hits"]["hits"]
        assert [h["_source"]["log"] for h in hits] == ["a 14", "a 13", "a 12"], form
        assert hits[0]["_index"] == "logs-2026.11.27"
    asc = search("_all", {"size": 2, "sort": [{"@timestamp": {"order": "asc"}}]})["hits"]["hits"]
    assert [h["_source"]["log"] for h in asc] == ["b 0", "b 1"]
    assert asc[0]["sort"] == [1000000] and asc[0]["_index"] == "logs-2026.11.28"
    asc_forms: list[Any] = [["@timestamp:asc"], "@timestamp", {"@timestamp": {"order": "asc"}}]
    for form in asc_forms:
        hits = search("logs-*", {"size": 1, "sort": form})["hits"]["hits"]
        assert hits[0]["_source"]["log"] == "b 0", form
    one = search("logs-2026.11.28", {"query": {"match_all": {}}, "size": 100})
    assert one["hits"]["total"]["value"] == 10 and len(one["hits"]["hits"]) == 10
    uri = client.get(f"{osis.url}/logs-*/_search?size=1&sort=@timestamp:desc").json()
    assert uri["hits"]["hits"][0]["_source"]["log"] == "a 14"
    assert search("nothing-*", None)["hits"]["total"]["value"] == 0
    missing = client.post(f"{osis.url}/logs-1999.01.01/_search", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "index_not_found_exception"
    unsupported = client.post(f"{osis.url}/logs-*/_search", json={"query": {"match": {"x": 1}}})
    assert unsupported.status_code == 400
    too_big = client.post(f"{osis.url}/logs-*/_search", json={"size": 10001})
    assert too_big.status_code == 400
    assert client.get(f"{osis.url}/logs-*/_count").json()["count"] == 25
    assert osis.search("logs-2026.11.27", {"size": 0})["hits"]["total"]["value"] == 15


def test_logs_and_duplicates(make: Callable[..., OsisEmulator], client: httpx.Client) -> None:
    osis = make(verify_signatures=False)
    assert client.post(osis.ingest_url, content=events(3)).status_code == 200
    assert osis.duplicates() == {}
    assert client.post(osis.ingest_url, content=b'[{"log":"line 1"},{"x":1}]').status_code == 200
    assert osis.logs() == ["line 0", "line 1", "line 2", "line 1", None]
    assert osis.duplicates() == {"line 1": 2}
    assert client.post(osis.ingest_url, content=b"[]").status_code == 200
    assert osis.count() == 5 and osis.accepted_requests == 3
    osis.reset(clear_store=True)
    assert (osis.count(), osis.requests, osis.batches) == (0, 0, [])


# --- Data Prepper http source: path, body, encoding, size ----------------------------------------


def test_path_and_method(make: Callable[..., OsisEmulator], client: httpx.Client) -> None:
    osis = make(verify_signatures=False, path="/test-ingestion-path")
    assert osis.ingest_url.endswith("/test-ingestion-path")
    assert client.post(osis.url + "/log/ingest", content=b"[]").status_code == 404
    assert client.post(osis.url + "/test-ingestion-path/x", content=b"[]").status_code == 404
    assert client.get(osis.ingest_url).status_code == 405
    assert client.post(osis.ingest_url, content=b'[{"log":"x"}]').status_code == 200
    assert osis.requests == 2  # the 405 and the 200; 404s are not ingest requests


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"log":"x"}', id="bare-object"),
        pytest.param(b'{"log":"a"}\n{"log":"b"}\n', id="ndjson"),
        pytest.param(b'[{"log":"a"}]\n[{"log":"b"}]', id="two-arrays"),
        pytest.param(b'[{"log":"a"}', id="truncated"),
        pytest.param(b'[{"log":"a"},]', id="trailing-comma"),
        pytest.param(b'[{"log":"a"}] x', id="trailing-data"),
        pytest.param(b"[1]", id="number-element"),
        pytest.param(b'["x"]', id="string-element"),
        pytest.param(b"[null]", id="null-element"),
        pytest.param(b'[{"log":"a"},[{"log":"b"}]]', id="nested-array"),
        pytest.param(b'[{"n":NaN}]', id="nan"),
        pytest.param(b'[{"log":"\xff"}]', id="invalid-utf8"),
        pytest.param(b'\xef\xbb\xbf[{"log":"a"}]', id="bom"),
        pytest.param('[{"log":"é"}]'.encode("utf-16"), id="utf16"),
        pytest.param(b"", id="empty"),
        pytest.param(b"null", id="null"),
        pytest.param(b"log line", id="plain-text"),
    ],
)
def test_bad_body_is_400(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client, body: bytes
) -> None:
    osis = make()
    response = post(client, osis, body, creds)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith("Bad request")
    assert osis.count() == 0 and osis.events_accepted == 0 and osis.batches == []
    assert osis.status_counts == {400: 1}
    assert osis.rejections == []  # the signature was fine: the body is what failed


def test_gzip_only_when_configured(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    plain = events(50)
    packed = gzip.compress(plain)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    off = make()
    refused = post(client, off, packed, creds, headers=headers)
    assert refused.status_code == 400 and "compression" in refused.text
    assert off.count() == 0

    on = make(compression="gzip")
    accepted = post(client, on, packed, creds, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert on.count() == 50 and on.logs()[-1] == "line 49"
    (batch,) = on.batches
    assert batch.gzip and batch.body_bytes == len(packed) and batch.content_bytes == len(plain)
    assert on.bytes_received == len(packed)
    # the signature covers the gzip bytes: a hash of the uncompressed body does not verify
    wrong = sign(on.ingest_url, plain, creds, headers=headers)
    assert client.post(on.ingest_url, content=packed, headers=wrong).status_code == 403
    # an uncompressed body still works on a gzip pipeline; corrupt gzip and other codings do not
    assert post(client, on, plain, creds).status_code == 200
    corrupt = packed[:-12]
    assert post(client, on, corrupt, creds, headers=headers).status_code == 400
    br = {"Content-Type": "application/json", "Content-Encoding": "br"}
    assert post(client, on, plain, creds, headers=br).status_code == 400
    assert on.count() == 100


def test_413_over_the_size_limit(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    assert osis.max_body_bytes == 10 * MiB
    line = "x" * 1000
    big = json.dumps([{"log": line}] * (10 * MiB // 1000)).encode()
    assert len(big) > 10 * MiB
    response = post(client, osis, big, creds)
    assert response.status_code == 413
    assert osis.status_counts == {413: 1} and osis.bytes_received == len(big)
    # the connection stays usable (the body was drained), and a body at the limit is accepted
    at_limit = big[: 10 * MiB - 3].rsplit(b",", 1)[0] + b"]"
    assert len(at_limit) <= 10 * MiB
    assert post(client, osis, at_limit, creds).status_code == 200
    assert osis.count() == at_limit.count(b'"log"')

    small = make(max_body_bytes=4096)
    assert post(client, small, events(200), creds).status_code == 413
    assert post(client, small, events(20), creds).status_code == 200


def test_forced_413_for_splitting(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make(split_threshold=2000, max_batch_events=30, compression="gzip")
    body = events(25, "x" * 60)
    assert len(body) > 2000
    assert post(client, osis, body, creds).status_code == 413
    # measured uncompressed: gzip does not get a large batch through
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    packed = gzip.compress(body)
    assert len(packed) < 2000
    assert post(client, osis, packed, creds, headers=headers).status_code == 413
    many_small = json.dumps([{}] * 31).encode()
    assert len(many_small) < 2000
    too_many = post(client, osis, many_small, creds)
    assert too_many.status_code == 413 and "31 records" in too_many.text
    assert post(client, osis, events(20), creds).status_code == 200
    assert osis.count() == 20 and osis.status_counts == {413: 3, 200: 1}


# A gzip bomb against an emulator in a child process, whose memory is measured there (VmHWM).
# The parent watches the child's RSS and kills it past 512 MiB (a thread in the child could not:
# json.loads holds the GIL), so an unbounded decoder fails the test instead of taking the machine.
_BOMB_CHILD = r"""
import gzip, http.client, json, sys, time, zlib
from rolesanywhere.testing.osis import OsisEmulator

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

MiB = 1 << 20

def gzipped(first, piece, count, last=b""):  # one gzip member, compressed piece by piece
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(first)]
    out += [packer.compress(piece) for _ in range(count)]
    return b"".join(out) + packer.compress(last) + packer.flush()

kind = sys.argv[1]
records = b"{}," * (MiB // 3)
if kind == "records-8k":  # 8 MiB of [{},{},...] in 8 KiB, valid JSON
    bomb = gzipped(b"[", records, 8, b"{}]")
elif kind == "records-119k":  # 120 MiB of [{},{},...] in 119 KiB, valid JSON
    bomb = gzipped(b"[", records, 120, b"{}]")
elif kind == "brackets-8k":  # 8 MiB of [[[[...
    bomb = gzipped(b"", b"[" * MiB, 8)
else:  # "zeros-1g": 1 GiB of zero bytes in 1 MiB
    bomb = gzipped(b"", bytes(MiB), 1024)

with OsisEmulator(verify_signatures=False, compression="gzip") as osis:
    def post(body):
        conn = http.client.HTTPConnection("127.0.0.1", osis.port, timeout=120)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        conn.request("POST", osis.path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        return response.status, text

    assert post(gzip.compress(b'[{"log": "warm-up"}]'))[0] == 200
    before = status("VmHWM")
    started = time.perf_counter()
    code, text = post(bomb)
    seconds = time.perf_counter() - started
    grown = status("VmHWM") - before
print(json.dumps({"status": code, "text": text, "seconds": seconds, "grown": grown,
                  "sent": len(bomb)}))
"""


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_bomb(kind: str, rss_limit: int = 512 * MiB) -> dict[str, Any]:
    """Run the child; ``{"killed": True}`` when its RSS passed ``rss_limit``."""
    child = subprocess.Popen(
        [sys.executable, "-c", _BOMB_CHILD, kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while child.poll() is None:
        if _rss(child.pid) > rss_limit or time.monotonic() > deadline:
            child.kill()
            child.communicate()
            return {"killed": True}
        time.sleep(0.002)
    out, err = child.communicate()
    lines = out.strip().splitlines()
    assert lines, err[-2000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.mark.parametrize(
    ("kind", "sent_under"),
    [
        ("records-8k", 8200),  # the 8 KiB request: 1.5 GiB of RSS before
        ("records-119k", 125_000),  # the 119 KiB request: 22 GB before
        ("brackets-8k", 8200),
        ("zeros-1g", 1_100_000),
    ],
)
def test_gzip_bomb_is_413_in_bounded_memory(kind: str, sent_under: int) -> None:
    result = run_bomb(kind)
    assert not result.get("killed"), f"{kind}: the emulator took over 512 MiB"
    assert result["sent"] < sent_under
    assert result["status"] == 413, result
    assert result["text"].startswith("Request Entity Too Large")
    # at most the decompressed cap (10 MiB) and a copy or two of it, never the parsed events
    assert result["grown"] < 48 * MiB, result
    assert result["seconds"] < 30, result


def test_json_value_limit(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make(max_json_values=100)
    tiny = json.dumps([{}] * 60).encode()  # 121 values
    response = post(client, osis, tiny, creds)
    assert response.status_code == 413 and "100 JSON values" in response.text
    # brackets, commas and colons inside strings are not values
    text = json.dumps([{"log": "[{,:}]" * 200}]).encode()
    assert post(client, osis, text, creds).status_code == 200
    at_limit = json.dumps([{}] * 49).encode()  # 1 + 1 + 49 + 48 = 99
    assert post(client, osis, at_limit, creds).status_code == 200
    unlimited = make(max_json_values=None)
    assert post(client, unlimited, tiny, creds).status_code == 200
    assert OsisEmulator(verify_signatures=False).max_json_values == 1_000_000


def test_deeply_nested_json_is_400(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    deep = b"[" + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]"
    response = post(client, osis, deep, creds)
    assert response.status_code == 400 and "nested too deeply" in response.text
    for path in ("/_search", "/logs-*/_count"):
        answer = client.post(osis.url + path, content=b"[" * 100_000)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "parse_exception"


def test_persistent_buffering_resplits_and_silently_drops_large_events(
    make: Callable[..., OsisEmulator], client: httpx.Client
) -> None:
    osis = make(verify_signatures=False, persistent_buffering=True)
    huge = {"log": "H" * (MiB + 10)}
    body = json.dumps(
        [{"log": "before"}, huge, {"log": "after"}, {"log": "y" * (MiB - 30)}]
    ).encode()
    response = client.post(osis.ingest_url, content=body)
    assert response.status_code == 200  # the drop is silent
    assert osis.dropped_events == 1
    assert osis.logs() == ["before", "after", "y" * (MiB - 30)]
    (batch,) = osis.batches
    assert batch.dropped == 1 and batch.chunks == 2
    assert osis.events_accepted == 3 and osis.resplit_requests == 1

    # 1.5 MiB of small events: re-split, nothing lost
    many = json.dumps([{"log": f"{i:08d}" + "z" * 500} for i in range(3000)]).encode()
    assert len(many) > 1.4 * MiB
    assert client.post(osis.ingest_url, content=many).status_code == 200
    assert osis.batches[-1].chunks == 2 and osis.batches[-1].dropped == 0
    assert osis.count() == 3003 and osis.dropped_events == 1

    # the same large event without persistent buffering is stored
    memory = make(verify_signatures=False)
    assert client.post(memory.ingest_url, content=body).status_code == 200
    assert memory.count() == 4 and memory.dropped_events == 0


# --- SigV4 verification --------------------------------------------------------------------------


def test_unknown_access_key_is_401(make: Callable[..., OsisEmulator], client: httpx.Client) -> None:
    osis = make()
    stranger = BotoCredentials("ASIAUNKNOWNKEY000000", "s3cr3t-value-never-echoed", "tok-never")
    response = post(client, osis, events(2), stranger)
    assert response.status_code == 401
    assert "security token included in the request is invalid" in response.json()["message"]
    assert response.headers["x-amzn-errortype"] == "UnrecognizedClientException"
    assert "s3cr3t" not in response.text and "tok-never" not in response.text
    assert osis.count() == 0


def test_expired_credentials_are_401(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    assert creds.expiration is not None
    clock = [creds.expiration - timedelta(seconds=1)]
    osis = make(clock=lambda: clock[0])
    assert post(client, osis, events(1), creds, when=clock[0]).status_code == 200
    clock[0] = creds.expiration + timedelta(seconds=1)
    expired = post(client, osis, events(1), creds, when=clock[0])
    assert expired.status_code == 401
    assert expired.json()["message"] == "The security token included in the request is expired"
    assert expired.headers["x-amzn-errortype"] == "ExpiredTokenException"
    # checked before the date: a request signed "now" is refused for the same reason
    stale = post(client, osis, events(1), creds)
    assert stale.status_code == 401 and "expired" in stale.text
    assert osis.count() == 1 and osis.status_counts == {200: 1, 401: 2}


def test_request_date_must_be_within_five_minutes(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    now = datetime.now(UTC)
    osis = make(clock=frozen(now))
    assert post(client, osis, events(1), creds, when=now - timedelta(minutes=4)).status_code == 200
    old = post(client, osis, events(1), creds, when=now - timedelta(minutes=6))
    assert old.status_code == 403 and "Signature expired" in old.text
    future = post(client, osis, events(1), creds, when=now + timedelta(minutes=6))
    assert future.status_code == 403 and "not yet current" in future.text
    assert osis.count() == 1


def _tamper_body(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return h, body.replace(b"line 0", b"line X")


def _tamper_header(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {**h, "Content-Type": "application/json; charset=utf-8"}, body


def _tamper_signature(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    auth = h["Authorization"]
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    return {**h, "Authorization": flipped}, body


def _tamper_date(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    sent = datetime.strptime(h["X-Amz-Date"], "%Y%m%dT%H%M%SZ") + timedelta(seconds=1)
    return {**h, "X-Amz-Date": sent.strftime("%Y%m%dT%H%M%SZ")}, body


def _tamper_custom_header(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {**h, "X-Pipeline-Tag": "b"}, body


@pytest.mark.parametrize(
    "tamper",
    [_tamper_body, _tamper_header, _tamper_signature, _tamper_date, _tamper_custom_header],
    ids=["body", "content-type", "signature", "x-amz-date", "custom-signed-header"],
)
def test_tampered_request_is_403(
    make: Callable[..., OsisEmulator],
    creds: Credentials,
    client: httpx.Client,
    tamper: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]],
) -> None:
    osis = make()
    body = events(3)
    base = {"Content-Type": "application/json", "X-Pipeline-Tag": "a"}
    headers = sign(osis.ingest_url, body, creds, headers=base)
    assert client.post(osis.ingest_url, content=body, headers=headers).status_code == 200
    bad_headers, bad_body = tamper(headers, body)
    response = client.post(osis.ingest_url, content=bad_body, headers=bad_headers)
    assert response.status_code == 403
    assert response.json()["message"].startswith(BAD_SIGNATURE)
    assert osis.count() == 3
    (rejection,) = osis.rejections
    assert rejection.canonical_request is not None and rejection.string_to_sign is not None
    assert creds.session_token and creds.session_token not in rejection.canonical_request
    assert creds.secret_access_key not in repr(rejection)


def test_wrong_scope_or_query_is_403(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    body = events(1)
    for kw, needle in [
        ({"region": "eu-west-1"}, "region"),
        ({"service": "es"}, "service"),
    ]:
        response = post(client, osis, body, creds, **kw)
        assert response.status_code == 403 and needle in response.text
    # a query string added after signing changes the canonical request
    headers = sign(osis.ingest_url, body, creds)
    added = client.post(osis.ingest_url + "?x=1", content=body, headers=headers)
    assert added.status_code == 403 and BAD_SIGNATURE in added.text
    # and one that was signed is fine
    signed_query = sign(osis.ingest_url + "?b=2&a=%20x", body, creds)
    ok = client.post(osis.ingest_url + "?b=2&a=%20x", content=body, headers=signed_query)
    assert ok.status_code == 200, ok.text


def test_missing_or_unsigned_parts_are_403(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    body = events(1)
    url = osis.ingest_url

    def send(headers: dict[str, str]) -> httpx.Response:
        return client.post(url, content=body, headers=headers)

    nothing = send({"Content-Type": "application/json"})
    assert nothing.status_code == 403 and nothing.json()["message"] == (
        "Missing Authentication Token"
    )
    no_token_creds = BotoCredentials(creds.access_key_id, creds.secret_access_key)
    no_token = sign(url, body, no_token_creds)
    assert "X-Amz-Security-Token" not in no_token
    response = send(no_token)
    assert response.status_code == 403 and "X-Amz-Security-Token" in response.text
    unsigned_token = {**no_token, "X-Amz-Security-Token": creds.session_token or ""}
    response = send(unsigned_token)
    assert response.status_code == 403
    assert "'x-amz-security-token' must be a 'SignedHeader'" in response.text
    wrong_token = sign(
        url, body, BotoCredentials(creds.access_key_id, creds.secret_access_key, "x")
    )
    response = send(wrong_token)
    assert response.status_code == 403 and "token included in the request is invalid" in (
        response.text
    )
    without_date = {k: v for k, v in sign(url, body, creds).items() if k != "X-Amz-Date"}
    response = send(without_date)
    assert response.status_code == 403 and "X-Amz-Date" in response.text
    garbled = {**sign(url, body, creds), "Authorization": "AWS4-HMAC-SHA256 Credential=x"}
    assert send(garbled).status_code == 403
    assert osis.count() == 0 and osis.status_counts == {403: 6}
    for rejection in osis.rejections:
        assert creds.secret_access_key not in rejection.message
        assert (creds.session_token or "?") not in rejection.message


def hmac_sign(
    creds: Credentials,
    host: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    signed: list[str],
    when: datetime,
) -> str:
    """A minimal independent SigV4 (simple paths, no query): the ``Authorization`` value.

    ``signed`` is written into ``SignedHeaders`` exactly as given (order included).
    """
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    lowered = {k.lower(): v for k, v in {**headers, "Host": host}.items()}
    block = "".join(f"{n}:{lowered.get(n.lower(), '').strip()}\n" for n in sorted(signed))
    canonical = "\n".join(
        ["POST", path, "", block, ";".join(signed), hashlib.sha256(body).hexdigest()]
    )
    scope = f"{amz_date[:8]}/{REGION}/osis/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + creds.secret_access_key).encode()
    for part in (amz_date[:8], REGION, "osis", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )


def test_signed_headers_rules(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    body = events(1)
    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "X-Amz-Date": now.strftime("%Y%m%dT%H%M%SZ"),
        "X-Amz-Security-Token": creds.session_token or "",
    }
    full = ["content-type", "host", "x-amz-date", "x-amz-security-token"]

    def send(signed: list[str], extra: dict[str, str] | None = None) -> httpx.Response:
        auth = hmac_sign(creds, osis.endpoint_host, osis.path, body, headers, signed, now)
        sent = {**headers, **(extra or {}), "Authorization": auth}
        return client.post(osis.ingest_url, content=body, headers=sent)

    assert send(full).status_code == 200  # this small signer agrees with the emulator
    for name in ("host", "x-amz-date", "x-amz-security-token"):
        response = send([n for n in full if n != name])
        assert response.status_code == 403, name
        assert f"'{name}' must be a 'SignedHeader'" in response.text
    unsorted = send(["host", "content-type", "x-amz-date", "x-amz-security-token"])
    assert unsorted.status_code == 403 and "sorted" in unsorted.text
    assert send(["Content-Type", *full[1:]]).status_code == 403
    headers["X-Extra"] = "1"
    listed = send([*full, "x-extra"])
    assert listed.status_code == 200
    del headers["X-Extra"]
    absent = send([*full, "x-extra"], {})
    assert absent.status_code == 403 and "'x-extra' is not in the request" in absent.text
    assert send([n for n in full if n != "content-type"]).status_code == 200
    assert osis.count() == 3


def test_unsigned_content_type_accepted_unless_required(
    make: Callable[..., OsisEmulator], client: httpx.Client
) -> None:
    """botocore signing only host and x-amz-date, Content-Type added after signing (as
    opensearch-py's Urllib3AWSV4SignerAuth and aws-requests-auth send it)."""
    registry = CredentialRegistry()
    registry.add_key("AKIAEXAMPLEUNSIGNEDCT", "long-term-secret")
    keys = BotoCredentials("AKIAEXAMPLEUNSIGNEDCT", "long-term-secret")
    body = events(3)
    lenient = make(credentials=registry)
    strict = make(credentials=registry, require_signed_content_type=True)
    assert not lenient.require_signed_content_type
    for osis in (lenient, strict):
        headers = sign(osis.ingest_url, body, keys, headers={})
        assert "SignedHeaders=host;x-amz-date," in headers["Authorization"]
        sent = {**headers, "Content-Type": "application/json"}
        response = client.post(osis.ingest_url, content=body, headers=sent)
        if osis is lenient:
            assert response.status_code == 200, response.text
            assert osis.count() == 3
        else:
            assert response.status_code == 403
            assert "'content-type' must be a 'SignedHeader'" in response.text
            assert osis.count() == 0
        # the x-amz-* headers that are sent must still be signed, in both modes
        token = {**sent, "X-Amz-Security-Token": "unsigned"}
        refused = client.post(osis.ingest_url, content=body, headers=token)
        assert refused.status_code == 403, osis
        assert "'x-amz-security-token' must be a 'SignedHeader'" in refused.text


def test_x_amz_content_sha256(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    body = events(2)
    digest = hashlib.sha256(body).hexdigest()
    declared = {"Content-Type": "application/json", "X-Amz-Content-SHA256": digest}
    headers = sign(osis.ingest_url, body, creds, headers=declared)
    assert "x-amz-content-sha256" in headers["Authorization"]
    assert client.post(osis.ingest_url, content=body, headers=headers).status_code == 200
    other = body.replace(b"line 1", b"line 9")
    mismatch = client.post(osis.ingest_url, content=other, headers=headers)
    assert mismatch.status_code == 403
    assert mismatch.headers["x-amzn-errortype"] == "XAmzContentSHA256Mismatch"
    unsigned = {"Content-Type": "application/json", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    headers = sign(osis.ingest_url, body, creds, headers=unsigned)
    assert client.post(osis.ingest_url, content=body, headers=headers).status_code == 200
    # UNSIGNED-PAYLOAD means just that: the body is not covered by the signature
    assert client.post(osis.ingest_url, content=other, headers=headers).status_code == 200
    assert osis.logs()[-1] == "line 9"


def test_registry_and_lookup_callable(
    make: Callable[..., OsisEmulator], ra: RolesAnywhereEmulator, creds: Credentials
) -> None:
    registry = CredentialRegistry(ra)
    long_term = registry.add_key("AKIAEXAMPLELONGTERM1", "long-term-secret")
    with httpx.Client(trust_env=False) as c:
        osis = make(credentials=registry)
        assert (
            post(
                c,
                osis,
                events(1),
                BotoCredentials(long_term.access_key_id, long_term.secret_access_key),
            ).status_code
            == 200
        )
        assert post(c, osis, events(1), creds).status_code == 200  # via the fallback
        registry.remove(long_term.access_key_id)
        lost = post(c, osis, events(1), BotoCredentials("AKIAEXAMPLELONGTERM1", "long-term-secret"))
        assert lost.status_code == 401
        static = StaticCredentials("AKIACALLABLE00000001", "callable-secret")
        by_callable = make(
            credentials=lambda akid: static if akid == static.access_key_id else None
        )
        boto = BotoCredentials(static.access_key_id, static.secret_access_key)
        assert post(c, by_callable, events(1), boto).status_code == 200
        assert post(c, by_callable, events(1), creds).status_code == 401
    with pytest.raises(ValueError, match="credentials"):
        OsisEmulator()


def test_verify_signatures_off(make: Callable[..., OsisEmulator], client: httpx.Client) -> None:
    osis = make(verify_signatures=False, credentials=None)
    assert client.post(osis.ingest_url, content=events(4)).status_code == 200
    assert osis.count() == 4 and osis.batches[0].access_key_id is None


# --- scripted statuses, random faults, counting mode ---------------------------------------------


def test_scripted_statuses(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make()
    osis.script([503, 429, 200, 413, 408, 500])
    seen = [post(client, osis, events(2, f"r{i}"), creds).status_code for i in range(7)]
    assert seen == [503, 429, 200, 413, 408, 500, 200]
    assert osis.pending_script == []
    assert osis.logs() == ["r2 0", "r2 1", "r6 0", "r6 1"]
    assert osis.status_counts == {503: 1, 429: 1, 200: 2, 413: 1, 408: 1, 500: 1}
    assert osis.requests == 7 and osis.accepted_requests == 2
    # scripted answers come before any check: an unsigned request gets one too
    osis.script([502])
    unsigned = client.post(osis.ingest_url, content=b"[]")
    assert unsigned.status_code == 502 and unsigned.headers["content-type"].startswith("text/plain")
    assert client.post(osis.ingest_url, content=b"[]").status_code == 403
    with pytest.raises(ValueError):
        osis.script([99])


def _fault_run(seed: int) -> list[int]:
    statuses = []
    with (
        OsisEmulator(verify_signatures=False, fault_rate=0.3, seed=seed) as osis,
        httpx.Client(trust_env=False) as c,
    ):
        for i in range(60):
            statuses.append(c.post(osis.ingest_url, content=events(1, f"e{i}")).status_code)
        assert osis.count() == statuses.count(200)
        assert osis.stats().status_counts == {s: statuses.count(s) for s in set(statuses)}
    return statuses


def test_seeded_fault_rate_is_reproducible() -> None:
    first, again, other = _fault_run(7), _fault_run(7), _fault_run(8)
    assert first == again
    assert first != other
    faults = [s for s in first if s != 200]
    assert set(faults) <= {408, 429, 500, 503} and len(set(faults)) >= 2
    assert 5 <= len(faults) <= 35  # about 30 % of 60


def test_verify_and_count_mode(
    make: Callable[..., OsisEmulator], creds: Credentials, client: httpx.Client
) -> None:
    osis = make(store=False)
    total = 0
    for i in range(5):
        body = events(100, f"b{i}")
        total += len(body)
        assert post(client, osis, body, creds).status_code == 200
    assert osis.events_accepted == 500 and osis.bytes_accepted == total
    assert osis.count() == 0 and osis.batches == [] and osis.logs() == []
    bad = sign(osis.ingest_url, b"[]", creds)
    assert client.post(osis.ingest_url, content=b'[{"a":1}]', headers=bad).status_code == 403
    assert post(client, osis, b'{"not":"an array"}', creds).status_code == 400
    assert osis.events_accepted == 500 and osis.requests == 7


# --- transport: concurrency, keep-alive, chunked, TLS, fixtures ----------------------------------


def test_concurrent_posts(make: Callable[..., OsisEmulator], creds: Credentials) -> None:
    osis = make()
    threads_n, requests_n, batch = 8, 20, 50
    errors: list[str] = []

    def worker(t: int) -> None:
        with httpx.Client(trust_env=False, timeout=30) as c:
            for r in range(requests_n):
                body = json.dumps([{"log": f"t{t}-r{r}-{i}"} for i in range(batch)]).encode()
                response = post(c, osis, body, creds)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = {
        f"t{t}-r{r}-{i}" for t in range(threads_n) for r in range(requests_n) for i in range(batch)
    }
    assert osis.count() == len(expected) == threads_n * requests_n * batch
    assert set(osis.logs()) == expected and osis.duplicates() == {}
    assert osis.accepted_requests == threads_n * requests_n
    assert osis.events_accepted == len(expected)


def test_keep_alive_and_chunked_bodies(
    make: Callable[..., OsisEmulator], creds: Credentials
) -> None:
    osis = make()
    connection = http.client.HTTPConnection("127.0.0.1", osis.port, timeout=10)
    try:
        for i in range(3):
            body = events(2, f"k{i}")
            connection.request(
                "POST", osis.path, body=body, headers=sign(osis.ingest_url, body, creds)
            )
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"200 OK")
        sock = connection.sock
        body = events(3, "chunked")
        headers = {**sign(osis.ingest_url, body, creds), "Transfer-Encoding": "chunked"}
        connection.request(
            "POST",
            osis.path,
            body=iter([body[:10], body[10:]]),
            headers=headers,
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"200 OK")
        assert connection.sock is sock  # one connection for all four requests
    finally:
        connection.close()
    assert osis.count() == 9 and osis.logs()[-1] == "chunked 2"


def test_tls_fixture(
    rolesanywhere_tls_osis: OsisEmulator,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_pki: PKI,
) -> None:
    osis = rolesanywhere_tls_osis
    assert osis.url.startswith("https://") and osis.ca_bundle
    fresh = create_session(rolesanywhere_emulator, rolesanywhere_pki)
    with httpx.Client(
        verify=ssl.create_default_context(cafile=osis.ca_bundle), trust_env=False
    ) as c:
        response = post(c, osis, events(5), fresh)
        assert response.status_code == 200, response.text
    assert osis.count() == 5
    with httpx.Client(verify=True, trust_env=False) as c, pytest.raises(httpx.ConnectError):
        c.post(osis.ingest_url, content=b"[]")


def test_plain_fixture_checks_the_fixture_emulator(
    rolesanywhere_osis: OsisEmulator,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_pki: PKI,
    creds: Credentials,
    client: httpx.Client,
) -> None:
    osis = rolesanywhere_osis
    assert osis.path == "/log/ingest" and osis.region == REGION
    fresh = create_session(rolesanywhere_emulator, rolesanywhere_pki)
    assert post(client, osis, events(2), fresh).status_code == 200
    # credentials from another emulator (the module's) are unknown to this one
    assert post(client, osis, events(2), creds).status_code == 401
    assert osis.count() == 2


def test_file_database_and_recorded_requests(tmp_path: Any) -> None:
    database = tmp_path / "osis.sqlite3"
    with (
        OsisEmulator(verify_signatures=False, database=database, record_requests=True) as osis,
        httpx.Client(trust_env=False) as c,
    ):
        assert c.post(osis.ingest_url, content=events(3), headers={"X-Tag": "t"}).status_code == 200
        assert c.post(osis.ingest_url + "?q=1", content=b"{}").status_code == 400
        (first, status), (second, second_status) = osis.recorded_requests
        assert (status, second_status) == (200, 400)
        assert first.header("x-tag") == "t" and first.body == events(3)
        assert second.query == "q=1"
    with OsisEmulator(verify_signatures=False, database=database) as reopened:
        assert reopened.count() == 3 and reopened.logs() == ["line 0", "line 1", "line 2"]
        assert reopened.requests == 0
