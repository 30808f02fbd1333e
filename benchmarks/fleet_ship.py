"""A fleet of ``rolesanywhere ship`` processes against one OSIS pipeline that is too small for it.

A discrete-event simulation (issue 12, target 4): a heap of events on a simulated clock, no
threads, no sleeping, no HTTP. Each of ``shippers`` hosts runs the real shipping engine, a
:class:`~rolesanywhere.ship.core.Core` built with the settings ``rolesanywhere ship`` uses
(``shipper_config(ShipConfig(...), max_in_flight=1, whole_submissions=True)``: one request in
flight, backoff 0.5 s doubling to 60 s, full jitter), its own seeded ``rand`` and the shared
simulated clock. The benchmark only does what the shell does (``ship/shipper.py`` and
``cli/ship.py``): every ``poll`` seconds (the tail loop's 0.2 s idle wait) it reads what the
host's log gained, in chunks of at most ``batch_bytes / 4``, and submits each as one ticket
unless more than ``max_pending_bytes`` are unsettled (``submit`` would block: the lines stay in
the file); its worker takes a batch when one is due (``take``, ``wake_in``), and drives the
core's ``deliver`` flow: ``Send`` goes to the pipeline, ``Sleep`` is a timer on the heap.

The pipeline is one :class:`~rolesanywhere.ratelimit.TokenBucket` (as the OSIS emulator's
optional capacity): ``rate`` = ``capacity_for`` hosts' load in events/s, ``burst`` = its buffer,
``buffer_seconds`` of capacity (2 s by default, 30,000 events for 150 hosts: several full 1 MiB
batches of ~4,500 events fit, so a large batch is never refused for ever, while the buffer is
small beside the run, so it cannot hide an overload; never less than two full batches). A
request arrives half its round trip (20-50 ms) after it is sent; it is accepted when
``try_take(len(batch))`` succeeds, else answered 429; the answer comes back after the other half.

Reported: offered load and capacity, delivered events/s (accepted by the pipeline after the
warm-up) as a share of capacity (target >= 90 %), the bookkeeping (generated = at source +
submitted; submitted = delivered + pending + quarantined; lost = the difference, target 0), 429
answers (count, per second, share of requests), the autocorrelation of the 429s-per-second series
at lags 2..2 x ``backoff_max`` (the largest ``|r|`` and its lag, beside the +-2/sqrt(n) band of a
series without memory: a fleet retrying in waves shows a large ``r`` at the wave's period; r(1),
shown apart, is high in any queue whose bursts straddle a second's boundary), the
p50/p99 latency from a line's writing to its delivery, and each host's share of the deliveries.
The hosts start at the same instant by default (a fleet back from a power cut, or deployed at
once: the worst case for retries in step; ``start_spread`` spreads them). The "synchronized"
control runs the same fleet with every ``rand`` fixed to 1.0 (no jitter: each
pause is the backoff ceiling), which is what waves look like.

Run: ``python benchmarks/fleet_ship.py [--seconds 900] [--shippers 200] [--json PATH]``;
:func:`run_ship_fleet` returns the figures and the per-second series (for plots). Exit status 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rows import Rows, add_json_option

from rolesanywhere.ratelimit import TokenBucket
from rolesanywhere.ship.batch import Batch, Ticket
from rolesanywhere.ship.build import shipper_config
from rolesanywhere.ship.config.model import ShipConfig
from rolesanywhere.ship.core import Action, Answer, Core, Flow, Send, Sleep
from rolesanywhere.ship.encoder import Encoded
from rolesanywhere.ship.shipperconfig import ShipperConfig

__all__ = ["autocorrelation", "run_ship_fleet", "ship_config"]

#: Target: the pipeline's accepted events/s over its capacity, at least this.
DELIVERY_TARGET = 0.90
#: Target: the largest |autocorrelation| of the 429s per second at lags 2..2 x backoff_max
#: (the control without jitter shows about 0.6; a series without memory stays within 2/sqrt(n)).
WAVE_TARGET = 0.3

_POOL = 2048  # distinct encoded lines, reused round the pool

# heap event kinds
_FEED, _WAKE, _ARRIVE, _ANSWER, _WOKE = range(5)


def ship_config(**overrides: Any) -> ShipperConfig:
    """The engine settings of ``rolesanywhere ship`` with its defaults (as ``cli/ship.py``)."""
    config = ShipConfig(paths=("/var/log/app.log",), url=_URL, region="us-east-1")
    options: dict[str, Any] = {"max_in_flight": 1, "whole_submissions": True}
    options.update(overrides)
    return shipper_config(config, **options)


_URL = "https://pipeline.us-east-1.osis.amazonaws.com/log/ingest"


def autocorrelation(series: list[float], lags: range) -> list[float]:
    """Sample autocorrelation r(k) of ``series`` for each lag (0 where it is undefined)."""
    n = len(series)
    if n < 2:
        return [0.0 for _ in lags]
    mean = sum(series) / n
    dev = [x - mean for x in series]
    var = sum(d * d for d in dev)
    if var == 0:
        return [0.0 for _ in lags]
    return [sum(dev[i] * dev[i + k] for i in range(n - k)) / var if k < n else 0.0 for k in lags]


def _percentile(samples: list[tuple[float, int]], q: float) -> float | None:
    """Weighted percentile of ``(value, weight)`` pairs (``None`` when empty)."""
    total = sum(w for _, w in samples)
    if not total:
        return None
    rank = q * total
    seen = 0
    for value, weight in sorted(samples):
        seen += weight
        if seen >= rank:
            return value
    return samples[-1][0]  # pragma: no cover - rounding


class _Worker:
    """One of a host's ``max_in_flight`` workers: idle, or driving one delivery flow."""

    __slots__ = ("flow", "generation", "waiting")

    def __init__(self) -> None:
        self.flow: Flow | None = None
        self.generation = 0  # bumped to cancel a scheduled look
        self.waiting = False  # idle, waiting for a notify or a timer


class _Host:
    __slots__ = ("core", "index", "read", "start", "workers")

    def __init__(self, index: int, core: Core, start: float, workers: int) -> None:
        self.index = index
        self.core = core
        self.start = start
        self.read = 0  # lines of its log read (submitted) so far
        self.workers = [_Worker() for _ in range(workers)]


class _Fleet:
    def __init__(
        self,
        *,
        shippers: int,
        config: ShipperConfig,
        rate: float,
        line_bytes: int,
        capacity: float,
        buffer: float,
        latency: tuple[float, float],
        poll: float,
        seconds: float,
        seed: int,
        jitter: bool,
        start_spread: float,
        retry_after: float | None,
    ) -> None:
        self.now = 0.0
        self.config = config
        self.rate = rate
        self.poll = poll
        self.seconds = seconds
        self.latency = latency
        self.retry_after = retry_after
        self.rng = random.Random(f"fleet:{seed}")
        self.heap: list[tuple[float, int, int, int, int, Any]] = []
        self.seq = 0
        clock: Callable[[], float] = self.clock
        self.hosts: list[_Host] = []
        for i in range(shippers):
            rand = random.Random(f"host:{seed}:{i}").random if jitter else (lambda: 1.0)
            core = Core(config, clock=clock, rand=rand)
            start = self.rng.uniform(0.0, start_spread) if start_spread else 0.0
            self.hosts.append(_Host(i, core, start, config.max_in_flight))
        # one pool of distinct lines, encoded once by the real encoder
        pattern = "<134>1 2025-01-01T00:00:00Z web-{:04d} app 4242 ID47 - GET /api/v1/items/{} 200 "
        lines = [pattern.format(j % 9999, j) for j in range(_POOL)]
        lines = [(line + "x" * line_bytes)[:line_bytes] for line in lines]
        pool = self.hosts[0].core.encoder.encode(lines, None, 1.7e9).items if shippers else []
        self.pool = pool + pool
        self.prefix = [0]
        for item in self.pool:
            self.prefix.append(self.prefix[-1] + len(item))
        self.item_bytes = self.prefix[_POOL] / _POOL if shippers else 0.0
        # chunks as the tail loop polls them: at most batch_bytes / 4, whole lines
        self.chunk_events = max(1, int(max(config.batch_bytes // 4, 4096) // (self.item_bytes + 1)))
        self.chunk_events = min(self.chunk_events, _POOL)
        # a full batch must fit in the buffer, or it would be refused for ever
        full_batch = config.batch_bytes / (self.item_bytes + 1) if shippers else 1.0
        self.bucket = TokenBucket(capacity, max(buffer, 2 * full_batch), clock=clock)
        bins = math.ceil(seconds)
        self.throttled = [0] * bins
        self.accepted = [0] * bins
        self.requests = 0
        self.answers_429 = 0
        self.accepted_events = 0
        self.latencies: list[tuple[float, int]] = []
        self.host_delivered = [0] * shippers

    def clock(self) -> float:
        return self.now

    def push(self, at: float, kind: int, host: int, worker: int, data: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, host, worker, data))

    # --- the tail loop: read what the log gained, submit it in chunks -------------------------

    def feed(self, host: _Host) -> None:
        core = self.core_of(host)
        written = int((self.now - host.start) * self.rate)
        wake = False
        limit = self.config.max_pending_bytes
        while host.read < written and not core.full(limit):  # else submit blocks: lines wait
            n = min(written - host.read, self.chunk_events)
            off = host.read % _POOL
            items = self.pool[off : off + n]
            encoded = Encoded(items=items, nbytes=self.prefix[off + n] - self.prefix[off])
            # the token: when its lines were written, on average, and how many
            token = (host.start + (host.read + (n - 1) / 2) / self.rate, n)
            ticket = Ticket(token)
            wake = core.add(encoded, ticket, self.now) or wake
            core.seal(ticket)
            host.read += n
        self.settled(host)
        if wake:  # the shell's notify_all: every waiting worker looks again
            for w, worker in enumerate(host.workers):
                if worker.waiting:
                    self.look(host, w)
        self.push(self.now + self.poll, _FEED, host.index, 0)

    @staticmethod
    def core_of(host: _Host) -> Core:
        return host.core

    def settled(self, host: _Host) -> None:
        for mean_written, n in host.core.take_completed():
            self.latencies.append((self.now - mean_written, n))

    # --- the worker: take a due batch, drive its flow -----------------------------------------

    def look(self, host: _Host, w: int) -> None:
        worker = host.workers[w]
        worker.generation += 1
        batch = host.core.take(self.now)
        if batch is None:
            worker.waiting = True
            wake = host.core.wake_in(self.now)
            if wake is not None:
                self.push(self.now + wake, _WAKE, host.index, w, worker.generation)
            return
        worker.waiting = False
        worker.flow = host.core.deliver(batch)
        self.perform(host, w, next(worker.flow))

    def advance(self, host: _Host, w: int, outcome: object) -> None:
        worker = host.workers[w]
        assert worker.flow is not None
        try:
            action: Action | None = worker.flow.send(outcome)
        except StopIteration:
            action = None
        self.settled(host)
        self.perform(host, w, action)

    def perform(self, host: _Host, w: int, action: Action | None) -> None:
        while action is not None:
            if isinstance(action, Send):
                trip = self.rng.uniform(*self.latency)
                self.push(self.now + trip / 2, _ARRIVE, host.index, w, (action.batch, trip / 2))
                return
            if isinstance(action, Sleep):
                self.push(self.now + action.seconds, _WOKE, host.index, w)
                return
            # a Quarantine: the dead letter is written (never happens here: no 400s)
            flow = host.workers[w].flow
            assert flow is not None
            try:
                action = flow.send(True)
            except StopIteration:
                action = None
        host.workers[w].flow = None
        self.look(host, w)

    # --- the pipeline -------------------------------------------------------------------------

    def arrive(self, host: _Host, w: int, batch: Batch, back: float) -> None:
        self.requests += 1
        n = len(batch.items)
        second = int(self.now)
        if self.bucket.try_take(n):
            self.accepted_events += n
            self.accepted[second] += n
            self.host_delivered[host.index] += n
            answer = Answer(200, "http", "")
        else:
            self.answers_429 += 1
            self.throttled[second] += 1
            answer = Answer(429, "http", "Too Many Requests", self.retry_after)
        self.push(self.now + back, _ANSWER, host.index, w, answer)

    def run(self) -> None:
        for host in self.hosts:
            self.push(host.start, _FEED, host.index, 0)
            for w in range(len(host.workers)):
                self.push(host.start, _WAKE, host.index, w, 0)
        end = self.seconds
        heap = self.heap
        while heap and heap[0][0] < end:
            at, _, kind, h, w, data = heapq.heappop(heap)
            self.now = at
            host = self.hosts[h]
            if kind == _FEED:
                self.feed(host)
            elif kind == _WAKE:
                worker = host.workers[w]
                if worker.flow is None and data == worker.generation:
                    self.look(host, w)
            elif kind == _ARRIVE:
                batch, back = data
                self.arrive(host, w, batch, back)
            elif kind == _ANSWER:
                self.advance(host, w, data)
            else:  # _WOKE
                self.advance(host, w, None)
        self.now = end


def run_ship_fleet(
    shippers: int = 200,
    capacity_for: float = 150,
    seconds: float = 900.0,
    seed: int = 0,
    *,
    events_per_second: float = 100.0,
    line_bytes: int = 200,
    buffer_seconds: float = 2.0,
    latency: tuple[float, float] = (0.020, 0.050),
    poll: float = 0.2,
    warmup: float = 60.0,
    jitter: bool = True,
    start_spread: float = 0.0,
    retry_after: float | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Simulate ``shippers`` hosts, each writing ``events_per_second`` lines of ``line_bytes``,
    against a pipeline accepting ``capacity_for`` hosts' load, for ``seconds`` of simulated time.

    ``jitter=False`` fixes every ``rand`` to 1.0 (the synchronized control). ``start_spread``:
    hosts start uniformly within that many seconds (0: all at once, as after a power cut).
    ``retry_after``: the pipeline's 429s carry it. ``overrides``: more ``ShipperConfig``
    settings (``backoff_max=30.0``...). Returns the figures and the per-second ``series``.
    """
    started = time.perf_counter()
    config = ship_config(**overrides)
    quiet = logging.getLogger("rolesanywhere.ship.shipper")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # a retry warning per host and backoff step otherwise
    capacity = capacity_for * events_per_second
    fleet = _Fleet(
        shippers=shippers,
        config=config,
        rate=events_per_second,
        line_bytes=line_bytes,
        capacity=capacity,
        buffer=buffer_seconds * capacity,
        latency=latency,
        poll=poll,
        seconds=seconds,
        seed=seed,
        jitter=jitter,
        start_spread=start_spread,
        retry_after=retry_after,
    )
    try:
        fleet.run()
    finally:
        quiet.setLevel(level)
    cores = [host.core for host in fleet.hosts]
    generated = sum(int(max(0.0, seconds - host.start) * events_per_second) for host in fleet.hosts)
    submitted = sum(c.events_submitted for c in cores)
    delivered = sum(c.events_delivered for c in cores)
    pending = sum(c.pending_events for c in cores)
    quarantined = sum(c.events_quarantined for c in cores)
    at_source = generated - sum(host.read for host in fleet.hosts)
    first = min(int(warmup), max(len(fleet.accepted) - 1, 0))
    window = max(seconds - first, 1e-9)
    steady = sum(fleet.accepted[first:]) / window
    throttled = fleet.throttled[first:]
    # lag 1 is left out of the largest |r|: a burst straddling a second's boundary correlates
    # neighbouring bins in any queue; a retry wave shows at its period, seconds to minutes
    lags = range(2, int(2 * config.backoff_max) + 1)
    series = [float(x) for x in throttled]
    r = autocorrelation(series, lags)
    peak = max(range(len(r)), key=lambda i: abs(r[i])) if r else 0
    shares = sorted(d / (max(seconds - h.start, 1e-9) * events_per_second)
                    for d, h in zip(fleet.host_delivered, fleet.hosts, strict=True))  # fmt: skip
    return {
        "shippers": shippers,
        "capacity_for": capacity_for,
        "seconds": seconds,
        "seed": seed,
        "jitter": jitter,
        "events_per_second": events_per_second,
        "event_bytes": fleet.item_bytes,
        "offered": shippers * events_per_second,
        "capacity": capacity,
        "buffer": fleet.bucket.burst,
        "backoff_base": config.backoff_base,
        "backoff_max": config.backoff_max,
        "delivered_rate": steady,
        "delivered_share": steady / capacity if capacity else 0.0,
        "generated": generated,
        "at_source": at_source,
        "submitted": submitted,
        "delivered": delivered,
        "pending": pending,
        "quarantined": quarantined,
        "lost": submitted - delivered - pending - quarantined,
        "accepted_unanswered": fleet.accepted_events - delivered,
        "requests": fleet.requests,
        "throttled": fleet.answers_429,
        "throttled_per_second": sum(throttled) / window,
        "throttled_share": fleet.answers_429 / fleet.requests if fleet.requests else 0.0,
        "autocorr_lag1": autocorrelation(series, range(1, 2))[0],
        "autocorr_max": abs(r[peak]) if r else 0.0,
        "autocorr_lag": lags[peak] if r else 0,
        "autocorr_band": 2 / math.sqrt(len(throttled)) if throttled else 0.0,
        "autocorr": dict(zip(lags, r, strict=True)),
        "latency_p50": _percentile(fleet.latencies, 0.50),
        "latency_p99": _percentile(fleet.latencies, 0.99),
        "host_share_min": shares[0] if shares else 0.0,
        "host_share_median": shares[len(shares) // 2] if shares else 0.0,
        "host_share_max": shares[-1] if shares else 0.0,
        "series": {
            "t": list(range(len(fleet.accepted))),
            "throttled": fleet.throttled,
            "delivered": fleet.accepted,
        },
        "wall_seconds": time.perf_counter() - started,
    }


def _row(name: str, res: dict[str, Any]) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    return (
        f"| {name} | {res['offered']:,.0f} | {res['capacity']:,.0f} | "
        f"{res['delivered_rate']:,.0f} ({res['delivered_share']:.1%}) | {res['lost']} | "
        f"{res['delivered']:,} / {res['pending']:,} / {res['at_source']:,} | "
        f"{res['throttled']:,} ({res['throttled_per_second']:.1f}/s, "
        f"{res['throttled_share']:.0%} of {res['requests']:,}) | "
        f"{res['autocorr_max']:.2f} @ {res['autocorr_lag']} s; {res['autocorr_lag1']:.2f} "
        f"(band {res['autocorr_band']:.2f})"
        f" | {fmt(res['latency_p50'])} / {fmt(res['latency_p99'])} | "
        f"{res['host_share_min']:.2f} / {res['host_share_median']:.2f} / "
        f"{res['host_share_max']:.2f} | {res['wall_seconds']:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shippers", type=int, default=200)
    parser.add_argument("--capacity-for", type=float, default=150)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--events-per-second", type=float, default=100.0)
    parser.add_argument("--start-spread", type=float, default=0.0,
                        help="hosts start within this many seconds (0: all at once)")  # fmt: skip
    parser.add_argument("--no-control", action="store_true", help="skip the synchronized control")
    add_json_option(parser)
    args = parser.parse_args(argv)
    common: dict[str, Any] = {
        "shippers": args.shippers,
        "capacity_for": args.capacity_for,
        "seconds": args.seconds,
        "seed": args.seed,
        "events_per_second": args.events_per_second,
        "start_spread": args.start_spread,
    }
    res = run_ship_fleet(**common)
    runs = [("ship (full jitter)", res)]
    control = None
    if not args.no_control:
        control = run_ship_fleet(**common, jitter=False)
        runs.append(("control: rand = 1.0", control))
    print(
        f"{args.shippers} shippers x {args.events_per_second:g} events/s of "
        f"~{res['event_bytes']:.0f} B against a pipeline for {args.capacity_for:g} shippers' load "
        f"(buffer {res['buffer']:,.0f} events), {args.seconds:g} s simulated, seed {args.seed}, "
        f"backoff {res['backoff_base']:g}..{res['backoff_max']:g} s; rates after the first 60 s"
    )
    print()
    print(
        "| run | offered ev/s | capacity ev/s | delivered ev/s | lost | delivered / pending / "
        "at source | 429s | 429/s: max abs r (lags 2..2 x backoff_max) @ lag; r(1) | "
        "latency p50 / p99 s | host share min / median / max | wall s |"
    )
    print("| --- " * 10 + "|")
    for name, run in runs:
        print(_row(name, run))
    ok = (
        res["delivered_share"] >= DELIVERY_TARGET
        and res["lost"] == 0
        and res["autocorr_max"] <= WAVE_TARGET
    )
    print()
    print(
        f"targets: delivered >= {DELIVERY_TARGET:.0%} of capacity, 0 lost, max |r| <= "
        f"{WAVE_TARGET}: {'met' if ok else 'MISSED'}"
    )
    rows = Rows("fleet_ship")
    rows.add("fleet delivery", "events/s", res["delivered_rate"], "pipeline capacity", "bound",
             res["capacity"], better="higher", target=DELIVERY_TARGET)  # fmt: skip
    if control is not None:
        rows.add("429 autocorrelation (max |r|)", "r", res["autocorr_max"], "no jitter",
                 "baseline", control["autocorr_max"])  # fmt: skip
    rows.write(args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
