"""The machine-readable rows every benchmark script writes with ``--json PATH``.

A row compares one of our figures with one reference measured in the same run: a floor (the
least the job can cost), a baseline (the job done the plain way), a peer (another library doing
the same job) or a bound (a target with nothing measured behind it, e.g. a deadline).
``run_all.py`` reads these files and writes the single table (``RESULTS.md``) and its plot;
each script's printed table stays as it was.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

Kind = Literal["floor", "baseline", "peer", "bound"]


class Rows:
    """Collects the rows of one script and writes them where ``--json`` asked (if it did)."""

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        measure: str,
        unit: str,
        ours: float | None,
        against: str,
        kind: Kind,
        theirs: float | None,
        *,
        better: Literal["lower", "higher"] = "lower",
        target: float | None = None,
    ) -> None:
        """One comparison; ``target``: the most (``better="lower"``) or least ours/theirs may be."""
        ratio = ours / theirs if ours is not None and theirs else None
        met = None
        if target is not None and ratio is not None:
            met = ratio <= target if better == "lower" else ratio >= target
        self.rows.append(
            {"benchmark": self.benchmark, "measure": measure, "unit": unit, "better": better,
             "ours": ours, "against": against, "kind": kind, "theirs": theirs, "ratio": ratio,
             "target": target, "met": met}
        )  # fmt: skip

    def write(self, path: str | None) -> None:
        if path:
            Path(path).write_text(json.dumps(self.rows, indent=1) + "\n")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", metavar="PATH", help="also write the comparisons as JSON rows (run_all.py)"
    )
