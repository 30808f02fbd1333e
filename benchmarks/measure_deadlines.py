"""Seconds each httpx path takes to give up on a server dripping one byte a second (issue 8).

Prints path | deadline | seconds to give up, and the stall-then-retry case; exits 1 when a path
misses its deadline + 1 s. Loopback only. Run from the repository root:
``python benchmarks/measure_deadlines.py [--deadline 5] [--interval 1] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_rows import Rows, add_json_option

from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.ship.loghandler import OsisHandler
from rolesanywhere.ship.shipper import AsyncShipper, Shipper, ShipperConfig
from rolesanywhere.testing.pki import PKI
from tests.faults import FaultServer, http_response
from tests.test_deadlines import ANCHOR, OK_BODY, PROFILE, ROLE, client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=1.0)
    add_json_option(parser)
    args = parser.parse_args()
    deadline, interval = args.deadline, args.interval
    pki = PKI()
    identity = pki.leaf("ec-p256").identity()
    tmp = Path(tempfile.mkdtemp())
    cert, key = pki.leaf("ec-p256").write(tmp, "client")
    (tmp / "chain.pem").write_bytes(pki.intermediate.cert_pem())
    rows: list[tuple[str, float]] = []

    def clock(name: str, call: Any) -> None:
        start = time.monotonic()
        with contextlib.suppress(Exception):  # giving up is what is measured
            call()
        rows.append((name, time.monotonic() - start))

    def shipper_options(url: str) -> dict[str, Any]:
        return {"url": f"{url}/log/ingest", "state_dir": str(tmp), "trust_env": False,
                "request_timeout": deadline, "batch_events": 1}  # fmt: skip

    def until_timeout(stats: Any) -> None:
        while stats().answers.get("timeout", 0) < 1:
            time.sleep(0.01)

    for behaviour in ("drip", "drip_head"):
        with FaultServer(behaviour, interval=interval) as server:  # type: ignore[arg-type]
            clock(
                f"{behaviour}: RolesAnywhereClient",
                client(identity, server.url, timeout=deadline).create_session,
            )

            async def acall() -> None:
                async with client(
                    identity,
                    server.url,
                    __import__("rolesanywhere").AsyncRolesAnywhereClient,
                    timeout=deadline,
                ) as c:
                    await c.create_session()

            clock(f"{behaviour}: AsyncRolesAnywhereClient", lambda: asyncio.run(acall()))
            if behaviour == "drip_head":
                continue
            auth = SigV4Auth.from_roles_anywhere(
                certificate=str(cert), private_key=str(key), intermediates=str(tmp / "chain.pem"),
                trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE, endpoint=server.url,
                service="osis", timeout=deadline,
            )  # fmt: skip
            clock(f"{behaviour}: SigV4Auth.from_roles_anywhere", auth.credentials.get)
            shipper = Shipper(ShipperConfig(**shipper_options(server.url)))
            shipper.submit([b"line"])
            clock(f"{behaviour}: Shipper post", functools.partial(until_timeout, shipper.stats))
            shipper.close(timeout=0)

            async def apost() -> None:
                shipper = AsyncShipper(ShipperConfig(**shipper_options(server.url)))
                await shipper.submit([b"line"])
                while shipper.stats().answers.get("timeout", 0) < 1:
                    await asyncio.sleep(0.01)
                await shipper.aclose(timeout=0)

            clock(f"{behaviour}: AsyncShipper post", lambda: asyncio.run(apost()))
            options = shipper_options(server.url)
            handler = OsisHandler(options.pop("url"), shipper_options=options, close_timeout=0,
                                  stream=io.StringIO())  # fmt: skip
            log = logging.getLogger("measure")
            log.propagate = False
            log.addHandler(handler)

            def emit(log: logging.Logger, handler: OsisHandler) -> None:
                log.warning("record")
                until_timeout(handler.shipper_stats)

            clock(f"{behaviour}: OsisHandler post", functools.partial(emit, log, handler))
            log.removeHandler(handler)
            handler.close()
    worst = 0.0
    title = f"path (interval {interval:g} s)"
    print(f"{title:45} deadline  gave up after")
    for name, seconds in rows:
        worst = max(worst, seconds - deadline)
        print(f"{name:45} {deadline:6.1f} s  {seconds:6.2f} s")
    raw = http_response(
        201, OK_BODY, reason="Created", headers={"Content-Type": "application/json"}
    )
    with FaultServer("canned", raw=raw, stall_first=1) as server:
        rac = client(identity, server.url, timeout=deadline)
        start = time.monotonic()
        creds = rac.create_session()
        took = time.monotonic() - start
    print(f"stall then answer: {rac.attempts} attempts, credentials {creds.access_key_id} "
          f"after {took:.2f} s (budget {deadline:g} s)")  # fmt: skip
    out = Rows("measure_deadlines")
    for name, seconds in rows:
        out.add(f"give up on a server dripping 1 B/{interval:g} s, {name}", "s", seconds,
                "deadline", "bound", deadline, target=(deadline + 1) / deadline)  # fmt: skip
    out.add("CreateSession whose first attempt stalls, until credentials", "s", took,
            "deadline", "bound", deadline, target=1)  # fmt: skip
    out.write(args.json)
    return 0 if worst <= 1.0 and took <= deadline else 1


if __name__ == "__main__":
    sys.exit(main())
