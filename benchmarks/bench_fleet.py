"""Fleets against one account's CreateSession quota and one pipeline's capacity (issue 12).

Every figure comes from the package's own code on a simulated clock, so a simulated day of
tens of thousands of hosts runs in seconds (:mod:`fleet_sim`, :mod:`fleet_cache`,
:mod:`fleet_ship`); a sample of the boot storm also runs over real loopback sockets against the
Roles Anywhere emulator, and the cron host also with real processes. Prints one table per
target and writes a plot (``--plot``, default ``docs/fleet.png``, shown by docs/fleet.md; needs
matplotlib, the ``bench`` extra). Exits 1 when a target is missed.

    python benchmarks/bench_fleet.py [--quick] [--plot PATH]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet_cache
import fleet_ship
import fleet_ship_loopback
import fleet_sim

HOSTS = 5000
RATE = 10.0
#: (backoff_base, backoff_max, jitter): the package's defaults first.
STORM_KNOBS = [(10.0, 120.0, True), (1.0, 30.0, True), (10.0, 60.0, True), (10.0, 300.0, True),
               (30.0, 600.0, True), (10.0, 120.0, False)]  # fmt: skip


def _row(*cells: object, widths: tuple[int, ...]) -> str:
    return " ".join(f"{c!s:>{w}}" for c, w in zip(cells, widths, strict=True))


def boot_storm(quick: bool, missed: list[str]) -> dict[str, Any]:
    bound, budget = 2 * HOSTS / RATE, 10 * HOSTS
    print(f"\n1. Boot storm: {HOSTS} long-running agents at once, quota {RATE:g}/s (burst 10)")
    print(f"   targets: every host holds credentials within {bound:g} s; attempts <= {budget}")
    widths = (14, 7, 10, 8, 8, 9, 8, 9, 7)
    print(_row("backoff base/max", "jitter", "all by (s)", "p50", "p90", "attempts",
               "per host", "429s", "target", widths=widths))  # fmt: skip
    runs = {}
    knobs = STORM_KNOBS[:2] + STORM_KNOBS[-1:] if quick else STORM_KNOBS
    for base, cap, jitter in knobs:
        r = fleet_sim.run_boot_storm(
            HOSTS, rate=RATE, backoff_base=base, backoff_max=cap, jitter=jitter, horizon=3600
        )
        runs[(base, cap, jitter)] = r
        t = r["time_to_credentials"]
        done = r["with_credentials"] == HOSTS
        ok = done and t["max"] <= bound and r["attempts"] <= budget
        last = f"{t['max']:.0f}" if done else f"{r['with_credentials']} got"
        print(_row(f"{base:g}/{cap:g} s", "yes" if jitter else "none", last, f"{t['p50']:.0f}",
                   f"{t['p90']:.0f}", r["attempts"], f"{r['attempts_per_host']:.1f}",
                   r["throttled"], "met" if ok else "-", widths=widths))  # fmt: skip
        if (base, cap, jitter) == STORM_KNOBS[0] and not ok:
            missed.append("boot storm with the default knobs")
    sample, ratio = 200, 200 / HOSTS
    print(f"   the same storm scaled to {sample} hosts at {RATE * ratio:g}/s (burst 1): in "
          "process, then over loopback against the emulator (real signing and checks)")  # fmt: skip
    for loopback in (False, True):
        start = time.perf_counter()
        r = fleet_sim.run_boot_storm(sample, rate=RATE * ratio, burst=1, loopback=loopback)
        t = r["time_to_credentials"]
        took = time.perf_counter() - start
        print(f"   {'loopback ' if loopback else 'in process'}: all {r['with_credentials']} by "
              f"{t['max']:.0f} s (p50 {t['p50']:.0f}), {r['attempts']} attempts, "
              f"{r['throttled']} 429s; {took:.1f} s of real time")  # fmt: skip
    one = fleet_sim.run_one_shot_storm(HOSTS, rate=RATE)
    share = one["succeeded"] / HOSTS
    ceiling = (10 + RATE * 30) / HOSTS
    print(f"   one-shot credential-process in the same storm (3 attempts in a 30 s budget): "
          f"{one['succeeded']} of {HOSTS} succeed ({share:.1%}; no policy can pass more than "
          f"{ceiling:.1%} in 30 s at {RATE:g}/s), {one['attempts']} attempts")  # fmt: skip
    print(f"   what the others print: {printed_throttle_error()}")
    return {"runs": runs, "one_shot": one}


def printed_throttle_error() -> str:
    """Run the real command against an emulator whose quota is spent and return its stderr."""
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.pki import PKI
    from rolesanywhere.testing.quota import Quota

    pki = PKI(name="fleet one-shot")
    # A quota of one call, on a clock that never moves: the first run spends it.
    emulator = RolesAnywhereEmulator.for_pki(pki, quota=Quota(0.001, 1), monotonic=lambda: 0.0)
    with tempfile.TemporaryDirectory() as tmp, emulator as emu:
        command = fleet_cache.credential_process_argv(emu, pki, Path(tmp))
        env = {k: v for k, v in os.environ.items() if k != "ROLESANYWHERE_CACHE"}
        subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)
        done = subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)
    return f"exit {done.returncode}: {done.stderr.decode().strip()}"


def steady_day(quick: bool, missed: list[str]) -> dict[str, Any]:
    hours = 2.0 if quick else 6.0
    window = fleet_sim.refresh_windows(3600).advisory
    largest = RATE * (3600 - window)
    target = 1.05 * 3600 / (3600 - window)
    print(f"\n2. Steady day: 1 h sessions, {hours:g} h simulated after one hour of warm-up")
    print(f"   targets: CreateSession calls per host per hour <= {target:.2f}; the account's "
          f"rate under {RATE:g}/s up to about {largest:,.0f} hosts "
          f"= {RATE:g} x (lifetime - window)")  # fmt: skip
    widths = (7, 14, 17, 15, 8, 11)
    print(_row("hosts", "calls/host/h", "peak rate (1 min)", "peak (1 s)", "429s",
               "without", widths=widths))  # fmt: skip
    runs = {}

    def run(n: int) -> dict[str, Any]:
        if n not in runs:
            runs[n] = fleet_sim.run_steady_day(n, hours=hours, rate=RATE)
        return runs[n]

    # the largest fleet whose busiest minute stays under the quota, to 500 hosts
    low, high = 10_000, int(largest * 1.1)
    while high - low > 500:
        middle = (low + high) // 2
        if run(middle)["peak_per_minute"] <= RATE:
            low = middle
        else:
            high = middle
    for n in sorted(
        {1000, 10_000, low, int(largest)} | ({int(largest * 1.08)} if not quick else set())
    ):
        r = run(n)
        print(_row(f"{n:,}", f"{r['calls_per_host_hour']:.3f}",
                   f"{r['peak_per_minute']:.2f}/s", f"{r['peak_per_second']}/s",
                   r["throttled"], r["gaps"], widths=widths))  # fmt: skip
        if n <= largest and (r["calls_per_host_hour"] > target or r["gaps"]):
            missed.append(f"steady day, {n} hosts")
    print(f"   largest fleet whose busiest minute stays under the quota: {low:,} hosts "
          f"({low / largest:.0%} of {largest:,.0f}); 'without' = hosts ever left without "
          "credentials")  # fmt: skip
    return {"runs": runs, "largest": low, "formula": largest}


def cron_host(quick: bool, missed: list[str]) -> dict[str, Any]:
    hours = 6.0 if quick else 24.0
    print(f"\n3. One host, 50 credential_process runs a minute (50 together at :00), "
          f"{hours:g} h, 1 h sessions")  # fmt: skip
    print("   target: <= 1 CreateSession per lifetime")
    rows = {}
    for single in (True, False):
        r = fleet_cache.run_cron_host(50, hours, 3600, concurrent=50, single_flight=single)
        rows[single] = r
        print(f"   {'with the cache lock' if single else 'cache without the lock (before)'}: "
              f"{r['invocations']:,} runs, {r['calls']} CreateSession calls, at most "
              f"{r['calls_per_lifetime_max']} per entry lifetime, {r['calls_per_hour']:.2f} "
              "per hour (renewed 6-9 min before expiry)")  # fmt: skip
    if rows[True]["calls_per_lifetime_max"] > 1:
        missed.append("cron host")
    real = fleet_cache.run_real_processes()
    print(f"   {real['processes']} real processes against the emulator (20 together, 30 over "
          f"3 s): {real['calls']} CreateSession call(s), {real['failed']} failed")  # fmt: skip
    if real["calls"] != 1 or real["failed"]:
        missed.append("cron host, real processes")
    return {"rows": rows, "real": real}


def shippers(quick: bool, missed: list[str]) -> dict[str, Any]:
    seconds = 600.0 if quick else 900.0
    print("\n4. 200 shippers against a pipeline with capacity for 150 shippers' load "
          f"({seconds:g} s simulated, all starting at once)")  # fmt: skip
    print(f"   targets: delivery >= {fleet_ship.DELIVERY_TARGET:.0%} of capacity, 0 lost, no "
          "synchronized retry waves (autocorrelation of 429s per second)")  # fmt: skip
    widths = (11, 5, 12, 10, 5, 8, 18, 14, 20)
    print(_row("run", "seed", "delivered/s", "share", "lost", "429s", "max |r| @ lag (s)",
               "p50/p99 (s)", "host share min/med", widths=widths))  # fmt: skip
    runs = {}
    for jitter, seed in [(True, 0), (True, 1), (True, 2), (False, 0)][: 2 if quick else 4]:
        r = fleet_ship.run_ship_fleet(seconds=seconds, seed=seed, jitter=jitter)
        runs[(jitter, seed)] = r
        p50, p99 = r["latency_p50"] or 0.0, r["latency_p99"] or 0.0
        print(_row("ship" if jitter else "no jitter", seed, f"{r['delivered_rate']:,.0f}",
                   f"{r['delivered_share']:.1%}", r["lost"], r["throttled"],
                   f"{r['autocorr_max']:.2f} @ {r['autocorr_lag']}", f"{p50:.1f}/{p99:.0f}",
                   f"{r['host_share_min']:.2f}/{r['host_share_median']:.2f}",
                   widths=widths))  # fmt: skip
        if jitter and (r["delivered_share"] < fleet_ship.DELIVERY_TARGET or r["lost"]):
            missed.append(f"shippers, seed {seed}")
    wire = fleet_ship_loopback.run_ship_loopback()
    print(f"   over loopback, in real time: {wire['shippers']} real Shippers offering "
          f"{wire['offered']:,.0f} events/s to the OSIS emulator with capacity for "
          f"{wire['capacity']:,.0f} (signatures verified): {wire['delivered_rate']:,.0f}/s "
          f"delivered ({wire['delivered_share']:.1%}), {wire['throttled']} 429s of "
          f"{wire['requests']} requests, {wire['lost']} lost ({wire['delivered']:,} "
          f"delivered + {wire['pending']:,} pending at the end)")  # fmt: skip
    if wire["delivered_share"] < fleet_ship.DELIVERY_TARGET or wire["lost"]:
        missed.append("shippers over loopback")
    return runs


def plot(path: Path, storm: dict[str, Any], day: dict[str, Any], ship: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (the bench extra): no plot written")
        return
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    for (base, cap, jitter), r in storm["runs"].items():
        times = sorted(r["times"])
        ax.plot(times, [(i + 1) / HOSTS for i in range(len(times))],
                label=f"{base:g}/{cap:g} s" + ("" if jitter else ", no jitter"))  # fmt: skip
    ax.axvline(2 * HOSTS / RATE, color="grey", linestyle=":", label="target")
    ax.set(
        title=f"Boot storm, {HOSTS} hosts: share holding credentials", xlabel="s", xlim=(0, 1500)
    )
    ax.legend(fontsize=8)
    ax = axes[0][1]
    default = storm["runs"][STORM_KNOBS[0]]
    ax.plot(default["accepted_per_second"], label="accepted/s", linewidth=0.7)
    ax.plot(default["throttled_per_second"], label="429/s", linewidth=0.5, alpha=0.7)
    control = storm["runs"].get((STORM_KNOBS[0][0], STORM_KNOBS[0][1], False))
    if control is not None:
        ax.plot(control["throttled_per_second"][:1500], label="429/s, no jitter",
                linewidth=0.5, alpha=0.7)  # fmt: skip
    ax.set(title="Boot storm, default knobs: CreateSession calls per second", xlabel="s",
           yscale="log", xlim=(0, 1500))  # fmt: skip
    ax.legend(fontsize=8)
    ax = axes[1][0]
    for n, r in sorted(day["runs"].items()):
        if n in (day["largest"], int(day["formula"])):
            ax.plot(r["calls_per_minute"], label=f"{n:,} hosts", linewidth=0.8)
    ax.axhline(RATE, color="grey", linestyle=":", label="quota")
    ax.set(title="Steady day: CreateSession attempts/s (1-minute means)", xlabel="minute")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    for (jitter, seed), r in ship.items():
        if seed == 0:
            series = r["series"]
            ax.plot(series["t"], series["throttled"], linewidth=0.6,
                    label=f"429/s, {'full jitter' if jitter else 'no jitter'}")  # fmt: skip
    ax.set(title="200 shippers, capacity for 150: 429 answers per second", xlabel="s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"\nplot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer knobs, shorter days")
    parser.add_argument(
        "--plot", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "fleet.png"
    )
    args = parser.parse_args()
    logging.getLogger("rolesanywhere").setLevel(logging.ERROR)  # the simulated hosts' warnings
    missed: list[str] = []
    start = time.perf_counter()
    storm = boot_storm(args.quick, missed)
    day = steady_day(args.quick, missed)
    cron_host(args.quick, missed)
    ship = shippers(args.quick, missed)
    plot(args.plot, storm, day, ship)
    print(f"{time.perf_counter() - start:.0f} s of real time")
    if missed:
        raise SystemExit(f"targets missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
