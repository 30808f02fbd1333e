"""Issue 12, target 3: a host running 50 ``credential_process`` invocations a minute (cron,
scripts) with the cache makes <= 1 CreateSession per lifetime.

Two measurements, as functions ``benchmarks/bench_fleet.py`` can call:

- :func:`run_cron_host`: a simulated day on one host, in process, on a fake clock. Each
  invocation is a new :class:`~rolesanywhere.profiles.cache.CredentialCache` (as each process
  builds one) asked as ``credential-process --cache`` asks it (:meth:`CredentialCache.answer`:
  the hit path, or the lock, a second read, the call and the write), with a counter instead of
  CreateSession. ``concurrent`` invocations start together at the top of each minute (cron; real
  threads, real ``flock``), the rest at random seconds of the minute. ``single_flight=False``
  replays the code before the lock (read, on a miss call and write) for comparison.
- :func:`run_real_processes`: real ``aws_signing_helper credential-process --cache`` processes
  against the Roles Anywhere emulator (``at_once`` together, then ``then`` more spread over
  ``spread_seconds``), counting the emulator's calls.

"Per lifetime" is per entry lifetime: from an entry's write to the point it stops being served
(lifetime minus margin minus its spread). ``calls_per_lifetime_max`` is the most CreateSession
calls made in one such period (the one that wrote it included): 1 means no invocation ever asked
while an answer was served or being fetched. A host still renews before expiry, so over a day
it makes lifetime / (lifetime - margin - spread) calls per session lifetime on average (about
1.13 for 1 h sessions): ``calls_per_session_lifetime`` reports it.

Run: ``python benchmarks/fleet_cache.py [--hours 24]`` (exits 1 when a run with the lock makes
more than one call per entry lifetime, or the real processes more than one call).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rolesanywhere.credentials import Credentials
from rolesanywhere.profiles.cache import CredentialCache, margin, spread

BIN = Path(sys.executable).parent


def _answer_without_lock(cache: CredentialCache, fetch: Any) -> str:
    """What ``credential-process --cache`` did before the lock: read; on a miss, call and write."""
    output = cache.get()
    if output is None:
        credentials = fetch()
        cache.put(credentials)
        output = credentials.to_process_json()
    return output


def served_for(key: str, issued: float, lifetime: float) -> float:
    """Seconds the entry ``key`` written at ``issued`` is served."""
    return lifetime - margin(lifetime) - spread(key, issued, lifetime)


def run_cron_host(
    invocations_per_minute: int = 50,
    hours: float = 24,
    lifetime: int = 3600,
    *,
    concurrent: int = 10,
    call_seconds: float = 0.02,
    single_flight: bool = True,
    seed: int = 12,
    start: float = 1_800_000_000.0,
) -> dict[str, Any]:
    """A simulated ``hours`` of one host: returns CreateSession ``calls``, ``invocations``,
    ``calls_per_lifetime_max`` (see the module docstring), ``calls_per_session_lifetime``,
    ``calls_per_hour`` and ``warnings``. ``call_seconds`` is how long (real time) a fake
    CreateSession takes, so that invocations started together overlap it."""
    if not 0 <= concurrent <= invocations_per_minute:
        raise ValueError("concurrent must be between 0 and invocations_per_minute")
    rng = random.Random(seed)
    now = [start]
    calls: list[float] = []
    warnings: list[str] = []
    record = threading.Lock()

    def fetch() -> Credentials:
        with record:
            calls.append(now[0])
        time.sleep(call_seconds)  # a call in flight, for the others to run into
        expires = datetime.fromtimestamp(now[0] + lifetime, UTC)
        return Credentials("ASIAFLEETCACHEBENCH1", "secret", "token", expires)

    with tempfile.TemporaryDirectory() as tmp:
        cert = Path(tmp, "cert.pem")
        cert.write_bytes(b"the certificate of this host")
        values = {"certificate": str(cert), "role_arn": "arn:aws:iam::111122223333:role/cron"}
        environ = {"XDG_CACHE_HOME": str(Path(tmp, "cache"))}

        def invoke() -> None:
            cache = CredentialCache(
                values, warn=warnings.append, environ=environ, clock=lambda: now[0]
            )
            if single_flight:
                cache.answer(fetch, wait=30)
            else:
                _answer_without_lock(cache, fetch)

        key = CredentialCache(values, warn=warnings.append, environ=environ).key

        def due() -> bool:  # whether the entry may be missing or stale: an invocation may ask
            last = calls[-1] if calls else None
            return last is None or now[0] >= last + served_for(key, last, lifetime) - 1

        minutes = round(hours * 60)
        for minute in range(minutes):
            now[0] = start + minute * 60
            if concurrent and not due():  # hits only: read-only, their order does not matter
                for _ in range(concurrent):
                    invoke()
            elif concurrent:
                barrier = threading.Barrier(concurrent)

                def together(barrier: threading.Barrier = barrier) -> None:
                    barrier.wait()
                    invoke()

                threads = [threading.Thread(target=together) for _ in range(concurrent)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            offsets = sorted(rng.uniform(1, 60) for _ in range(invocations_per_minute - concurrent))
            for offset in offsets:
                now[0] = start + minute * 60 + offset
                invoke()

    ends = [c + served_for(key, c, lifetime) for c in calls]
    per_entry = [sum(1 for d in calls if c <= d < end) for c, end in zip(calls, ends, strict=True)]
    duration = minutes * 60
    return {
        "invocations": minutes * invocations_per_minute,
        "calls": len(calls),
        "calls_per_lifetime_max": max(per_entry, default=0),
        "calls_per_session_lifetime": len(calls) * lifetime / duration,
        "calls_per_hour": len(calls) * 3600 / duration,
        "warnings": len(warnings),
    }


def credential_process_argv(emu: Any, pki: Any, folder: Path, *extra: str) -> list[str]:
    """The real ``aws_signing_helper credential-process`` command line for ``emu``, with a fresh
    EC key and certificate of ``pki`` written to ``folder``."""
    from rolesanywhere.testing.pki import KeyFormat

    cert, key = pki.leaf("ec-p256").write(folder, "client", key_format=KeyFormat.PKCS8_PEM)
    chain = folder / "chain.pem"
    chain.write_bytes(pki.intermediate.cert_pem())
    return [
        str(BIN / "aws_signing_helper"), "credential-process", *extra,
        "--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain),
        "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
        "--role-arn", emu.role_arn, "--endpoint", emu.url,
    ]  # fmt: skip


def run_real_processes(
    at_once: int = 20, then: int = 30, spread_seconds: float = 3.0, call_delay: float = 0.3
) -> dict[str, Any]:
    """``at_once`` real ``credential-process --cache`` processes started together, then ``then``
    more over ``spread_seconds``, against the emulator (answering after ``call_delay`` s):
    returns ``processes``, ``calls`` (the emulator's), ``failed`` and ``warned``."""
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.pki import PKI

    pki = PKI(name="fleet cache")
    with tempfile.TemporaryDirectory() as tmp, RolesAnywhereEmulator.for_pki(pki) as emu:
        folder = Path(tmp)
        argv = credential_process_argv(emu, pki, folder, "--cache")
        env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
        env.pop("ROLESANYWHERE_CACHE", None)
        emu.delay = call_delay

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        procs = [spawn() for _ in range(at_once)]
        for _ in range(then):
            time.sleep(spread_seconds / max(then, 1))
            procs.append(spawn())
        results = [(proc.communicate(timeout=120), proc.returncode) for proc in procs]
        return {
            "processes": len(procs),
            "calls": emu.calls,
            "failed": sum(1 for (out, _), code in results if code or b"AccessKeyId" not in out),
            "warned": sum(1 for (_, err), _ in results if err),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24, help="simulated hours (default 24)")
    args = parser.parse_args()
    print(f"one host, 50 credential_process invocations a minute, {args.hours:g} h simulated")
    head = f"{'lifetime':>8} {'at :00':>6} {'lock':>5} {'invocations':>11} {'calls':>6}"
    print(f"{head} {'per lifetime (max)':>18} {'per session lifetime':>20} {'warnings':>8}")
    missed = []
    for lifetime in (3600, 900):
        for concurrent in (10, 50):
            for single_flight in (True, False):
                r = run_cron_host(
                    50, args.hours, lifetime, concurrent=concurrent, single_flight=single_flight
                )
                if single_flight and r["calls_per_lifetime_max"] > 1:
                    missed.append(f"{lifetime} s, {concurrent} at :00")
                print(
                    f"{lifetime:>7}s {concurrent:>6} {'yes' if single_flight else 'no':>5} "
                    f"{r['invocations']:>11} {r['calls']:>6} {r['calls_per_lifetime_max']:>18} "
                    f"{r['calls_per_session_lifetime']:>20.2f} {r['warnings']:>8}"
                )
    print("\nreal processes against the emulator (20 at once, then 30 over 3 s; 0.3 s calls)")
    r = run_real_processes()
    print(f"processes {r['processes']}, CreateSession calls {r['calls']}, failed {r['failed']}, "
          f"warned {r['warned']}")  # fmt: skip
    if r["calls"] != 1 or r["failed"]:
        missed.append("real processes")
    if missed:
        raise SystemExit(f"target 3 missed (more than 1 call per lifetime): {', '.join(missed)}")


if __name__ == "__main__":
    main()
