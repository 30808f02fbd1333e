"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


@st.composite
def mutations(
    draw: st.DrawFn,
    samples: Sequence[bytes],
    *,
    max_ops: int = 4,
    max_insert: int = 8,
    max_delete: int = 16,
) -> bytes:
    """One of ``samples`` after 1 to ``max_ops`` bit flips, byte sets, truncations, insertions
    or deletions: inputs that are almost right, where parsers go wrong."""
    data = bytearray(samples[draw(st.integers(0, len(samples) - 1))])
    for _ in range(draw(st.integers(1, max_ops))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=max_insert))
        else:
            del data[at : at + draw(st.integers(1, max_delete))]
    return bytes(data)
