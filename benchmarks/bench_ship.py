"""``rolesanywhere ship`` throughput and memory: log lines from a file to the local OSIS emulator.

Generates a syslog-like file of 1,000,000 varied lines of ~150 B in a temporary directory and
ships it with the real console script in its own process::

    rolesanywhere ship FILE --once --read-from-head --url OSIS --region us-east-1 \\
        --state-dir TMP --status-interval 0 --certificate ... --endpoint ROLES_ANYWHERE

Both emulators (Roles Anywhere, and OSIS with ``store=False``: every SigV4 signature is verified
and events and bytes are counted, nothing is stored) run on plain-HTTP loopback in *this*
process, whose main thread only samples the OSIS counters every 20 ms; the shipper and the floor
client are separate processes, so the 2 cores are shared between the emulator and the client.

Rows:

- ``ship, 1 line``: the fixed cost (interpreter start, imports, CreateSession, one request) and
  the RSS floor of the process; it also warms the OS caches for the runs after it.
- ``ship``: wall time from spawn to exit of the ship process (nothing subtracted: interpreter
  start, imports, CreateSession, reading, encoding, signing, sending, the last commit), its
  events/s and MB/s of log bytes read, and its own peak RSS (``wait4`` ``ru_maxrss`` reported by
  a bare ``python -S`` spawner, as ``bench_cli.py`` does). "steady ev/s" is the emulator's
  accepted-events counter between the first and the last accepted request (start-up excluded);
  "start s" is the time from spawn to the first accepted request. The run of median wall time
  of ``--runs`` (3) is shown, with the largest peak RSS of them.
- ``floor``: the very bodies the first ``ship`` run sent (recorded by its emulator, a list
  append per request), POSTed unsigned to an emulator with ``verify_signatures=False`` by a
  separate process with httpx (the shipper's HTTP client), one request at a time by default as
  ``ship`` does (its shipper runs with ``max_in_flight=1``; ``--floor-threads`` to change),
  timed from the first POST to the last answer (no start-up, no reading, encoding or signing);
  interleaved with the ``ship`` runs, median shown.
- ``--gzip`` rows (one run each): the same with ``Content-Encoding: gzip`` against an emulator
  with ``compression="gzip"`` (the floor POSTs the compressed bodies ``ship --gzip`` sent).
- ``ship 1 GiB backlog`` (``--backlog-gib``; skipped by ``--quick``, or when less than 3 GiB is
  free): the file repeated to ~1 GiB; peak RSS of the ship process and events/s.

Every ship row checks that the emulator accepted exactly every line of the file, with every
answer a 200 (so no request was retried: no duplicates; counted, not stored) and the shipper's
summary reporting no quarantined or truncated events and no retries. Temporary files are
deleted at exit.

Targets (issue): ship >= 100,000 events/s on the 1,000,000-line run (median wall time, spawn to
exit); peak RSS <= 100 MB on a 1 GiB backlog. Exit status 1 when one is missed.
Run: ``python benchmarks/bench_ship.py [--quick] [--runs 3] [--backlog-gib 1] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bench_rows import Rows, add_json_option
from timed_spawn import read_timing, timed_argv

if TYPE_CHECKING:
    from rolesanywhere.testing.osis import OsisEmulator

BIN = Path(sys.executable).parent
GIB = 1 << 30
MB = 1e6
MIN_FREE_BYTES = 3 * GIB
TARGET_EVENTS_PER_S = 100_000
TARGET_RSS_MB = 100.0
_SAMPLE_S = 0.02

# --- the log file -----------------------------------------------------------------------------

_HOSTS = (
    "edge-01.fra1.int",
    "edge-02.fra1.int",
    "api-7f9c4.iad2.int",
    "db-primary.iad2",
    "worker-12.ams3.int",
    "ingest-3.ams3",
)
_USERS = ("deploy", "root", "backup", "alice", "svc-metrics", "jenkins", "postgres")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _message(n: int) -> str:
    """One varied syslog message body (~125 B on average) for line ``n``."""
    x = (n * 2654435761) & 0xFFFFFFFF
    a, b, c = x & 0xFF, (x >> 8) & 0xFF, (x >> 16) & 0xFF
    pid = 1000 + (x >> 12) % 60000
    user = _USERS[(x >> 5) % len(_USERS)]
    ms = (x >> 3) % 2000
    digest = f"{x:08x}{(x * 40503) & 0xFFFFFFFF:08x}"
    kind = (x >> 24) % 9
    if kind == 0:
        return (
            f"sshd[{pid}]: Accepted publickey for {user} from 10.{a}.{b}.{c} port "
            f"{20000 + x % 40000} ssh2: ED25519 SHA256:{digest}{digest[:11]}"
        )
    if kind == 1:
        return (
            f'nginx[{pid}]: 10.{a}.{b}.{c} - - "GET /api/v1/orders/{n}?expand=items HTTP/1.1" '
            f'{(200, 200, 200, 304, 404, 500)[x % 6]} {x % 90000} "-" "curl/8.{c % 12}.0" '
            f"rt=0.{ms % 1000:03d}"
        )
    if kind == 2:
        return (
            f"kernel: [{x % 900000}.{(x * 7) % 1000000:06d}] eth{a % 4}: link up, 1000 Mbps, "
            f"full duplex, flow control rx/tx, irq {32 + b % 200}"
        )
    if kind == 3:
        return (
            f"CRON[{pid}]: ({user}) CMD (/usr/local/bin/backup --target "
            f"s3://backups-{b}/daily/{n} --retries 3)"
        )
    if kind == 4:
        return (
            f"systemd[1]: Started Session {n} of User {user} (uid {1000 + c}), unit "
            f"session-{n}.scope, slice user-{1000 + c}.slice"
        )
    if kind == 5:
        return (
            f'app[{pid}]: level=info msg="request completed" method=POST path=/v2/ingest '
            f"status=202 duration_ms={ms} trace_id={digest}"
        )
    if kind == 6:
        return (
            f"postfix/smtpd[{pid}]: connect from mail-{b}.example.net[192.0.2.{c}]; TLS "
            "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"
        )
    if kind == 7:
        return (
            f'app[{pid}]: level=warn msg="slow query" sql="SELECT * FROM events WHERE '  # noqa: S608
            f"tenant_id = {b} AND ts > now() - interval '1 hour' LIMIT 500\" took_ms={ms * 3}"
        )
    return (
        f'app[{pid}]: level=error msg="upload failed" user="{user}" file="Résumé {a}.pdf" '
        f'error="connection reset by peer" attempt={1 + a % 5}'
    )


def _stamps(first: int, count: int, start: float) -> list[str]:
    """``Mmm dd HH:MM:SS`` of every 20th line (20 lines a second) from line ``first``."""
    out = []
    for second in range(first // 20, (first + count) // 20 + 1):
        t = time.gmtime(start + second)
        out.append(
            f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
    return out


def _lines_block(first: int, count: int, start: float) -> bytes:
    stamps = _stamps(first, count, start)
    base = first // 20
    return "".join(
        f"{stamps[n // 20 - base]} {_HOSTS[n % 6]} {_message(n)}\n"
        for n in range(first, first + count)
    ).encode()


def write_log(path: Path, lines: int) -> None:
    """Write ``lines`` lines (a day ago, 20 a second)."""
    start = time.time() - 86400
    block = 50_000
    with open(path, "wb") as out:
        for first in range(0, lines, block):
            out.write(_lines_block(first, min(block, lines - first), start))


def write_backlog(path: Path, source: Path, lines: int, size: int) -> int:
    """``source`` (of ``lines`` lines) repeated up to ``size`` bytes, cut at a line end; return
    the number of lines. (Generating ~7 million more lines would take half a minute.)"""
    data = source.read_bytes()
    written = count = 0
    with open(path, "wb") as out:
        while written + len(data) <= size:
            out.write(data)
            written += len(data)
            count += lines
        cut = data.rfind(b"\n", 0, size - written) + 1
        out.write(data[:cut])
        count += data.count(b"\n", 0, cut)
    return count


# --- the floor ----------------------------------------------------------------------------------


def save_bodies(osis: OsisEmulator, out: Path) -> list[int]:
    """Write the bodies ``osis`` recorded (as received: compressed with gzip) to ``out``; return
    their sizes."""
    sizes: list[int] = []
    with open(out, "wb") as dst:
        for request, status in osis.recorded_requests:
            if status == 200:
                dst.write(request.body)
                sizes.append(len(request.body))
    return sizes


def floor_client(url: str, bodies: str, sizes_file: str, threads: int, gzip: bool) -> int:
    """(Child process.) POST every body unsigned with ``threads`` threads; print JSON timings."""
    import httpx

    sizes = json.loads(Path(sizes_file).read_text())
    chunks: list[bytes] = []
    with open(bodies, "rb") as f:
        chunks.extend(f.read(n) for n in sizes)
    headers = {"Content-Type": "application/json"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    todo = iter(chunks)

    def work(client: httpx.Client) -> None:
        while True:
            with lock:
                body = next(todo, None)
            if body is None:
                return
            status = client.post(url, content=body, headers=headers).status_code
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    with httpx.Client(timeout=60.0, trust_env=False) as client:
        client.post(url, content=b"[]", headers={"Content-Type": "application/json"})  # connect
        started = time.perf_counter()
        workers = [threading.Thread(target=work, args=(client,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "statuses": statuses}))
    return 0


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    lines: int
    log_bytes: int
    seconds: float
    requests: int
    body_bytes: int
    steady: float | None = None
    startup: float | None = None
    peak_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.lines / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.log_bytes / MB / self.seconds


def _check_accepted(osis: OsisEmulator, name: str, lines: int) -> None:
    stats = osis.stats()
    if stats.events_accepted != lines or set(stats.status_counts) != {200}:
        raise SystemExit(
            f"{name}: the emulator accepted {stats.events_accepted:,} events of {lines:,} "
            f"(answers {stats.status_counts}, rejections {osis.rejections[-1:]})"
        )


def _sample_until_exit(
    proc: subprocess.Popen[bytes], osis: OsisEmulator
) -> list[tuple[float, int]]:
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        samples.append((time.perf_counter(), osis.events_accepted))
        time.sleep(_SAMPLE_S)
    samples.append((time.perf_counter(), osis.events_accepted))
    return samples


def _steady(samples: list[tuple[float, int]], t0: float, lines: int) -> tuple[float, float]:
    """(events/s between the first and the last accepted request, seconds to the first)."""
    first = next((i for i, (_, n) in enumerate(samples) if n > 0), len(samples) - 1)
    last = next((i for i, (_, n) in enumerate(samples) if n >= lines), len(samples) - 1)
    (t_a, n_a), (t_b, n_b) = samples[first], samples[last]
    rate = (n_b - n_a) / (t_b - t_a) if t_b > t_a and n_b > n_a else float("nan")
    return rate, t_a - t0


def run_ship(
    name: str,
    argv: list[str],
    osis: OsisEmulator,
    log: Path,
    lines: int,
    env: dict[str, str],
) -> Row:
    """Ship ``log`` once in a separate process; check every line arrived; measure it."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: nothing to drain meanwhile
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            timed_argv(argv),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        samples = _sample_until_exit(proc, osis)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{name}: ship failed ({proc.returncode}): {text[-600:]}")
    wall, peak_mb = read_timing(text)
    summary = next((line for line in text.splitlines() if " done in " in line), "")
    if f" {lines:,} events delivered" not in summary:
        raise SystemExit(f"{name}: unexpected summary: {summary or text[-600:]}")
    for counter in ("quarantined", "truncated", "retries"):
        found = re.search(rf"([\d,]+) {counter}", summary)
        if found and found.group(1) != "0":
            raise SystemExit(f"{name}: {found.group(0)}: {summary}")
    _check_accepted(osis, name, lines)
    steady, startup = _steady(samples, t0, lines)
    stats = osis.stats()
    return Row(
        name,
        lines,
        log.stat().st_size,
        wall,
        stats.accepted_requests,
        stats.bytes_accepted,
        steady=steady,
        startup=startup,
        peak_mb=peak_mb,
    )


def run_floor(
    name: str,
    osis: OsisEmulator,
    bodies: Path,
    sizes: list[int],
    log: Path,
    lines: int,
    threads: int,
) -> Row:
    """POST the pre-built bodies from a separate process; check every event arrived."""
    sizes_file = bodies.with_suffix(".sizes.json")
    sizes_file.write_text(json.dumps(sizes))
    gzip = osis.compression == "gzip"
    out = subprocess.run(
        [
            sys.executable, __file__, "--floor-client", osis.ingest_url, str(bodies),
            str(sizes_file), str(threads), "gzip" if gzip else "plain",
        ],
        capture_output=True,
        check=False,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{name}: floor client failed: {out.stderr.decode()[-600:]}")
    result = json.loads(out.stdout)
    stats = osis.stats()
    if stats.events_accepted != lines or set(result["statuses"]) != {"200"}:
        raise SystemExit(
            f"{name}: {stats.events_accepted:,} events accepted of {lines:,}, "
            f"answers {result['statuses']}"
        )
    return Row(
        name,
        lines,
        log.stat().st_size,
        float(result["seconds"]),
        stats.accepted_requests - 1,  # the connecting "[]"
        stats.bytes_accepted - 2,
    )


# --- the report ---------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def print_table(rows: list[Row]) -> None:
    print(
        f"{'scenario':<32} {'lines':>10} {'log MB':>8} {'wall s':>7} {'events/s':>9} "
        f"{'MB/s':>6} {'steady ev/s':>11} {'start s':>7} {'reqs':>5} {'body MB':>8} "
        f"{'peak RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r.name:<32} {r.lines:>10,} {r.log_bytes / MB:>8.1f} {r.seconds:>7.2f} "
            f"{r.rate:>9,.0f} {r.mb_per_s:>6.1f} {_fmt(r.steady, '>11,.0f'):>11} "
            f"{_fmt(r.startup, '.2f'):>7} {r.requests:>5} {r.body_bytes / MB:>8.1f} "
            f"{_fmt(r.peak_mb, '.1f'):>11}"
        )


def _bodies(tmp: Path, gzip: bool) -> Path:
    return tmp / ("bodies.gz" if gzip else "bodies")


def _median(rows: list[Row]) -> Row:
    """The run of median wall time, with the largest peak RSS of all runs, named ``(of N)``."""
    row = sorted(rows, key=lambda r: r.seconds)[len(rows) // 2]
    peaks = [r.peak_mb for r in rows if r.peak_mb is not None]
    name = f"{row.name} (median of {len(rows)})" if len(rows) > 1 else row.name
    return replace(row, name=name, peak_mb=max(peaks) if peaks else None)


def _load(values: tuple[float, float, float] | None = None) -> str:
    return " ".join(f"{x:.2f}" for x in (values or os.getloadavg()))


def write_rows(
    path: str | None,
    main_row: Row,
    floor_row: Row,
    gzip_rows: list[Row],
    big_row: Row | None,
    backlog_gib: float,
) -> None:
    out = Rows("bench_ship")
    measure = f"ship --once of {main_row.lines:,} lines, events/s"
    out.add(f"{measure} (wall)", "events/s", main_row.rate, "floor, unsigned", "floor",
            floor_row.rate, better="higher")  # fmt: skip
    out.add(f"{measure} (steady)", "events/s", main_row.steady, "floor, unsigned", "floor",
            floor_row.rate, better="higher")  # fmt: skip
    out.add(f"{measure} (wall)", "events/s", main_row.rate, "target", "bound",
            TARGET_EVENTS_PER_S, better="higher", target=1)  # fmt: skip
    if gzip_rows:
        ship, floor = gzip_rows
        out.add(f"{measure}, --gzip (wall)", "events/s", ship.rate, "floor --gzip", "floor",
                floor.rate, better="higher")  # fmt: skip
    if big_row is not None and big_row.peak_mb is not None:
        out.add(f"ship --once of a {backlog_gib:g} GiB backlog, peak RSS", "MB", big_row.peak_mb,
                "target", "bound", TARGET_RSS_MB, target=1)  # fmt: skip
    out.write(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the main runs")
    parser.add_argument(
        "--backlog-gib", type=float, default=1.0, help="size of the RSS scenario's file (GiB)"
    )
    parser.add_argument("--quick", action="store_true", help="skip the backlog (RSS) scenario")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of the main ship and floor rows (median shown)"
    )
    parser.add_argument(
        "--floor-threads",
        type=int,
        default=1,
        help="concurrent POSTs of the floor (default 1: ship sends one request at a time)",
    )
    parser.add_argument("--no-gzip", action="store_true", help="skip the gzip rows")
    add_json_option(parser)
    args = parser.parse_args()

    import compileall

    import rolesanywhere
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.osis import OsisEmulator
    from rolesanywhere.testing.pki import PKI, KeyFormat

    script = BIN / "rolesanywhere"
    if not script.exists():
        raise SystemExit(f"no console script at {script}: pip install -e . in this interpreter")
    compileall.compile_dir(Path(rolesanywhere.__file__).parent, quiet=1)
    began = time.perf_counter()
    loads = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ship-"))
    try:
        free = shutil.disk_usage(tmp).free
        backlog = not args.quick and args.backlog_gib > 0
        skipped = "skipped (--quick)" if not backlog else ""
        if backlog and free < MIN_FREE_BYTES:
            backlog, skipped = False, f"skipped: {free / GIB:.1f} GiB free in {tmp}, need 3 GiB"
        pki = PKI(name="bench")
        cert, key = pki.leaf("ec-p256").write(tmp, "client", key_format=KeyFormat.PKCS8_PEM)
        chain = tmp / "chain.pem"
        chain.write_bytes(pki.intermediate.cert_pem())
        log = tmp / "syslog"
        lines = args.lines
        write_log(log, lines)
        print(
            f"{lines:,} lines, {log.stat().st_size / MB:.1f} MB "
            f"({log.stat().st_size / lines:.0f} B/line) generated in {tmp}",
            flush=True,
        )
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
        rows: list[Row] = []
        with RolesAnywhereEmulator.for_pki(pki) as roles:
            identity = [
                "--certificate", str(cert), "--private-key", str(key),
                "--intermediates", str(chain), "--trust-anchor-arn", roles.trust_anchor_arn,
                "--profile-arn", roles.profile_arn, "--role-arn", roles.role_arn,
                "--endpoint", roles.url,
            ]  # fmt: skip

            def ship(name: str, path: Path, count: int, gzip: bool, keep: bool = False) -> Row:
                """One run; ``keep``: save the bodies for the floor (a list append each)."""
                state = Path(tempfile.mkdtemp(prefix="state-", dir=tmp))
                compression: Literal["none", "gzip"] = "gzip" if gzip else "none"
                with OsisEmulator(
                    credentials=roles, store=False, compression=compression, record_requests=keep
                ) as o:
                    argv = [
                        str(script), "ship", str(path), "--once", "--read-from-head",
                        "--url", o.ingest_url, "--region", roles.region,
                        "--state-dir", str(state), "--status-interval", "0",
                        *(["--gzip"] if gzip else []), *identity,
                    ]  # fmt: skip
                    row = run_ship(name, argv, o, path, count, env)
                    if keep:
                        body_sizes[gzip] = save_bodies(o, _bodies(tmp, gzip))
                shutil.rmtree(state, ignore_errors=True)
                print(f"  {name}: {row.seconds:.1f} s", flush=True)
                return row

            def floor(name: str, gzip: bool) -> Row:
                compression: Literal["none", "gzip"] = "gzip" if gzip else "none"
                with OsisEmulator(
                    verify_signatures=False, store=False, compression=compression
                ) as o:
                    row = run_floor(
                        name,
                        o,
                        _bodies(tmp, gzip),
                        body_sizes[gzip],
                        log,
                        lines,
                        args.floor_threads,
                    )
                print(f"  {name}: {row.seconds:.1f} s", flush=True)
                return row

            body_sizes: dict[bool, list[int]] = {}
            one = tmp / "one-line"
            write_log(one, 1)
            rows.append(ship("ship, 1 line (start-up)", one, 1, False))  # also warms caches
            ships: list[Row] = []
            floors: list[Row] = []
            for run in range(args.runs):  # interleaved: the load of other processes varies
                ships.append(ship("ship", log, lines, False, keep=run == 0))
                floors.append(floor("floor, unsigned", False))
            main_row, floor_row = _median(ships), _median(floors)
            rows += [main_row, floor_row]
            if not args.no_gzip:
                rows += [ship("ship --gzip", log, lines, True, keep=True)]
                rows += [floor("floor --gzip", True)]
            gzip_rows = rows[-2:] if not args.no_gzip else []
            for gzip in body_sizes:
                _bodies(tmp, gzip).unlink()
            big_row: Row | None = None
            if backlog:
                big = tmp / "backlog"
                size = int(args.backlog_gib * GIB)
                big_lines = write_backlog(big, log, lines, size)
                log.unlink()
                print(f"{big_lines:,} lines, {size / GIB:.2f} GiB written", flush=True)
                try:
                    big_row = ship(f"ship {args.backlog_gib:g} GiB backlog", big, big_lines, False)
                finally:
                    big.unlink()
                rows.append(big_row)
            log.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"rolesanywhere ship --once, {os.cpu_count()} CPUs shared with both emulators "
        "(this process, plain-HTTP loopback, signatures verified, nothing stored); "
        f"load average {_load(loads)} at the start, {_load()} at the end"
    )
    print_table(rows)
    print(
        f"ship / floor: {main_row.rate / floor_row.rate:.2f} of the floor's events/s "
        f"({main_row.steady or 0:,.0f} / {floor_row.rate:,.0f} = "
        f"{(main_row.steady or 0) / floor_row.rate:.2f} steady; the floor: same bodies, "
        "no reading, encoding or signing, no start-up)"
    )
    checks: list[tuple[str, bool | None, str]] = [
        (f"ship events/s (wall) = {main_row.rate:,.0f}", main_row.rate >= TARGET_EVENTS_PER_S,
         f">= {TARGET_EVENTS_PER_S:,}"),
    ]  # fmt: skip
    if big_row is not None and big_row.peak_mb is not None:
        checks.append(
            (
                f"ship peak RSS, {args.backlog_gib:g} GiB backlog = {big_row.peak_mb:.1f} MB",
                big_row.peak_mb <= TARGET_RSS_MB,
                f"<= {TARGET_RSS_MB:.0f} MB",
            )
        )
    else:
        checks.append((f"ship peak RSS on a 1 GiB backlog: {skipped}", None, ""))
    for text, ok, target in checks:
        verdict = "-" if ok is None else ("met" if ok else "MISSED")
        print(f"{text:<48} target {target:<12} {verdict}")
    print(f"(total {time.perf_counter() - began:.0f} s)")
    write_rows(args.json, main_row, floor_row, gzip_rows, big_row, args.backlog_gib)
    return 0 if all(ok is not False for _, ok, _ in checks) else 1


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--floor-client":
        _, _, url, bodies, sizes, threads, mode = sys.argv
        sys.exit(floor_client(url, bodies, sizes, int(threads), mode == "gzip"))
    sys.exit(main())
