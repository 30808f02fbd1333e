"""ML-DSA signing: a key given only expanded (pure Python) beside cryptography's seed-based key.

For ML-DSA-44/65/87: milliseconds to load the expanded key (ExpandA, the NTTs, the public key
recomputed and checked), and the median milliseconds per signature of the expanded key (including
the check of each signature with cryptography's public key) and of cryptography's key built from
the same seed. No target: the figure is reported in docs/mldsa.md.
Run: ``python benchmarks/bench_mldsa.py [--signatures 30]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from rolesanywhere.x509.mldsa import PRIVATE_KEY_CLASSES, ExpandedMLDSAPrivateKey
from rolesanywhere.x509.mldsa_expanded import PARAMETERS, prepare

# The expanded keys are the test vectors of tests/mldsa_keys.py: cryptography cannot write one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
try:
    from tests import mldsa_keys
except ImportError:  # the checkout's tests are not there
    mldsa_keys = None  # type: ignore[assignment]


def median_ms(fn: object, runs: int) -> float:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(b"bench %d" % i)  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signatures", type=int, default=30, help="signatures per key (30)")
    args = parser.parse_args()
    if mldsa_keys is None:
        print("run from a checkout: the expanded test keys are in tests/mldsa_keys.py")
        return 1
    print(f"{'parameter set':<14}{'load expanded':>15}{'sign expanded':>15}{'sign seed':>12}")
    for name in PARAMETERS:
        expanded = mldsa_keys.expanded(name)
        start = time.perf_counter()
        prepare(name, expanded)
        load = (time.perf_counter() - start) * 1000
        key = ExpandedMLDSAPrivateKey.from_expanded(name, expanded, "bench", "bench")
        seed_key = PRIVATE_KEY_CLASSES[name].from_seed_bytes(os.urandom(32))
        ours = median_ms(key.sign, args.signatures)
        theirs = median_ms(seed_key.sign, args.signatures)
        print(f"{name:<14}{load:>12.1f} ms{ours:>12.1f} ms{theirs:>9.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
