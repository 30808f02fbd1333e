"""Access to ``../shared/conformance`` (test vectors no one on this project wrote)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rolesanywhere.testing.emulator_records import RecordedRequest

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
SIGV4 = ROOT / "sigv4-v4"
X509 = ROOT / "rolesanywhere-x509"


def _missing(folder: Path) -> str:
    return f"conformance vectors not found at {folder} (expected ../shared/conformance)"


def require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(_missing(folder))
    return folder


def _cases(folder: Path, marker: str) -> list[Any]:
    """The case names under ``folder`` as parameters; one skipped parameter naming the folder
    when it is absent (an empty parameter set would skip without saying why)."""
    if not folder.is_dir():
        return [pytest.param("absent", marks=pytest.mark.skip(reason=_missing(folder)))]
    return sorted(p.name for p in folder.iterdir() if (p / marker).is_file())


def sigv4_cases() -> list[Any]:
    return _cases(SIGV4, "request.txt")


def x509_cases() -> list[Any]:
    return _cases(X509, "case.json")


def parse_request(raw: bytes) -> RecordedRequest:
    """Parse the suite's ``request.txt``: ``Name:value`` lines, folded lines, blank line, body."""
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        headers.append((name, value))
    return RecordedRequest(method, target, tuple(headers), body)


def load_sigv4(case: str) -> tuple[dict[str, Any], RecordedRequest, Path]:
    folder = require(SIGV4) / case
    context = json.loads((folder / "context.json").read_text())
    return context, parse_request((folder / "request.txt").read_bytes()), folder


def sigv4_time(context: dict[str, Any]) -> datetime:
    """The case's ``timestamp`` as an aware datetime."""
    return datetime.fromisoformat(str(context["timestamp"]).replace("Z", "+00:00"))


def header(request: RecordedRequest, name: str) -> str:
    """The first value of header ``name`` (any case)."""
    value = request.header(name)
    if value is None:
        raise KeyError(name)
    return value


def request_url(request: RecordedRequest, scheme: str = "https") -> str:
    """The absolute URL of a parsed request: its ``Host`` header and request target."""
    return f"{scheme}://{header(request, 'Host')}{request.target}"
