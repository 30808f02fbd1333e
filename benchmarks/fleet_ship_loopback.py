"""A sample of issue 12's target 4 over real sockets, in real time: ``shippers`` real
:class:`~rolesanywhere.Shipper` objects (threads, httpx, SigV4 with Roles Anywhere credentials)
against the OSIS emulator with a capacity for ``capacity_for`` shippers' load, each fed
``events_per_second`` lines by its own thread. The emulator verifies every signature and admits a
request when its events fit the buffer (:mod:`rolesanywhere.testing.quota`), else answers 429.

It checks, at a small scale, what ``fleet_ship.py`` simulates at scale: the pipeline is kept
busy, and every submitted event is delivered or still pending when the run ends (none lost).

    python benchmarks/fleet_ship_loopback.py [--seconds S]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fleet_ship import ship_config  # the engine settings of `rolesanywhere ship`

from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.ship.shipper import Shipper
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import OsisEmulator
from rolesanywhere.testing.pki import PKI
from rolesanywhere.testing.quota import Capacity

LINE = b"<34>1 2026-12-04T22:00:00Z host app 4242 - - " + b"x" * 150


def run_ship_loopback(
    shippers: int = 20,
    capacity_for: float = 15,
    seconds: float = 30.0,
    events_per_second: float = 200.0,
    warmup: float = 10.0,
) -> dict[str, Any]:
    """Returns the offered and delivered events per second after ``warmup``, the capacity, 429s,
    and the bookkeeping: submitted = delivered + pending + quarantined."""
    capacity = capacity_for * events_per_second
    logging.getLogger("rolesanywhere.ship").setLevel(logging.CRITICAL)  # a line per 429 otherwise
    pki = PKI(name="fleet shippers")
    with RolesAnywhereEmulator.for_pki(pki) as ra, tempfile.TemporaryDirectory() as tmp:
        osis = OsisEmulator(
            credentials=ra.lookup,
            region="us-east-1",
            store=False,
            capacity=Capacity(capacity, int(2 * capacity)),
        ).start()
        client = ra.client(pki.leaf("ec-p256").identity())
        auth = SigV4Auth(client, service="osis", region="us-east-1")
        fleet = [
            Shipper(ship_config(url=osis.ingest_url, state_dir=str(Path(tmp, str(i)))), auth)
            for i in range(shippers)
        ]
        stop = threading.Event()
        submitted = [0] * shippers

        def feed(i: int) -> None:
            tick, start = 0.1, time.monotonic()
            n = 0
            while not stop.is_set():
                due = int((time.monotonic() - start) * events_per_second)
                if due > n:
                    fleet[i].submit([LINE] * (due - n))  # blocks while too much is pending
                    submitted[i] += due - n
                    n = due
                stop.wait(tick)

        feeders = [threading.Thread(target=feed, args=(i,), daemon=True) for i in range(shippers)]
        started = time.monotonic()
        for thread in feeders:
            thread.start()
        stop.wait(warmup)
        before = osis.capacity_stats()
        stop.wait(seconds - warmup)
        after = osis.capacity_stats()
        window = time.monotonic() - started - warmup
        stop.set()
        for thread in feeders:
            thread.join(timeout=30)
        stats = [s.stats() for s in fleet]
        for shipper in fleet:
            shipper.close(timeout=0.5)  # what is pending stays pending: counted, not waited for
        client.close()
        osis.close()
    delivered = sum(s.events_delivered for s in stats)
    pending = sum(s.pending_events for s in stats)
    quarantined = sum(s.events_quarantined for s in stats)
    return {
        "shippers": shippers,
        "offered": shippers * events_per_second,
        "capacity": capacity,
        "delivered_rate": (after.accepted_units - before.accepted_units) / window,
        "delivered_share": (after.accepted_units - before.accepted_units) / window / capacity,
        "throttled": after.throttled,
        "requests": after.accepted + after.throttled,
        "submitted": sum(submitted),
        "delivered": delivered,
        "pending": pending,
        "quarantined": quarantined,
        "lost": sum(submitted) - delivered - pending - quarantined,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    r = run_ship_loopback(seconds=args.seconds)
    print(
        f"{r['shippers']} shippers offering {r['offered']:,.0f} events/s to a pipeline for "
        f"{r['capacity']:,.0f}: delivered {r['delivered_rate']:,.0f}/s "
        f"({r['delivered_share']:.1%}), {r['throttled']} 429s of {r['requests']} requests; "
        f"submitted {r['submitted']:,} = delivered {r['delivered']:,} + pending "
        f"{r['pending']:,} + quarantined {r['quarantined']}; lost {r['lost']}"
    )


if __name__ == "__main__":
    main()
