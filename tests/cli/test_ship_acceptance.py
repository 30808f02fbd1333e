"""Acceptance tests of ``rolesanywhere ship``: the whole command against the project's emulators.

Every test runs the real command (in-process through ``cli.main``/``run_ship``, or as a real
subprocess of the ``rolesanywhere`` console script) over real sockets on 127.0.0.1: the Roles
Anywhere emulator issues the credentials, the OpenSearch Ingestion emulator verifies SigV4 and
stores what it accepts. Each test prints its measured figures (``pytest -s`` shows them) and
asserts the bounds: every line delivered, duplicates bounded, nothing quarantined that should
not be.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rolesanywhere.cli.main import main
from rolesanywhere.cli.ship import run_ship
from rolesanywhere.ship.config.flags import add_ship_arguments, from_args
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import CredentialRecord, OsisEmulator, StaticCredentials
from rolesanywhere.testing.pki import PKI

REGION = "us-east-1"
_PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


# --- helpers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientFiles:
    """A client certificate, its key and the intermediate CA, written to disk."""

    certificate: Path
    private_key: Path
    intermediates: Path

    def flags(self, ra: RolesAnywhereEmulator, *, duration: int | None = None) -> list[str]:
        """The ``credential-process`` identity flags for ``ra``."""
        flags = [
            "--certificate", str(self.certificate),
            "--private-key", str(self.private_key),
            "--intermediates", str(self.intermediates),
            "--trust-anchor-arn", ra.trust_anchor_arn,
            "--profile-arn", ra.profile_arn,
            "--role-arn", ra.role_arn,
            "--endpoint", ra.url,
        ]  # fmt: skip
        if duration is not None:
            flags += ["--session-duration", str(duration)]
        return flags


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything goes straight to 127.0.0.1, whatever the CI environment says."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client_files(rolesanywhere_pki: PKI, tmp_path: Path) -> ClientFiles:
    folder = tmp_path / "pki"
    folder.mkdir()
    cert, key = rolesanywhere_pki.leaf("ec-p256").write(folder, "client")
    chain = folder / "intermediates.pem"
    chain.write_bytes(rolesanywhere_pki.intermediate.cert_pem())
    return ClientFiles(Path(cert), Path(key), chain)


def ship_argv(
    paths: Sequence[Path | str],
    osis: OsisEmulator,
    state_dir: Path,
    *extra: str,
    once: bool = True,
) -> list[str]:
    """``ship`` arguments shipping ``paths`` from their head to ``osis``."""
    argv = ["ship", *map(str, paths), "--read-from-head", "--url", osis.ingest_url]
    argv += ["--region", REGION, "--state-dir", str(state_dir), "--status-interval", "0"]
    if once:
        argv.append("--once")
    return [*argv, *extra]


def run_main(argv: Sequence[str]) -> tuple[int, str]:
    """``rolesanywhere ARGV`` in-process: exit status and stderr."""
    err = io.StringIO()
    status = main(list(argv), stdout=io.StringIO(), stderr=err)
    return status, err.getvalue()


def console_script() -> list[str]:
    """The ``rolesanywhere`` console script next to this interpreter (or an equivalent)."""
    script = Path(sys.executable).with_name("rolesanywhere")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from rolesanywhere.cli.main import main; sys.exit(main())",
    ]


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")  # never the real home's state
    env.update(extra)
    return env


def numbered_lines(count: int, prefix: str) -> list[str]:
    """Unique lines of varying length: ``<prefix> 0000042 …``."""
    filler = "abcdefghijklmnopqrstuvwxyz0123456789"
    return [
        f"{prefix} {i:07d} 2024-01-02T03:04:05Z edge-01 app[{i % 977}]: {filler[: i % 37]}"
        for i in range(count)
    ]


def write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@dataclass(frozen=True)
class Tally:
    """What the emulator stored, compared with what was written."""

    stored: int
    lost: list[str]
    duplicates: int
    unexpected: list[str]


def tally(osis: OsisEmulator, expected: Sequence[str]) -> Tally:
    counts = Counter(osis.logs())
    wanted = set(expected)
    lost = [line for line in expected if counts[line] == 0]
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    unexpected = [str(log) for log in counts if log not in wanted]
    return Tally(sum(counts.values()), lost, duplicates, unexpected)


def dead_letters(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def summary_line(stderr: str) -> str:
    found = [line for line in stderr.splitlines() if "done in" in line]
    assert found, f"no summary line in: {stderr[-2000:]}"
    return found[-1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class ExpiringKeys:
    """The OSIS emulator's credential lookup; :meth:`expire` makes a key look expired, so that
    the emulator answers 401 ``ExpiredTokenException`` as OSIS does for a session past its end."""

    def __init__(self, ra: RolesAnywhereEmulator) -> None:
        self.ra = ra
        self.expired: set[str] = set()

    def expire(self, access_key_id: str) -> None:
        self.expired.add(access_key_id)

    def __call__(self, access_key_id: str) -> CredentialRecord | None:
        record = self.ra.lookup(access_key_id)
        if record is None or access_key_id not in self.expired:
            return record
        past = datetime.now(UTC) - timedelta(seconds=1)
        return StaticCredentials(
            record.access_key_id, record.secret_access_key, record.session_token, past
        )


# --- 1. faults, 413s and a credential expiry ------------------------------------------------------


def test_200k_lines_through_faults_413s_and_an_expired_session_arrive_exactly_once(
    rolesanywhere_pki: PKI, client_files: ClientFiles, tmp_path: Path
) -> None:
    total = 200_000
    sent = numbered_lines(total, "fault")
    log = tmp_path / "app.log"
    write_lines(log, sent)
    state = tmp_path / "state"
    batch = 64 * 1024
    with RolesAnywhereEmulator.for_pki(rolesanywhere_pki, duration_seconds=900) as ra:
        keys = ExpiringKeys(ra)
        with OsisEmulator(credentials=keys, region=REGION, fault_rate=0.2, seed=20240102) as osis:
            osis.script([413, 413, 413])  # the first three batches are "too large": split
            phases: list[str] = []
            expired_key: list[str] = []
            done = threading.Event()

            def director() -> None:
                """Part of the run with a 16 KiB body limit (413 → splits); then the session in
                use expires (401 ExpiredToken) in the middle of the stream."""
                while not done.is_set():
                    accepted = osis.events_accepted
                    if not phases and accepted >= 40_000:
                        osis.split_threshold = 16 * 1024
                        phases.append("413 on")
                    elif len(phases) == 1 and accepted >= 80_000:
                        osis.split_threshold = None
                        phases.append("413 off")
                    elif len(phases) == 2 and accepted >= 100_000:
                        akid = ra.issued[-1].access_key_id
                        keys.expire(akid)
                        expired_key.append(akid)
                        phases.append("expired")
                        return
                    time.sleep(0.002)

            small = ["--batch-size", str(batch), "--max-backoff", "0.05"]
            argv = ship_argv([log], osis, state, *small, *client_files.flags(ra, duration=900))
            thread = threading.Thread(target=director, daemon=True)
            thread.start()
            started = time.perf_counter()
            try:
                status, stderr = run_main(argv)
            finally:
                done.set()
                thread.join(5)
            elapsed = time.perf_counter() - started
            result = tally(osis, sent)
            statuses = dict(sorted(osis.status_counts.items()))
            keys_used = [b.access_key_id for b in osis.batches]
            sessions = len(ra.issued)
            print(
                f"\n[fault] {total:,} lines in {elapsed:.1f} s: stored {result.stored:,}, "
                f"lost {len(result.lost)}, duplicates {result.duplicates}, "
                f"quarantined {len(dead_letters(state))}; answers {statuses}; "
                f"{sessions} sessions of 900 s; phases {phases}\n  {summary_line(stderr)}"
            )
    assert status == 0, stderr
    assert phases == ["413 on", "413 off", "expired"], "the run ended before every phase"
    assert result.lost == [] and result.unexpected == []
    assert result.duplicates == 0 and result.stored == total
    assert dead_letters(state) == [] and " 0 quarantined" in summary_line(stderr)
    for fault in (408, 429, 500, 503):
        assert statuses.get(fault, 0) > 0, f"no {fault} was answered"
    assert statuses.get(413, 0) > 3  # scripted and from the 16 KiB phase
    assert statuses.get(401, 0) >= 1  # the expired session
    assert sessions >= 2  # a fresh session after the expiry
    assert expired_key[0] in keys_used  # used before the expiry ...
    assert keys_used[-1] != expired_key[0]  # ... and replaced after it
    assert elapsed < 60


# --- 2. kill -9 mid-stream, then resume ---------------------------------------------------------


def big_log(tmp_path: Path, total: int, tag: str) -> tuple[list[str], Path, Path]:
    """``total`` numbered lines written to ``big.log``; returns (lines, log path, state dir)."""
    sent = numbered_lines(total, tag)
    log = tmp_path / "big.log"
    write_lines(log, sent)
    return sent, log, tmp_path / "state"


def test_kill_9_mid_stream_then_resume_loses_nothing_and_duplicates_at_most_in_flight(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    total = 300_000
    sent, log, state = big_log(tmp_path, total, "crash")
    batch = 64 * 1024
    argv = console_script() + ship_argv(
        [log], osis, state, "--batch-size", str(batch), *client_files.flags(ra)
    )
    env = child_env(tmp_path)
    started = time.perf_counter()
    with (tmp_path / "first.err").open("wb") as err:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        try:
            wait_for(lambda: osis.events_accepted >= total // 3, 60, "a third of the lines")
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(10)
    before = osis.count()
    assert child.returncode == -signal.SIGKILL
    assert 0 < before < total, "kill -9 must land mid-stream"
    second = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=120, check=False
    )
    elapsed = time.perf_counter() - started
    assert second.returncode == 0, second.stderr.decode(errors="replace")
    result = tally(osis, sent)
    largest_batch = max(len(b.events) for b in osis.batches)
    # A body is at most `batch` bytes: "[" + events joined by "," + "]"; the shortest event is
    # {"date":<epoch float>,"log":"<shortest line>"} (the float takes at least 12 characters).
    shortest = min(len(line) for line in sent) + len('{"date":1700000000.1,"log":""}')
    events_per_batch = (batch - 2 + 1) // (shortest + 1)
    # `ship` keeps one request in flight and sends each tail chunk (a quarter batch) whole in one
    # request, committing its offsets once that request is accepted: what can be delivered but
    # not committed when the process dies is the one batch in flight (stored by the pipeline,
    # the answer lost).
    bound = largest_batch
    print(
        f"\n[crash] {total:,} lines, kill -9 at {before:,} stored; resumed: stored "
        f"{result.stored:,}, lost {len(result.lost)}, duplicates {result.duplicates} "
        f"(= {result.duplicates / largest_batch:.2f} batches; largest accepted batch "
        f"{largest_batch} events, at most {events_per_batch} by size; bound: one batch); "
        f"{elapsed:.1f} s"
    )
    assert largest_batch <= events_per_batch
    assert result.lost == [] and result.unexpected == []
    assert result.duplicates <= bound


# --- SIGTERM: a clean stop ------------------------------------------------------------------------


def test_sigterm_stops_cleanly_and_the_next_run_loses_and_repeats_nothing(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    total = 300_000
    sent, log, state = big_log(tmp_path, total, "term")
    flags = ["--batch-size", str(64 * 1024), *client_files.flags(ra)]
    env = child_env(tmp_path)
    follow = console_script() + ship_argv([log], osis, state, *flags, once=False)
    child = subprocess.Popen(
        follow, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_for(lambda: osis.events_accepted >= total // 3, 60, "a third of the lines")
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    at_stop = osis.count()
    assert child.returncode == 0, stderr.decode(errors="replace")
    summary = summary_line(stderr.decode())
    assert "left for the next run" not in summary
    status, resumed_err = run_main(ship_argv([log], osis, state, *flags))
    assert status == 0, resumed_err
    result = tally(osis, sent)
    print(
        f"\n[sigterm] {total:,} lines, SIGTERM at {at_stop:,} stored, exit status "
        f"{child.returncode}; after the next run: stored {result.stored:,}, lost "
        f"{len(result.lost)}, duplicates {result.duplicates}\n  {summary}"
    )
    assert 0 < at_stop < total
    assert result.lost == [] and result.unexpected == []
    assert result.duplicates == 0  # delivered lines were committed before the exit


# --- 3. rotation while shipping -------------------------------------------------------------------


class Writer(threading.Thread):
    """Appends numbered lines to ``path`` (``O_APPEND``, as loggers do) until stopped.

    :meth:`reopen` is the application's reaction to a rename rotation (a new file at the old
    path); :meth:`hold` pauses writing (for copytruncate).
    """

    def __init__(self, path: Path, prefix: str, per_burst: int = 20, pause: float = 0.002):
        super().__init__(daemon=True)
        self.path = path
        self.prefix = prefix
        self.per_burst = per_burst
        self.pause = pause
        self.lock = threading.Lock()
        self.fd = self._open()
        self.written = 0
        self.stopping = threading.Event()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, n: int) -> str:
        return f"{self.prefix} {n:07d} the quick brown fox jumps over the lazy dog"

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                first = self.written
                data = "".join(self.line(n) + "\n" for n in range(first, first + self.per_burst))
                os.write(self.fd, data.encode())
                self.written += self.per_burst
            time.sleep(self.pause)

    def reopen(self) -> None:
        with self.lock:
            os.close(self.fd)
            self.fd = self._open()

    def stop(self) -> list[str]:
        self.stopping.set()
        self.join(10)
        os.close(self.fd)
        return [self.line(n) for n in range(self.written)]


def test_rename_and_copytruncate_rotations_while_following_lose_nothing(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    logs = tmp_path / "logs"
    logs.mkdir()
    current = logs / "app.log"
    state = tmp_path / "state"
    parser = argparse.ArgumentParser()
    add_ship_arguments(parser)
    flags = [
        str(logs / "*.log"), "--read-from-head", "--url", osis.ingest_url, "--region", REGION,
        "--state-dir", str(state),
        "--refresh-interval", "0.2", "--rotate-wait", "1", "--flush-interval", "0.05",
        *client_files.flags(ra),
    ]  # fmt: skip
    config = from_args(parser.parse_args(flags))
    writer = Writer(current, "rot")
    stop = threading.Event()
    err = io.StringIO()
    outcome: list[int] = []
    shipper = threading.Thread(
        target=lambda: outcome.append(
            run_ship(config, status_interval=0, err=err, stop=stop, install_signals=False)
        ),
        daemon=True,
    )
    shipper.start()
    writer.start()

    def delivered_up_to(n: int) -> Callable[[], bool]:
        def check() -> bool:
            stored = set(osis.logs())
            return all(writer.line(i) in stored for i in range(n))

        return check

    renamed_at: list[int] = []
    started = time.perf_counter()
    try:
        for k in range(1, 4):  # rename + create, three times
            time.sleep(0.4)
            with writer.lock:
                os.rename(current, logs / f"app.log.{k}")
                renamed_at.append(writer.written)
            # the application still writes to the renamed file for a moment, then reopens
            after = renamed_at[-1] + 3 * writer.per_burst
            wait_for(lambda n=after: writer.written >= n, 10, "lines written after the rename")
            writer.reopen()
        time.sleep(0.4)
        # copytruncate, as logrotate does it. copytruncate itself can lose (1) the lines written
        # between the copy and the truncate (they are in neither file) and (2) the lines of the
        # original not yet read when it is truncated (they are only in the copy, which is not
        # followed). So the writer is held across copy + truncate, and the truncate waits until
        # the shipper has read (here: delivered) everything, as copytruncate + delaycompress
        # users make sure with a postrotate/flush step.
        for k in range(2):
            with writer.lock:
                wait_for(delivered_up_to(writer.written), 20, "every line before copytruncate")
                shutil.copyfile(current, logs / f"app.log.copy{k}")
                os.truncate(current, 0)
            time.sleep(0.4)
        time.sleep(0.2)
        expected = writer.stop()
        wait_for(delivered_up_to(len(expected)), 30, "every written line")
    finally:
        if writer.is_alive():
            writer.stop()
        stop.set()
        shipper.join(30)
    elapsed = time.perf_counter() - started
    result = tally(osis, expected)
    print(
        f"\n[rotation] {len(expected):,} lines, 3 rename rotations + 2 copytruncates in "
        f"{elapsed:.1f} s: stored {result.stored:,}, lost {len(result.lost)}, duplicates "
        f"{result.duplicates}\n  {summary_line(err.getvalue())}"
    )
    assert outcome == [0], err.getvalue()
    assert result.lost == [] and result.unexpected == []
    assert result.duplicates == 0
    for k, count in enumerate(renamed_at, 1):  # lines went to each file after its rename
        last = (logs / f"app.log.{k}").read_text().splitlines()[-1]
        assert last >= writer.line(count + 2 * writer.per_burst), f"app.log.{k}"


# --- 4. one poisoned record -----------------------------------------------------------------------


def test_a_poisoned_record_goes_to_the_dead_letter_file_and_the_rest_is_delivered(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    lines = numbered_lines(20_000, "dl")
    poison = "dl 0012345 POISON the pipeline refuses this record"
    lines[12_345] = poison
    osis.reject_if = lambda event: "POISON" in str(event.get("log", ""))
    log = tmp_path / "app.log"
    write_lines(log, lines)
    state = tmp_path / "state"
    argv = ship_argv([log], osis, state, "--max-backoff", "0.05", *client_files.flags(ra))
    status, stderr = run_main(argv)
    assert status == 0, stderr
    result = tally(osis, [line for line in lines if line != poison])
    letters = dead_letters(state)
    print(
        f"\n[400] {len(lines):,} lines with one poisoned: stored {result.stored:,}, lost "
        f"{len(result.lost)}, duplicates {result.duplicates}, quarantined {len(letters)}; "
        f"answers {osis.status_counts}\n  {summary_line(stderr)}"
    )
    assert result.lost == [] and result.duplicates == 0 and result.unexpected == []
    (letter,) = letters
    assert letter["event"]["log"] == poison
    assert letter["status"] == 400
    assert "HTTP 400" in letter["reason"] and "refused" in letter["reason"]
    assert " 1 quarantined" in summary_line(stderr)
    # the quarantined record's offset was committed: a second run sends nothing again
    requests = osis.requests
    status, stderr = run_main(argv)
    assert status == 0, stderr
    assert osis.requests == requests and len(dead_letters(state)) == 1


# --- 5. persistent buffering: nothing over 1 MiB reaches the pipeline ---------------------------


def test_persistent_buffering_drops_nothing_long_lines_are_cut_or_split_and_marked(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    osis.persistent_buffering = True
    max_line = (1 << 20) - 1024  # the largest --max-line-size a 1 MiB batch allows
    just_under = "U" * max_line  # its record is a few dozen bytes under the 1 MiB limit
    over_ascii = "O" * ((1 << 20) + 300_000)  # over 1 MiB on disk: split at max_line
    # under max_line on disk, but JSON-escaped ("\u00e9": 6 bytes) far over 1 MiB: the shipper
    # cuts it to fit and marks it
    escaped = "\u00e9" * 400_000
    quotes = 'say "hi" ' * 100_000  # 900,000 bytes, ~1.1 MiB escaped: cut and marked
    short = numbered_lines(3_000, "pb")
    lines = [*short[:1000], just_under, *short[1000:2000], over_ascii, escaped, quotes]
    lines += short[2000:]
    log = tmp_path / "app.log"
    write_lines(log, lines)
    state = tmp_path / "state"
    status, stderr = run_main(
        ship_argv([log], osis, state, "--max-line-size", str(max_line), *client_files.flags(ra))
    )
    assert status == 0, stderr
    documents = osis.documents()
    by_log = Counter(str(doc["log"]) for doc in documents)
    marked = [doc for doc in documents if doc.get("truncated") is True]
    largest = max(b.content_bytes for b in osis.batches)
    print(
        f"\n[persistent buffering] {len(lines):,} lines ({sum(map(len, lines)):,} characters): "
        f"{len(documents):,} records stored, dropped {osis.dropped_events}, marked truncated "
        f"{len(marked)}, largest body {largest:,} bytes, re-split {osis.resplit_requests}\n  "
        f"{summary_line(stderr)}"
    )
    assert osis.dropped_events == 0 and osis.resplit_requests == 0
    assert largest <= 1 << 20
    for line in short:
        assert by_log[line] == 1, line
    assert by_log[just_under] == 1  # whole, not cut
    # over 1 MiB on disk: split into max_line pieces, all there, in order
    pieces = [over_ascii[i : i + max_line] for i in range(0, len(over_ascii), max_line)]
    assert all(by_log[piece] == 1 for piece in pieces)
    # escaped over 1 MiB: one record each, a marked prefix of the line
    assert len(marked) == 2 and " 2 truncated" in summary_line(stderr)
    for original, doc in zip((escaped, quotes), marked, strict=True):
        assert original.startswith(doc["log"]) and len(doc["log"]) > 100_000
    assert len(documents) == len(short) + 1 + len(pieces) + 2
    assert dead_letters(state) == []


def test_a_line_cut_by_long_lines_truncate_is_reported(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    log = tmp_path / "app.log"
    write_lines(log, ["before", "X" * 100_000, "after"])
    state = tmp_path / "state"
    argv = ship_argv([log], osis, state, "--long-lines", "truncate", *client_files.flags(ra))
    status, stderr = run_main(argv)
    assert status == 0, stderr
    assert osis.logs() == ["before", "X" * 32_768, "after"]  # cut to --max-line-size (32 KiB)
    summary = summary_line(stderr)
    print(f"\n[long-lines truncate] 100,000-byte line cut to 32,768 bytes\n  {summary}")
    # 67,232 bytes were dropped: the run must say so (PROTOCOL.md §4: "truncate ... and say so")
    assert "1 long lines cut (67,232 B dropped)" in summary


# --- 6. configuration: the blog's Fluent Bit file and an AWS profile ----------------------------


def blog_fluent_bit_conf(
    folder: Path, osis: OsisEmulator, profile: str, state_dir: Path, *extra_output: str
) -> Path:
    """The Fluent Bit set-up of the AWS blog post (tail → http with aws_auth), pointed at the
    emulator over plain http, with one key Fluent Bit does not know."""
    output = "\n".join(f"    {line}" for line in extra_output)
    text = f"""\
[SERVICE]
    Flush        1
    Log_Level    info
    storage.path {state_dir}

[INPUT]
    Name              tail
    Path              {folder}/*.log
    Read_from_Head    true
    Refresh_Interval  5
    Mem_Buf_Limit     5MB
    Bogus_Tail_Key    42

[OUTPUT]
    Name         http
    Match        *
    Host         127.0.0.1
    Port         {osis.port}
    URI          /test-ingestion-path
    Format       json
    aws_auth     true
    aws_region   us-east-1
    aws_service  osis
    tls          Off
    aws_profile  {profile}
{output}
"""
    path = folder.parent / "fluent-bit.conf"
    path.write_text(text)
    return path


def aws_config_file(
    path: Path, profile: str, files: ClientFiles, ra: RolesAnywhereEmulator
) -> Path:
    """An AWS config file whose profile runs the official helper's credential-process."""
    helper = " ".join(["aws_signing_helper", "credential-process", *files.flags(ra)])
    path.write_text(f"[profile {profile}]\ncredential_process = {helper}\nregion = {REGION}\n")
    return path


@pytest.fixture
def blog_osis(rolesanywhere_emulator: RolesAnywhereEmulator) -> Iterator[OsisEmulator]:
    with OsisEmulator(
        credentials=rolesanywhere_emulator, region=REGION, path="/test-ingestion-path"
    ) as osis:
        yield osis


def test_blog_fluent_bit_config_with_an_aws_profile_ships_everything(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    blog_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
) -> None:
    ra, osis = rolesanywhere_emulator, blog_osis
    logs = tmp_path / "logs"
    logs.mkdir()
    first, second = numbered_lines(3_000, "blog-a"), numbered_lines(2_000, "blog-b")
    write_lines(logs / "app.log", first)
    write_lines(logs / "web.log", second)
    write_lines(logs / "skipped.txt", ["not a .log file"])
    state = tmp_path / "state"
    conf = blog_fluent_bit_conf(logs, osis, "ingest", state, "Log_Level trace", "Unknown_Out x")
    aws = aws_config_file(tmp_path / "aws-config", "ingest", client_files, ra)
    env = child_env(
        tmp_path,
        AWS_CONFIG_FILE=str(aws),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )
    argv = [*console_script(), "ship", "-c", str(conf), "--once", "--status-interval", "0"]
    started = time.perf_counter()
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60, check=False
    )
    elapsed = time.perf_counter() - started
    stderr = done.stderr.decode(errors="replace")
    result = tally(osis, first + second)
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    print(
        f"\n[config -c] {len(first) + len(second):,} lines in {elapsed:.1f} s: stored "
        f"{result.stored:,}, lost {len(result.lost)}, duplicates {result.duplicates}; "
        f"{len(warnings)} warnings\n  " + "\n  ".join(warnings)
    )
    assert done.returncode == 0, stderr
    assert result.lost == [] and result.duplicates == 0 and result.unexpected == []
    assert {b.access_key_id for b in osis.batches} <= {c.access_key_id for c in ra.issued}
    # every key read but not used is named on stderr
    for key in ("Bogus_Tail_Key", "Unknown_Out", "Log_Level", "Mem_Buf_Limit"):
        assert any(key in line for line in warnings), f"no warning names {key}"
    assert any("Bogus_Tail_Key" in line and "unknown" in line for line in warnings)
    assert any("Unknown_Out" in line and "unknown" in line for line in warnings)
    assert (state / "positions.db").exists()  # storage.path is the state directory


def test_aws_profile_flag_runs_the_helper_line_in_process_without_a_subprocess(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    client_files: ClientFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ra, osis = rolesanywhere_emulator, rolesanywhere_osis
    aws = aws_config_file(tmp_path / "aws-config", "hybrid", client_files, ra)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    spawned: list[object] = []

    def no_subprocess(*args: object, **kwargs: object) -> None:
        spawned.append(args)
        raise AssertionError("credential_process must run in-process, not as a subprocess")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(os, "posix_spawn", no_subprocess, raising=False)
    lines = numbered_lines(5_000, "profile")
    log = tmp_path / "app.log"
    write_lines(log, lines)
    state = tmp_path / "state"
    status, stderr = run_main(ship_argv([log], osis, state, "--aws-profile", "hybrid"))
    result = tally(osis, lines)
    print(
        f"\n[--aws-profile] {len(lines):,} lines: stored {result.stored:,}, lost "
        f"{len(result.lost)}, duplicates {result.duplicates}; CreateSession calls {ra.calls}, "
        f"subprocesses {len(spawned)}\n  {summary_line(stderr)}"
    )
    assert status == 0, stderr
    assert spawned == []
    assert result.lost == [] and result.duplicates == 0 and result.unexpected == []
    assert ra.successes >= 1
    assert {b.access_key_id for b in osis.batches} <= {c.access_key_id for c in ra.issued}
