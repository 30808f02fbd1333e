"""CreateSession build+sign time beside the raw ``key.sign`` time, RSA-2048 and EC P-256.

Run: ``python benchmarks/bench_sign.py``. Prints a table; target: build+sign <= raw sign + 30 us.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from rolesanywhere.endpoints import resolve_endpoint
from rolesanywhere.identity import Identity
from rolesanywhere.session import SessionParams, build_create_session_request
from rolesanywhere.testing.pki import PKI

ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a1b2c3d4-0000-0000-0000-000000000001"
)
PROFILE = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/a1b2c3d4-0000-0000-0000-000000000002"
)
ROLE = "arn:aws:iam::123456789012:role/bench"
TARGET_OVERHEAD_US = 30.0


def per_call_us(fn: Callable[[], object], *, rounds: int = 7, seconds: float = 0.3) -> float:
    """Median over ``rounds`` of the mean time per call, each round running ~``seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start > seconds / 10:
            break
        n *= 2
    n = max(1, int(n * 10 * seconds / max(time.perf_counter() - start, 1e-9) / 10))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def main() -> int:
    pki = PKI()
    params = SessionParams(trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE)
    endpoint = resolve_endpoint("us-east-1")
    rows = []
    failed = False
    for key_type in ("rsa-2048", "ec-p256"):
        leaf = pki.leaf(key_type)
        identity = Identity.load(leaf.cert_pem(), leaf.key_bytes(), pki.intermediate.cert_pem())
        key = identity.signing_key
        sample = build_create_session_request(identity, params, endpoint).string_to_sign.encode()
        raw = per_call_us(lambda key=key, sample=sample: key.sign(sample))
        full = per_call_us(
            lambda identity=identity: build_create_session_request(identity, params, endpoint)
        )
        overhead = full - raw
        ok = overhead <= TARGET_OVERHEAD_US
        failed |= not ok
        rows.append((key_type, raw, full, overhead, "yes" if ok else "NO"))
    print(f"{'key':<10} {'raw key.sign':>14} {'build+sign':>12} {'overhead':>10}  <= +30 us")
    for key_type, raw, full, overhead, ok in rows:
        print(f"{key_type:<10} {raw:>11.1f} us {full:>9.1f} us {overhead:>7.1f} us  {ok}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
