"""Cold ``aws_signing_helper credential-process`` against the local emulator (over TLS).

Compares, in the same run and interleaved: ``python -c pass``, our console script, and the same
job done by a helper built on ``iam-rolesanywhere-session`` (``peer_helper.py``). Median wall time
of ``--runs`` cold processes each, and the peak RSS of each process.

Targets (issue 2): ours <= 0.35x the peer, <= 12x ``python -c pass``, peak RSS <= 40 MB.
The cache-hit row is ours with ``--cache`` once the cache holds the answer (the warm-up run
fills it): target (issue 11) <= 2.5x ``python -c pass``, peak RSS <= 15 MB.
Run: ``python benchmarks/bench_cli.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from bench_rows import Rows, add_json_option
from timed_spawn import read_timing, timed_argv

from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, KeyFormat

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one cold run; fails loudly if the command fails."""
    proc = subprocess.Popen(
        timed_argv(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate()
    if proc.returncode != 0 or (argv[-1] != "pass" and b"AccessKeyId" not in out):
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.decode()[-400:]}")
    return read_timing(err.decode(errors="replace"))


def write_rows(
    path: str | None, runs: int, medians: dict[str, float], rss: dict[str, float]
) -> None:
    rows = Rows("bench_cli")
    ours = "rolesanywhere (ours)"
    against: list[tuple[str, Literal["floor", "baseline", "peer"], float | None]] = [
        ("python -c pass", "floor", 12),
        ("naive python (floor_helper)", "baseline", None),
        ("iam-rolesanywhere-session", "peer", 0.35),
    ]
    wall = f"cold credential-process, median wall of {runs}"
    for name, kind, target in against:
        rows.add(wall, "ms", medians[ours] * 1000, name, kind, medians[name] * 1000, target=target)
    for name, kind, _ in against:
        rows.add("cold credential-process, peak RSS", "MB", rss[ours], name, kind, rss[name])
    rows.add("cold credential-process, peak RSS", "MB", rss[ours], "target", "bound", 40, target=1)
    hit = "ours --cache (hit)"
    rows.add(
        f"credential-process --cache hit, median wall of {runs}",
        "ms",
        medians[hit] * 1000,
        "python -c pass",
        "floor",
        medians["python -c pass"] * 1000,
        target=2.5,
    )
    rows.add(
        "credential-process --cache hit, peak RSS", "MB", rss[hit], "target", "bound", 15, target=1
    )
    rows.write(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--key-type", default="ec-p256")
    add_json_option(parser)
    args = parser.parse_args()

    # A regular install byte-compiles the package (pip does), as the peer's is; do the same
    # here so an editable checkout, or PYTHONDONTWRITEBYTECODE, does not skew the comparison.
    import compileall

    import rolesanywhere

    compileall.compile_dir(Path(rolesanywhere.__file__).parent, quiet=1)
    pki = PKI(name="bench")
    leaf = pki.leaf(args.key_type)
    with tempfile.TemporaryDirectory() as tmp, RolesAnywhereEmulator.for_pki(pki, tls=True) as emu:
        folder = Path(tmp)
        cert, key = leaf.write(folder, "client", key_format=KeyFormat.PKCS8_PEM)
        chain = folder / "chain.pem"
        chain.write_bytes(pki.intermediate.cert_pem())
        ca = emu.write_ca_bundle(folder)
        common = [
            "--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain),
            "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
            "--role-arn", emu.role_arn,
        ]  # fmt: skip
        env = {**os.environ, "AWS_CA_BUNDLE": ca, "XDG_CACHE_HOME": str(folder / "cache")}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "rolesanywhere (ours)": [
                str(BIN / "aws_signing_helper"), "credential-process", *common,
                "--endpoint", emu.url,
            ],
            "ours --cache (hit)": [
                str(BIN / "aws_signing_helper"), "credential-process", *common,
                "--endpoint", emu.url, "--cache",
            ],
            "naive python (floor_helper)": [
                sys.executable, str(HERE / "floor_helper.py"),
                "--certificate", str(cert), "--private-key", str(key),
                "--endpoint", emu.endpoint_host, "--ca-bundle", ca,
            ],
            "iam-rolesanywhere-session": [
                sys.executable, str(HERE / "peer_helper.py"), *common,
                "--endpoint", emu.endpoint_host, "--ca-bundle", ca,
            ],
        }  # fmt: skip
        for argv in commands.values():  # warm the OS caches once
            measure(argv, env)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                results[name].append(measure(argv, env))

    medians = {n: statistics.median(w for w, _ in r) for n, r in results.items()}
    rss = {n: max(m for _, m in r) for n, r in results.items()}
    base, ours, hit, floor, peer = (medians[n] for n in commands)
    print(
        f"cold credential-process, {args.runs} runs each (median wall, max peak RSS), TLS loopback"
    )
    print(f"{'command':<28} {'median ms':>10} {'peak RSS MB':>12}")
    for name in commands:
        print(f"{name:<28} {medians[name] * 1000:>10.1f} {rss[name]:>12.1f}")
    ratio_peer, ratio_base = ours / peer, ours / base
    print(
        f"naive / peer = {floor / peer:.2f}: the naive row signs and sends one request "
        "with the usual imports (http.client, cryptography.x509, serialization)"
    )
    ours_rss, hit_rss = rss["rolesanywhere (ours)"], rss["ours --cache (hit)"]
    checks = [
        (f"ours / peer = {ratio_peer:.2f}", ratio_peer <= 0.35, "<= 0.35"),
        (f"ours / python -c pass = {ratio_base:.1f}", ratio_base <= 12, "<= 12"),
        (f"ours peak RSS = {ours_rss:.1f} MB", ours_rss <= 40, "<= 40 MB"),
        (f"cache hit / python -c pass = {hit / base:.2f}", hit / base <= 2.5, "<= 2.5"),
        (f"cache hit peak RSS = {hit_rss:.1f} MB", hit_rss <= 15, "<= 15 MB"),
    ]
    for text, ok, target in checks:
        print(f"{text:<40} target {target:<9} {'met' if ok else 'MISSED'}")
    write_rows(args.json, args.runs, medians, rss)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
