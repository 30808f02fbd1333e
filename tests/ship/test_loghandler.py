"""``OsisHandler``: records shaped with the formatter's output, a bounded queue that drops the
newest and says so, flush on close and at exit, no recursion through the shipper's own logging."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.ship.loghandler import OsisHandler
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import OsisEmulator
from rolesanywhere.testing.pki import PKI

URL = "https://pipe-abc123.us-east-1.osis.amazonaws.com/log/ingest"


class Server:
    """MockTransport handler recording delivered events; ``gate`` stalls every request."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.statuses = list(statuses or [])
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        self.gate.wait()
        with self.lock:
            self.requests += 1
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                self.events.extend(json.loads(request.content))
        return httpx.Response(status)

    def logs(self) -> list[str]:
        with self.lock:
            return [event["log"] for event in self.events]


def make_handler(
    tmp_path: Path, server: Server, stream: io.StringIO | None = None, **options: Any
) -> OsisHandler:
    shipper_options = {
        "state_dir": str(tmp_path),
        "trust_env": False,
        "flush_interval": 60.0,
        "backoff_base": 0.001,
        "backoff_max": 0.01,
    }
    shipper_options.update(options.pop("shipper_options", {}))
    return OsisHandler(
        URL,
        shipper_options=shipper_options,
        transport=httpx.MockTransport(server),
        stream=stream if stream is not None else io.StringIO(),
        **options,
    )


@pytest.fixture
def app_logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"app.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def test_records_carry_the_formatters_output_and_extra_fields(
    tmp_path: Path, app_logger: logging.Logger
) -> None:
    server = Server()
    handler = make_handler(tmp_path, server, extra_fields={"service": "billing"})
    handler.setFormatter(logging.Formatter("%(levelname)s|%(name)s|%(message)s"))
    app_logger.addHandler(handler)
    before = time.time()
    marker = object()
    app_logger.info("user %s logged in", "bob", extra={"user": "bob", "ctx": {"n": 1, "o": marker}})
    try:
        raise ValueError("boom")
    except ValueError:
        app_logger.exception("it failed")
    handler.close()
    first, second = server.events
    assert list(first) == ["date", "log", "level", "logger", "thread", "extra", "service"]
    assert first["log"] == f"INFO|{app_logger.name}|user bob logged in"
    assert first["level"] == "INFO" and first["logger"] == app_logger.name
    assert first["thread"] == threading.current_thread().name
    assert before <= first["date"] <= time.time()
    assert first["extra"] == {"user": "bob", "ctx": {"n": 1, "o": str(marker)}}
    assert first["service"] == "billing"
    assert second["level"] == "ERROR" and "extra" not in second
    assert second["log"].startswith(f"ERROR|{app_logger.name}|it failed\nTraceback")
    assert "ValueError: boom" in second["log"]
    assert handler.dropped == 0


def test_a_full_queue_drops_the_newest_counts_and_warns(
    tmp_path: Path, app_logger: logging.Logger
) -> None:
    server = Server()
    server.gate.clear()  # the pipeline stalls
    stream = io.StringIO()
    handler = make_handler(
        tmp_path,
        server,
        stream,
        max_queue=5,
        shipper_options={
            "batch_bytes": 4096,
            "max_pending_bytes": 4096,
            "max_in_flight": 1,
            "flush_interval": 0.01,
        },
    )
    app_logger.addHandler(handler)
    big = "x" * 3000

    def settle() -> None:
        deadline = time.monotonic() + 5
        while handler.queued and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)

    app_logger.info("msg-000 %s", big)  # sent after 10 ms: it stalls at the server
    assert server.entered.wait(5)
    app_logger.info("msg-001 %s", big)  # accepted by the shipper: pending now over 4096
    settle()
    app_logger.info("msg-002")  # the feeder blocks submitting this one
    settle()
    started = time.monotonic()
    for i in range(3, 40):
        app_logger.info("msg-%03d", i)
    assert time.monotonic() - started < 1  # block_timeout=0: never waits
    assert handler.queued == 5
    assert handler.dropped == 40 - 8
    assert "dropped 1 log record(s)" in stream.getvalue()  # at once, then rate-limited
    assert stream.getvalue().count("dropped") == 1
    server.gate.set()
    handler.close()
    delivered = [log.split()[0] for log in server.logs()]
    assert delivered == [f"msg-{i:03d}" for i in range(8)]  # the oldest kept, newest dropped
    assert "dropped 31 log record(s) since the last report" in stream.getvalue()
    assert "32 in all" in stream.getvalue()


def test_block_timeout_bounds_the_wait(tmp_path: Path, app_logger: logging.Logger) -> None:
    server = Server()
    server.gate.clear()
    handler = make_handler(
        tmp_path,
        server,
        max_queue=1,
        block_timeout=0.2,
        shipper_options={
            "batch_bytes": 2048,
            "max_pending_bytes": 2048,
            "max_in_flight": 1,
            "flush_interval": 0.01,
        },
    )
    app_logger.addHandler(handler)
    app_logger.info("a" * 1500)
    assert server.entered.wait(5)
    app_logger.info("b" * 1500)  # taken by the feeder, which then blocks on the next one
    app_logger.info("c" * 1500)
    deadline = time.monotonic() + 5
    while handler.queued and time.monotonic() < deadline:
        time.sleep(0.005)
    app_logger.info("d")  # fills the queue
    started = time.monotonic()
    app_logger.info("e")  # waits block_timeout, then is dropped
    waited = time.monotonic() - started
    assert 0.15 <= waited < 1.5
    assert handler.dropped == 1
    server.gate.set()
    handler.close()
    assert [log[0] for log in server.logs()] == ["a", "b", "c", "d"]


def test_close_flushes_and_later_records_are_counted_not_raised(
    tmp_path: Path, app_logger: logging.Logger
) -> None:
    server = Server(statuses=[503])
    handler = make_handler(tmp_path, server)
    app_logger.addHandler(handler)
    for i in range(10):
        app_logger.warning("record %d", i)
    time.sleep(0.05)
    assert server.requests == 0  # flush_interval is 60 s: only close sends
    handler.close()
    assert server.logs() == [f"record {i}" for i in range(10)]
    app_logger.warning("after close")
    assert handler.dropped == 1
    handler.close()  # idempotent


def test_no_recursion_through_the_shippers_own_logging(tmp_path: Path) -> None:
    server = Server(statuses=[503, 503])  # the shipper logs retry warnings
    handler = make_handler(tmp_path, server)
    root = logging.getLogger()
    saved = root.level, logging.getLogger("httpx").level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # logs every request, on worker threads
    try:
        logging.getLogger("app.main").info("one")
        logging.getLogger("rolesanywhere.something").warning("internal: ignored")
        handler.flush(timeout=5)
        logging.getLogger("app.main").info("two")
        handler.flush(timeout=5)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("httpx").setLevel(saved[1])
        handler.close()
    assert server.logs() == ["one", "two"]
    assert handler.ignored >= 3  # the internal record, retry warnings, httpx request logs
    assert server.requests == 4  # two 503s, then one request per flush: no feedback loop


def test_against_the_osis_emulator_with_sigv4(
    tmp_path: Path,
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    app_logger: logging.Logger,
) -> None:
    emu = rolesanywhere_emulator
    client = emu.client(rolesanywhere_pki.leaf("ec-p256").identity())
    auth = SigV4Auth(client, service="osis", region=emu.region)
    handler = OsisHandler(
        rolesanywhere_osis.ingest_url,
        auth,
        extra_fields={"env": "test"},
        shipper_options={"state_dir": str(tmp_path), "trust_env": False},
    )
    app_logger.addHandler(handler)
    for i in range(100):
        app_logger.info("emulated %d", i, extra={"i": i})
    handler.close()
    client.close()
    docs = rolesanywhere_osis.documents()
    assert sorted(doc["log"] for doc in docs) == sorted(f"emulated {i}" for i in range(100))
    assert {doc["env"] for doc in docs} == {"test"}
    assert sorted(doc["extra"]["i"] for doc in docs) == list(range(100))
    assert "@timestamp" in docs[0]


_EXIT_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from rolesanywhere.ship.loghandler import OsisHandler
    handler = OsisHandler(sys.argv[1], close_timeout=float(sys.argv[2]), shipper_options={
        "state_dir": sys.argv[3], "trust_env": False, "backoff_base": 0.05,
        "backoff_max": 0.2, "flush_interval": 60})
    log = logging.getLogger("exiting.app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for i in range(3):
        log.info("at exit %d", i)
    # no close(): the atexit hook must deliver, or give up within close_timeout
    """
)


def _run_exit_script(url: str, close_timeout: float, tmp_path: Path) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, url, str(close_timeout), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started, done.stderr


def test_interpreter_exit_delivers_pending_records(tmp_path: Path) -> None:
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.extend(event["log"] for event in json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/log/ingest"
        _, stderr = _run_exit_script(url, 10.0, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert received == [f"at exit {i}" for i in range(3)]
    assert "not delivered" not in stderr


def test_interpreter_exit_does_not_hang_when_the_network_is_down(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    elapsed, stderr = _run_exit_script(f"http://127.0.0.1:{port}/log/ingest", 1.0, tmp_path)
    assert elapsed < 15
    assert "3 log record(s) not delivered at close" in stderr
    assert "ConnectError" in stderr or "conn" in stderr
