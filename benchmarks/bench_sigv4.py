"""SigV4 signing of an OSIS push, ours beside four peers, 1 KiB and 1 MiB bodies, in one run.

Run: ``python benchmarks/bench_sigv4.py [--json PATH]``. Prints a table (median µs per
signature, ratio to ours), then the targets; exits 1 when one is missed or unmeasured (a peer is
unavailable) or when the signatures disagree.

Every contender signs an already-built request: ``POST /log/ingest`` to an OSIS pipeline,
``Content-Type: application/json``, a JSON array of log records, temporary credentials with an
800-character session token, service ``osis``, region ``us-east-1``. Building the request
(``httpx.Request``, botocore's ``AWSRequest``, awscrt's ``HttpRequest``) is done once, outside
the timing. Each signature is timed on its own (``perf_counter_ns`` around the call only);
before it, and untimed, the headers that signer added to the request the previous time are
removed (and awscrt's body stream rewound), so every signature starts from the same fresh
request. The cost of the timer and of calling the closure (the ``harness`` row) is subtracted.

Contenders (what is timed):

* ``ours: SigV4Auth`` -- ``flow = auth.sync_auth_flow(request); next(flow)``, and the flow's
  clean-up when it is dropped: credentials lookup, body hash, canonicalisation, setting the
  headers on the ``httpx.Request``. What users get. ``ours: sign()`` is the bare sans-I/O call
  on the same method, URL, header pairs and body.
* ``botocore add_auth`` -- ``SigV4Auth.add_auth(aws_request)`` on a pre-built ``AWSRequest``
  (it deletes and re-sets ``Authorization``, ``X-Amz-Date`` and ``X-Amz-Security-Token``
  itself; its ``body`` property prepares a copy of the request on every call, which is
  botocore's own cost).
* ``botocore in httpx.Auth`` -- the usual wrapper (:class:`BotocoreHttpxAuth` below): copy the
  ``httpx.Request`` into an ``AWSRequest``, ``add_auth``, copy the headers back; driven like
  ours through ``sync_auth_flow``.
* ``httpx-auth AWS4Auth`` -- driven the same way (``sync_auth_flow`` runs its ``auth_flow``).
  It also sets and signs ``X-Amz-Content-Sha256``.
* ``awscrt`` -- ``aws_sign_request(request, AwsSigningConfig(...)).result()``, a new config per
  signature as awscrt asks (the config carries the signing time, which every other contender
  reads from the clock on each call); the body is an ``io.BytesIO`` hashed by the signer.
  ``awscrt, config reused`` keeps one config: a lower bound for awscrt, shown for information.
* ``sha256(body)`` -- ``hashlib.sha256(body).hexdigest()``, the floor for large bodies.

Method: per size, each contender's iteration count is calibrated so a round lasts about
``ROUND_SECONDS``; ``ROUNDS`` rounds are run with the contenders interleaved (the order rotated
each round) so they share the machine's noise. A round yields its median call; ``µs/op`` is
the median of the rounds. The median call rather than the mean, because on a shared box the
mean mostly measures the other processes (calls the scheduler stretched); the mean (less the
calls stretched by 0.5 ms or more) is printed beside it. The collector stays on, but objects
alive before timing are frozen out of it (``gc.freeze``) so that a full pass over the peers'
modules does not land on whichever contender runs then. Before timing, one signature per
contender is checked for an ``Authorization`` header and, with the clock frozen at one
instant, ``SigV4Auth``, botocore, the botocore wrapper, awscrt and httpx-auth must produce the
signature ours (``sign(..., when=...)``) gives for the same signed headers.

Targets: 1 KiB: ours <= 0.9x awscrt and <= 0.3x botocore ``add_auth``; 1 MiB: ours <= 1.1x
the bare sha256 of the body.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import random
import statistics
import sys
import time
import types
from collections.abc import Callable, Generator, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import httpx
from bench_rows import Rows, add_json_option

from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.credentials import Credentials
from rolesanywhere.sigv4.signer import SigV4Signature, sign

HOST = "my-pipeline-abc123.us-east-1.osis.amazonaws.com"
PATH = "/log/ingest"
URL = f"https://{HOST}{PATH}"
SERVICE = "osis"
REGION = "us-east-1"
ACCESS_KEY = "ASIAQNZGKIQY56JQ7WML"
SECRET_KEY = "qJ5rGmZ0w8u1Xq2v3nLk4T6yHcB9eRdPfA7sUoWi"
#: The instant used to compare signatures (and the records' timestamp).
FROZEN = datetime(2024, 11, 19, 18, 7, 42, tzinfo=UTC)
SIZES = (("1 KiB", 1024), ("1 MiB", 1024 * 1024))
ROUNDS = 7
ROUND_SECONDS = 0.25
#: A call that took this much longer than its round's median was interrupted (another process
#: ran: time slices are 0.75 ms or more); it is left out of the round's mean.
INTERRUPTED_NS = 500_000
#: ours <= this x awscrt and <= this x botocore at 1 KiB; ours <= this x sha256 at 1 MiB.
TARGET_AWSCRT = 0.9
TARGET_BOTOCORE = 0.3
TARGET_SHA256 = 1.1

OURS = "ours: SigV4Auth"
BARE = "ours: sign()"
BOTOCORE = "botocore add_auth"
WRAPPED = "botocore in httpx.Auth"
HTTPX_AUTH = "httpx-auth AWS4Auth"
AWSCRT = "awscrt aws_sign_request"
AWSCRT_REUSED = "awscrt, config reused"
SHA256 = "sha256(body)"
HARNESS = "harness"

#: Headers each signer adds, removed (untimed) before each signature.
_OURS_ADDS = ("x-amz-date", "x-amz-security-token", "authorization")
_HTTPX_AUTH_ADDS = (*_OURS_ADDS, "x-amz-content-sha256")


def session_token() -> str:
    """A realistic STS session token: 812 base64 characters, fixed."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    rng = random.Random(20241119)
    return "IQoJb3JpZ2luX2VjE" + "".join(rng.choice(alphabet) for _ in range(795))


def log_body(size: int) -> bytes:
    """A compact JSON array of ``{"date": ..., "log": ...}`` records, exactly ``size`` bytes."""
    rng = random.Random(size)
    paths = ("/api/v1/items", "/api/v1/orders", "/healthz", "/static/app.js", "/login")
    agents = ("curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)", "python-httpx/0.28.1")
    parts: list[str] = []
    length = 1  # "["
    stamp = FROZEN.timestamp() + 0.399
    while True:
        line = (
            f"10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [19/Nov/2024:18:07:42 +0000] "
            f'"GET {rng.choice(paths)}/{rng.randrange(10**6)} HTTP/1.1" '
            f"{rng.choice((200, 200, 200, 304, 404, 500))} {rng.randrange(10**5)} "
            f'"-" "{rng.choice(agents)}"'
        )
        record = json.dumps({"date": round(stamp, 3), "log": line}, separators=(",", ":"))
        if length + len(record) + 1 + 160 > size:
            break
        parts.append(record)
        length += len(record) + 1
        stamp += 0.001
    # The last record is padded so the array is exactly ``size`` bytes long.
    last = json.dumps({"date": round(stamp, 3), "log": ""}, separators=(",", ":"))
    pad = size - length - len(last) - 1
    parts.append(last.replace('"log":""', f'"log":"{"x" * pad}"'))
    body = ("[" + ",".join(parts) + "]").encode()
    assert len(body) == size, (len(body), size)
    json.loads(body)
    return body


def _strip(headers: Any, names: Iterable[str]) -> None:
    """Delete ``names`` from a headers object when present (httpx, botocore or awscrt)."""
    for name in names:
        if hasattr(headers, "remove"):  # awscrt.http.HttpHeaders
            if headers.get(name) is not None:
                headers.remove(name)
        elif name in headers:
            del headers[name]


def signature_of(authorization: str | None) -> str:
    """The ``Signature=`` part of an ``Authorization`` value ('' when absent)."""
    if not authorization:
        return ""
    return authorization.rpartition("Signature=")[2]


# --- contenders -------------------------------------------------------------------------------


def _nothing() -> None:
    return None


@dataclass
class Contender:
    name: str
    #: One signature (timed).
    op: Callable[[], object] = _nothing
    #: Undo what ``op`` changed (untimed).
    reset: Callable[[], object] = _nothing
    #: The ``Authorization`` the last ``op`` produced (None for rows that do not sign).
    authorization: Callable[[], str | None] = lambda: None
    #: The signature with the clock frozen at :data:`FROZEN`, and the ``sign()`` keywords that
    #: make ours sign the same headers (None: not checked).
    frozen: Callable[[], str] | None = None
    frozen_like: dict[str, Any] = field(default_factory=dict)
    unavailable: str = ""
    signs: bool = True
    iterations: int = 0
    #: Per round: the median call, and the mean call (interrupted calls left out), in µs.
    samples: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)


@dataclass
class Case:
    label: str
    body: bytes
    token: str

    def httpx_request(self) -> httpx.Request:
        return httpx.Request(
            "POST", URL, headers={"Content-Type": "application/json"}, content=self.body
        )

    def credentials(self) -> Credentials:
        return Credentials(
            ACCESS_KEY, SECRET_KEY, self.token, datetime.now(UTC) + timedelta(hours=1)
        )


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _FrozenDatetime:
        frozen = cls.fromtimestamp(FROZEN.timestamp(), UTC)
        return frozen if tz is None else frozen.astimezone(tz)


def _frozen_clock() -> AbstractContextManager[Any]:
    """Freeze ``time.time`` (read by ours) at :data:`FROZEN`."""
    return mock.patch.object(time, "time", return_value=FROZEN.timestamp())


def _run_flow(auth: httpx.Auth, request: httpx.Request) -> None:
    flow = auth.sync_auth_flow(request)
    next(flow)


def ours(case: Case) -> list[Contender]:
    auth = SigV4Auth(case.credentials(), service=SERVICE, region=REGION)
    request = case.httpx_request()
    items = request.headers.multi_items()
    credentials = case.credentials()

    def frozen_flow() -> str:
        _strip(request.headers, _OURS_ADDS)
        with _frozen_clock():
            _run_flow(auth, request)
        return signature_of(request.headers.get("authorization"))

    def bare() -> SigV4Signature:
        return sign(
            "POST",
            URL,
            items,
            case.body,
            credentials=credentials,
            service=SERVICE,
            region=REGION,
        )

    return [
        Contender(
            OURS,
            op=lambda: _run_flow(auth, request),
            reset=lambda: _strip(request.headers, _OURS_ADDS),
            authorization=lambda: request.headers.get("authorization"),
            frozen=frozen_flow,
        ),
        Contender(
            BARE,
            op=bare,
            authorization=lambda: bare().authorization,
        ),
    ]


def botocore_contenders(case: Case) -> list[Contender]:
    try:
        import botocore.auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials
    except ImportError as exc:
        reason = f"unavailable: {exc}"
        return [Contender(BOTOCORE, unavailable=reason), Contender(WRAPPED, unavailable=reason)]

    class BotocoreHttpxAuth(httpx.Auth):
        """The usual way to use botocore's signer with httpx."""

        requires_request_body = True

        def __init__(self, credentials: BotoCredentials, service: str, region: str) -> None:
            self.signer = botocore.auth.SigV4Auth(credentials, service, region)

        def auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]:
            aws_request = AWSRequest(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                data=request.content,
            )
            self.signer.add_auth(aws_request)
            request.headers.update(dict(aws_request.headers.items()))
            yield request

    credentials = BotoCredentials(ACCESS_KEY, SECRET_KEY, case.token)
    signer = botocore.auth.SigV4Auth(credentials, SERVICE, REGION)
    aws_request = AWSRequest(
        method="POST", url=URL, headers={"Content-Type": "application/json"}, data=case.body
    )
    wrapper = BotocoreHttpxAuth(credentials, SERVICE, REGION)
    request = case.httpx_request()

    def frozen_clock() -> AbstractContextManager[Any]:
        return mock.patch.object(
            botocore.auth,
            "get_current_datetime",
            return_value=FROZEN.replace(tzinfo=None),
        )

    def frozen_add_auth() -> str:
        _strip(aws_request.headers, _OURS_ADDS)
        with frozen_clock():
            signer.add_auth(aws_request)
        return signature_of(aws_request.headers.get("Authorization"))

    def frozen_wrapper() -> str:
        _strip(request.headers, _OURS_ADDS)
        with frozen_clock():
            _run_flow(wrapper, request)
        return signature_of(request.headers.get("authorization"))

    return [
        Contender(
            BOTOCORE,
            op=lambda: signer.add_auth(aws_request),
            reset=lambda: _strip(aws_request.headers, _OURS_ADDS),
            authorization=lambda: aws_request.headers.get("Authorization"),
            frozen=frozen_add_auth,
        ),
        Contender(
            WRAPPED,
            op=lambda: _run_flow(wrapper, request),
            reset=lambda: _strip(request.headers, _OURS_ADDS),
            authorization=lambda: request.headers.get("authorization"),
            frozen=frozen_wrapper,
            # the wrapper hands botocore every header, and botocore signs Content-Length too
            frozen_like={"signed_headers": ("host", "content-type", "content-length")},
        ),
    ]


def httpx_auth_contender(case: Case) -> list[Contender]:
    try:
        import httpx_auth
        import httpx_auth._aws as httpx_auth_aws
    except ImportError as exc:
        return [Contender(HTTPX_AUTH, unavailable=f"unavailable: {exc}")]
    auth = httpx_auth.AWS4Auth(
        access_id=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        service=SERVICE,
        security_token=case.token,
    )
    request = case.httpx_request()

    def frozen() -> str:
        _strip(request.headers, _HTTPX_AUTH_ADDS)
        fake = types.SimpleNamespace(datetime=_FrozenDatetime, timezone=timezone)
        with mock.patch.object(httpx_auth_aws, "datetime", fake):
            _run_flow(auth, request)
        return signature_of(request.headers.get("authorization"))

    return [
        Contender(
            HTTPX_AUTH,
            op=lambda: _run_flow(auth, request),
            reset=lambda: _strip(request.headers, _HTTPX_AUTH_ADDS),
            authorization=lambda: request.headers.get("authorization"),
            frozen=frozen,
            # it always sets and signs X-Amz-Content-Sha256
            frozen_like={"content_sha256": True},
        )
    ]


def awscrt_contenders(case: Case) -> list[Contender]:
    try:
        from awscrt.auth import (
            AwsCredentialsProvider,
            AwsSignatureType,
            AwsSigningAlgorithm,
            AwsSigningConfig,
            aws_sign_request,
        )
        from awscrt.http import HttpHeaders, HttpRequest
    except ImportError as exc:
        reason = f"unavailable: {exc}"
        return [Contender(AWSCRT, unavailable=reason), Contender(AWSCRT_REUSED, unavailable=reason)]

    provider = AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY, case.token)

    def config(when: datetime | None = None) -> AwsSigningConfig:
        return AwsSigningConfig(
            algorithm=AwsSigningAlgorithm.V4,
            signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=provider,
            region=REGION,
            service=SERVICE,
            date=when,
        )

    stream = io.BytesIO(case.body)
    headers = HttpHeaders([("Host", HOST), ("Content-Type", "application/json")])
    request = HttpRequest("POST", PATH, headers, stream)
    reused = config()

    def reset() -> None:
        _strip(headers, _OURS_ADDS)
        stream.seek(0)

    def frozen() -> str:
        reset()
        aws_sign_request(request, config(FROZEN)).result()
        return signature_of(headers.get("Authorization"))

    return [
        Contender(
            AWSCRT,
            op=lambda: aws_sign_request(request, config()).result(),
            reset=reset,
            authorization=lambda: headers.get("Authorization"),
            frozen=frozen,
        ),
        Contender(
            AWSCRT_REUSED,
            op=lambda: aws_sign_request(request, reused).result(),
            reset=reset,
            authorization=lambda: headers.get("Authorization"),
        ),
    ]


def contenders_for(case: Case) -> list[Contender]:
    body = case.body
    sha256 = hashlib.sha256
    return [
        *ours(case),
        *botocore_contenders(case),
        *httpx_auth_contender(case),
        *awscrt_contenders(case),
        Contender(SHA256, op=lambda: sha256(body).hexdigest(), signs=False),
        Contender(HARNESS, signs=False),
    ]


# --- checks and timing ------------------------------------------------------------------------


def check(case: Case, contenders: list[Contender]) -> tuple[list[str], list[str]]:
    """``(problems, contenders compared)``: a problem is a contender that set no
    ``Authorization``, or a signature (clock frozen) that differs from ours (``sign`` with
    ``when=``) for the same signed headers."""
    problems: list[str] = []
    compared: list[str] = []
    credentials = case.credentials()
    items = case.httpx_request().headers.multi_items()
    for contender in contenders:
        if contender.unavailable or not contender.signs:
            continue
        contender.reset()
        contender.op()
        if not contender.authorization():
            problems.append(f"{case.label} {contender.name}: no Authorization header")
        if contender.frozen is None:
            continue
        expected = sign(
            "POST",
            URL,
            items,
            case.body,
            credentials=credentials,
            service=SERVICE,
            region=REGION,
            when=FROZEN,
            **contender.frozen_like,
        ).signature
        try:
            got = contender.frozen()
        except Exception as exc:  # a peer's internals moved: skip, and say so
            print(f"note: {case.label} {contender.name}: clock not frozen ({exc!r}), not compared")
            continue
        compared.append(contender.name)
        if got != expected:
            problems.append(
                f"{case.label} {contender.name}: signature {got[:16]}... != ours {expected[:16]}..."
            )
    return problems, compared


def one_round(contender: Contender, iterations: int) -> None:
    """Time ``iterations`` calls of ``op``, each alone after an untimed reset; record the
    median call and the mean of the calls the OS did not interrupt (:data:`INTERRUPTED_NS`)."""
    op, reset, clock = contender.op, contender.reset, time.perf_counter_ns
    times = [0] * iterations
    for i in range(iterations):
        reset()
        start = clock()
        op()
        times[i] = clock() - start
    median = statistics.median(times)
    kept = [t for t in times if t <= median + INTERRUPTED_NS]
    contender.samples.append(median / 1000)
    contender.means.append(sum(kept) / len(kept) / 1000)


def calibrate(contender: Contender) -> None:
    """Pick the iteration count that makes a round last about :data:`ROUND_SECONDS`."""
    iterations = 1
    while True:
        start = time.perf_counter()
        one_round(contender, iterations)
        elapsed = time.perf_counter() - start
        if elapsed > ROUND_SECONDS / 8:
            break
        iterations *= 2
    contender.iterations = max(1, round(iterations * ROUND_SECONDS / elapsed))


def measure(contenders: list[Contender]) -> None:
    live = [c for c in contenders if not c.unavailable]
    for contender in live:
        calibrate(contender)
        contender.samples.clear()
        contender.means.clear()
    # Objects alive now (modules, peers) are not the signers' garbage: keep them out of the
    # collector's full passes, which would otherwise land on whichever contender runs then.
    gc.collect()
    gc.freeze()
    for round_no in range(ROUNDS):
        shift = round_no % len(live)
        for contender in live[shift:] + live[:shift]:
            one_round(contender, contender.iterations)


# --- report -----------------------------------------------------------------------------------


def write_rows(path: str | None, results: dict[tuple[str, str], float | None]) -> None:
    rows = Rows("bench_sigv4")
    targets = {("1 KiB", AWSCRT): TARGET_AWSCRT, ("1 KiB", BOTOCORE): TARGET_BOTOCORE,
               ("1 MiB", SHA256): TARGET_SHA256}  # fmt: skip
    peers = (BOTOCORE, WRAPPED, HTTPX_AUTH, AWSCRT, AWSCRT_REUSED)
    for label, _ in SIZES:
        for name in (SHA256, *peers):
            rows.add(
                f"SigV4 of a {label} OSIS push (SigV4Auth)",
                "us",
                results[label, OURS],
                name,
                "floor" if name == SHA256 else "peer",
                results.get((label, name)),
                target=targets.get((label, name)),
            )
    rows.write(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    add_json_option(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    token = session_token()
    cases = [Case(label, log_body(size), token) for label, size in SIZES]
    failed = False
    results: dict[tuple[str, str], float | None] = {}
    tables: list[tuple[Case, list[Contender], float, float]] = []
    for case in cases:
        contenders = contenders_for(case)
        problems, compared = check(case, contenders)
        for problem in problems:
            print(f"CHECK FAILED: {problem}")
        if not problems:
            print(
                f"{case.label}: every signer set Authorization; same signature as ours' sign() "
                f"at {FROZEN:%Y-%m-%dT%H:%M:%SZ}: {', '.join(compared)}"
            )
        failed |= bool(problems)
        measure(contenders)
        harness = next(c for c in contenders if c.name == HARNESS)
        overhead = statistics.median(harness.samples)
        for contender in contenders:
            if contender.name != HARNESS:
                results[case.label, contender.name] = (
                    None
                    if contender.unavailable
                    else statistics.median(contender.samples) - overhead
                )
        tables.append((case, contenders, overhead, statistics.median(harness.means)))

    print(
        f"SigV4 of POST {PATH} ({SERVICE}, {len(token)}-char session token), "
        f"{ROUNDS} interleaved rounds; load average at start: {load}"
    )
    print(f"{'size':<7} {'contender':<24} {'µs/op':>9} {'x ours':>7} {'spread':>7} {'mean':>9}")
    for case, contenders, overhead, mean_overhead in tables:
        base = results[case.label, OURS]
        for contender in contenders:
            value = results.get((case.label, contender.name))
            if contender.name == HARNESS:
                continue
            if value is None:
                print(f"{case.label:<7} {contender.name:<24} {contender.unavailable}")
                continue
            spread = (max(contender.samples) - min(contender.samples)) / value * 100
            mean = statistics.median(contender.means) - mean_overhead
            ratio = f"{value / base:>6.2f}x" if base else "      -"
            print(
                f"{case.label:<7} {contender.name:<24} {value:>9.1f} {ratio} {spread:>6.0f}% "
                f"{mean:>9.1f}"
            )
        print(f"{case.label:<7} ({len(case.body)} B body; harness {overhead:.2f} µs subtracted)")
    print(
        "µs/op: median of the rounds' median call; spread: (max-min)/µs/op over the rounds;\n"
        "mean: median of the rounds' mean call (OS-interrupted calls left out), shown only:\n"
        "on a shared box it mostly measures the other processes."
    )

    targets = (
        ("1 KiB", AWSCRT, TARGET_AWSCRT),
        ("1 KiB", BOTOCORE, TARGET_BOTOCORE),
        ("1 MiB", SHA256, TARGET_SHA256),
    )
    for label, peer, factor in targets:
        mine, theirs = results[label, OURS], results[label, peer]
        if mine is None or theirs is None:
            print(f"target {label}: ours <= {factor}x {peer}: UNMEASURED ({peer} unavailable)")
            failed = True
            continue
        ok = mine <= factor * theirs
        failed |= not ok
        print(
            f"target {label}: ours <= {factor}x {peer}: {mine:.1f} µs vs "
            f"{factor * theirs:.1f} µs ({mine / theirs:.2f}x): {'met' if ok else 'MISSED'}"
        )
    reused = results["1 KiB", AWSCRT_REUSED]
    mine = results["1 KiB", OURS]
    if reused is not None and mine is not None:
        print(
            f"  (1 KiB, for information: ours = {mine / reused:.2f}x awscrt with a reused config)"
        )
    print(f"run time {time.perf_counter() - started:.0f} s")
    write_rows(args.json, results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
