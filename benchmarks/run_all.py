"""Run every benchmark in this folder and write one table of their figures, all from this run.

Each script prints its own table as usual and writes its comparisons with ``--json`` (see
``bench_rows.py``); this script combines them into ``RESULTS.md`` (each measure, ours, the floor
or peer or bound it is compared with, the ratio and the target, with the date and the machine)
and plots the ratios in ``results.png``. Exit 1 if any script missed a target or failed.

Run: ``python benchmarks/run_all.py [--full] [--cli-runs 9] [--out DIR]`` (or ``nox -s bench``).
By default ``bench_cli.py`` runs ``--cli-runs`` cold processes per command and ``bench_ship.py``
runs ``--quick`` (no 1 GiB backlog); ``--full`` uses each script's own defaults instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_cli.py",
    "bench_sign.py",
    "bench_sigv4.py",
    "bench_ship.py",
    "measure_deadlines.py",
)


def script_args(name: str, full: bool, cli_runs: int) -> list[str]:
    if full:
        return []
    return {"bench_cli.py": ["--runs", str(cli_runs)], "bench_ship.py": ["--quick"]}.get(name, [])


def number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "unavailable"
    size = abs(value)
    spec = ",.0f" if size >= 100 else ".1f" if size >= 10 else ".2f" if size >= 0.1 else ".3f"
    return format(value, spec)


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.platform()}"
    )


def markdown(rows: list[dict[str, Any]], header: dict[str, str]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run_all.py` ({header['how']}) on {header['date']}.",
        "",
        f"- machine: {header['machine']}",
        f"- load average at the start: {header['load']} (a shared machine: figures are noisy)",
        f"- scripts: {header['scripts']}",
        "",
        "Every figure below comes from this one run. *ours / theirs* divides our figure by the "
        "reference's: below 1 is better where lower is better (time, memory), above 1 where "
        "higher is better (events/s). A *floor* is the least the job can cost, a *baseline* "
        "the job done the plain way, a *peer* another library doing the same job, a *bound* a "
        "target with nothing measured behind it. The plot shows our cost relative to theirs "
        "(events/s inverted), so left of 1 is always better. "
        "Each script's own printed table says more (see README.md).",
        "",
        "![ours / theirs, one bar per comparison](results.png)",
        "",
        "| benchmark | measure | unit | ours | against | kind | theirs | ours / theirs | target "
        "| met |",
        "| --- | --- | --- | ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        unit = r["unit"] + (" (higher is better)" if r["better"] == "higher" else "")
        target = ""
        if r["target"] is not None:
            target = ("≤ " if r["better"] == "lower" else "≥ ") + f"{r['target']:.2f}"
        met = {True: "met", False: "**MISSED**", None: ""}[r["met"]]
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(
            f"| {r['benchmark']} | {r['measure']} | {unit} | {number(r['ours'])} | "
            f"{r['against']} | {r['kind']} | {number(r['theirs'])} | {ratio} | {target} | {met} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """A bar per comparison: our cost relative to theirs (events/s inverted), log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (the bench extra): no plot written")
        return False
    shown = [r for r in rows if r["ratio"]]
    cost = [r["ratio"] if r["better"] == "lower" else 1 / r["ratio"] for r in shown]
    labels = [f"{r['measure']}  vs  {r['against']}" for r in shown]
    colours = {
        "floor": "tab:gray", "baseline": "tab:green", "peer": "tab:blue", "bound": "tab:orange"
    }  # fmt: skip
    fig, ax = plt.subplots(figsize=(13, 0.32 * len(shown) + 1.6))
    ys = range(len(shown))
    ax.barh(ys, [c - 1 for c in cost], left=1, color=[colours[r["kind"]] for r in shown])
    for y, r, c in zip(ys, shown, cost, strict=True):
        ax.text(c * (1.04 if c >= 1 else 1 / 1.04), y, f"{c:.2f}", va="center", fontsize=7,
                ha="left" if c >= 1 else "right")  # fmt: skip
        if r["target"] is not None:
            limit = r["target"] if r["better"] == "lower" else 1 / r["target"]
            ax.plot([limit], [y], marker="|", markersize=14, color="red", mew=2)
        if r["met"] is False:
            ax.text(max(cost) * 1.6, y, "missed", va="center", color="red", fontsize=8)
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(min(cost) / 1.6, max(cost) * 2.2)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(
        "our cost ÷ theirs (time, memory; for events/s theirs ÷ ours): left of 1 is better; "
        "red tick: target"
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, list(colours), loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="each script's own default runs")
    parser.add_argument("--cli-runs", type=int, default=9, help="bench_cli.py --runs (not --full)")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and the png go")
    args = parser.parse_args()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    failed, invoked = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SCRIPTS:
            extra = script_args(name, args.full, args.cli_runs)
            invoked.append(" ".join([name, *extra]))
            out = Path(tmp) / f"{name}.json"
            print(f"== {name} {' '.join(extra)}", flush=True)
            argv = [sys.executable, str(HERE / name), *extra, "--json", str(out)]
            if subprocess.run(argv, check=False, cwd=HERE.parent).returncode:
                failed.append(name)
            if out.exists():
                rows += json.loads(out.read_text())
            else:
                print(f"{name} wrote no figures")
    header = {
        "date": date,
        "machine": machine(),
        "load": load,
        "scripts": ", ".join(f"`{s}`" for s in invoked),
        "how": "`--full`" if args.full else f"`--cli-runs {args.cli_runs}`, bench_ship `--quick`",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "RESULTS.md").write_text(markdown(rows, header))
    plot(rows, args.out / "results.png", f"{date}; {machine()}")
    took = time.perf_counter() - began
    print(f"wrote {args.out / 'RESULTS.md'} ({len(rows)} rows) in {took:.0f} s")
    if failed:
        print("targets missed (or the script failed) in: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
