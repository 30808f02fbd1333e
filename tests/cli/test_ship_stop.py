"""``rolesanywhere ship`` stops on SIGTERM/SIGINT within its bound while the endpoint is down.

A real subprocess of the console script, with more than ``max_pending_bytes`` (8 MiB) of lines
waiting behind an endpoint that answers every request 503: the first signal ends the process
within ``--stop-timeout`` (default 5 s), a second one at once, and the next run against a
working OpenSearch Ingestion emulator delivers every line (nothing was committed undelivered).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import OsisEmulator
from tests.cli import test_ship_acceptance
from tests.cli.test_ship_acceptance import (
    ClientFiles,
    child_env,
    console_script,
    numbered_lines,
    run_main,
    ship_argv,
    summary_line,
    tally,
    write_lines,
)
from tests.faults import FaultServer, http_response

#: More than the shipper's 8 MiB of pending encoded events: ``submit`` blocks behind them.
TOTAL_LINES = 140_000
#: The default ``stop_timeout``, and the slack a loaded test machine may add to it.
DEFAULT_BOUND = 5.0
SLACK = 1.5
UNAVAILABLE = http_response(503, b"busy", reason="Service Unavailable")


#: The acceptance tests' fixture: a client certificate, its key and the intermediate CA on disk.
client_files = test_ship_acceptance.client_files


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


def start_blocked_ship(
    tmp_path: Path,
    ra: RolesAnywhereEmulator,
    files: ClientFiles,
    url: str,
    *extra: str,
) -> tuple[subprocess.Popen[bytes], Path, list[str], Path]:
    """``ship`` (following) against ``url`` until more than 8 MiB is pending behind it."""
    sent = numbered_lines(TOTAL_LINES, "stop")
    log = tmp_path / "big.log"
    write_lines(log, sent)
    assert log.stat().st_size > 8 << 20
    state = tmp_path / "state"
    argv = ["ship", str(log), "--read-from-head", "--url", url, "--region", "us-east-1"]
    argv += ["--state-dir", str(state), "--status-interval", "0", *files.flags(ra), *extra]
    err_path = tmp_path / "first.err"
    with err_path.open("wb") as err:
        child = subprocess.Popen(
            console_script() + argv,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=child_env(tmp_path),
        )
    # Nothing is ever delivered, so once the first batch has been refused twice the reader has
    # long read 8 MiB (the whole file encodes to ~15 MiB) and waits in submit for room: that
    # is also why no status line comes while it waits.
    deadline = time.monotonic() + 60
    while "attempt 2;" not in err_path.read_text(errors="replace"):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            child.wait(10)
            raise AssertionError(
                "ship never retried: " + err_path.read_text(errors="replace")[-2000:]
            )
        time.sleep(0.05)
    time.sleep(1.0)
    return child, err_path, sent, state


def wait_exit(child: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until ``child`` exits (killed after ``timeout``: the assertion then fails)."""
    started = time.monotonic()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)
        return float("inf")
    return time.monotonic() - started


@contextlib.contextmanager
def endpoint_down(kind: str) -> Iterator[str]:
    """The URL of an endpoint that answers 503 to everything, or of a closed port."""
    if kind == "503":
        with FaultServer("canned", raw=UNAVAILABLE) as down:
            yield down.url + "/log/ingest"
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}/log/ingest"  # nothing listens there now


@pytest.mark.parametrize("kind", ["503", "closed-port"])
def test_sigterm_with_the_endpoint_down_and_8_mib_pending_exits_within_the_bound_and_loses_nothing(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
    kind: str,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    with endpoint_down(kind) as url:
        child, err_path, sent, state = start_blocked_ship(tmp_path, ra, client_files, url)
        child.send_signal(signal.SIGTERM)
        elapsed = wait_exit(child, DEFAULT_BOUND + 20)
    stderr = err_path.read_text(errors="replace")
    assert elapsed <= DEFAULT_BOUND + SLACK, f"{elapsed:.1f} s after SIGTERM: {stderr[-1500:]}"
    assert child.returncode == 0, stderr[-2000:]
    summary = summary_line(stderr)
    assert "0 events delivered" in summary and "left for the next run" in summary, summary

    status, resumed = run_main(
        ship_argv([str(tmp_path / "big.log")], osis, state, *client_files.flags(ra))
    )
    assert status == 0, resumed[-2000:]
    result = tally(osis, sent)
    print(
        f"\n[stop] {TOTAL_LINES:,} lines ({(tmp_path / 'big.log').stat().st_size / 2**20:.1f} "
        f"MiB), endpoint {kind}; SIGTERM -> exit in {elapsed:.2f} s "
        f"(bound {DEFAULT_BOUND} s), status {child.returncode}; next run: stored "
        f"{result.stored:,}, lost {len(result.lost)}, duplicates {result.duplicates}\n  {summary}"
    )
    assert result.lost == [] and result.unexpected == []
    assert result.stored == len(sent)


def test_a_second_signal_exits_at_once(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    with FaultServer("canned", raw=UNAVAILABLE) as down:
        # a long stop timeout: only the second signal can make this exit quickly
        child, err_path, _, _ = start_blocked_ship(
            tmp_path,
            rolesanywhere_emulator,
            client_files,
            down.url + "/log/ingest",
            "--stop-timeout",
            "60",
        )
        child.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert child.poll() is None, "the first signal must not end it at once with a 60 s bound"
        child.send_signal(signal.SIGINT)
        elapsed = wait_exit(child, 20)
    stderr = err_path.read_text(errors="replace")
    print(f"\n[second signal] SIGINT after SIGTERM -> exit in {elapsed:.2f} s")
    assert elapsed <= 1.0 + SLACK, f"{elapsed:.1f} s after the second signal: {stderr[-1500:]}"
    assert child.returncode == -signal.SIGINT
    assert "second SIGINT: stopping now" in stderr
