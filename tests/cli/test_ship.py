"""``run_ship`` in-process: status lines, the --once progress bar, the summary."""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from rolesanywhere.cli.main import main
from rolesanywhere.cli.ship import _bar
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import OsisEmulator
from rolesanywhere.testing.pki import PKI


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def identity_flags(pki: PKI, emu: RolesAnywhereEmulator, tmp: Path) -> list[str]:
    leaf = pki.leaf("ec-p256")
    cert, key = leaf.write(tmp, "client")
    chain = tmp / "chain.pem"
    chain.write_bytes(pki.intermediate.cert_pem())
    return [
        "--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain),
        "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
        "--role-arn", emu.role_arn, "--endpoint", emu.url,
    ]  # fmt: skip


def test_bar_rendering() -> None:
    assert _bar(0, 100, 0, width=10) == "\r[..........]  0.0% 0 events"
    assert _bar(50, 100, 1234, width=10) == "\r[#####.....] 50.0% 1,234 events"
    assert _bar(5, 0, 7, width=4) == "\r[####] 100.0% 7 events"
    assert _bar(0, 0, 0, width=4) == "\r[....]  0.0% 0 events"


def test_once_with_progress_bar_and_summary(
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"line %06d\n" % i for i in range(30_000)))
    err = FakeTTY()
    status = main(
        ["ship", str(log), "--once", "--read-from-head", "--url", rolesanywhere_osis.ingest_url,
         "--region", "us-east-1", "--state-dir", str(tmp_path / "state"), "--batch-events", "500",
         *identity_flags(rolesanywhere_pki, rolesanywhere_emulator, tmp_path)],
        stdout=io.StringIO(),
        stderr=err,
    )  # fmt: skip
    text = err.getvalue()
    assert status == 0, text
    assert "100.0% 30,000 events" in text
    assert "\r[" in text
    assert "30,000 events delivered" in text and "0 quarantined" in text
    assert rolesanywhere_osis.count() == 30_000


def test_status_lines_while_running(
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    tmp_path: Path,
) -> None:
    from rolesanywhere.cli.ship import run_ship
    from rolesanywhere.ship.config.flags import from_args
    from rolesanywhere.ship.config.model import ShipConfig

    log = tmp_path / "app.log"
    log.write_bytes(b"first\n")
    import argparse

    from rolesanywhere.cli.main import _add_ship_flags

    parser = argparse.ArgumentParser()
    _add_ship_flags(parser)
    args = parser.parse_args(
        [str(log), "--read-from-head", "--url", rolesanywhere_osis.ingest_url,
         "--region", "us-east-1", "--state-dir", str(tmp_path / "state"),
         "--refresh-interval", "0.2",
         *identity_flags(rolesanywhere_pki, rolesanywhere_emulator, tmp_path)]
    )  # fmt: skip
    config: ShipConfig = from_args(args)
    err = io.StringIO()
    stop = threading.Event()
    worker = threading.Thread(
        target=run_ship,
        args=(config,),
        kwargs={"status_interval": 0.3, "err": err, "stop": stop, "install_signals": False},
    )
    worker.start()
    try:
        with log.open("ab") as f:
            f.write(b"second\n")
        deadline = threading.Event()
        for _ in range(100):
            if rolesanywhere_osis.count() == 2 and err.getvalue().count("lag") >= 1:
                break
            deadline.wait(0.1)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    assert rolesanywhere_osis.logs() == ["first", "second"]
    lines = err.getvalue().splitlines()
    assert any(line.startswith("ship: ") and "lag" in line for line in lines), lines
    assert "2 events delivered" in lines[-1]


def _ship(
    osis: OsisEmulator, flags: list[str], log: Path, state: Path, *extra: str
) -> tuple[int, str]:
    err = io.StringIO()
    status = main(
        ["ship", str(log), "--once", "--url", osis.ingest_url, "--region", "us-east-1",
         "--state-dir", str(state), "--status-interval", "0", *extra, *flags],
        stdout=io.StringIO(),
        stderr=err,
    )  # fmt: skip
    return status, err.getvalue()


def test_emptied_position_db_is_refused_then_each_choice_measured(
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    tmp_path: Path,
) -> None:
    """Ship 15,000 lines, empty positions.db, append 5,000: before the fix the next run
    exited 0 having skipped the 5,000 (taken for a first run, files read from their end)."""
    import shutil

    flags = identity_flags(rolesanywhere_pki, rolesanywhere_emulator, tmp_path)
    osis = rolesanywhere_osis
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    log.write_bytes(b"".join(b"line %06d\n" % i for i in range(15_000)))
    status, text = _ship(osis, flags, log, state, "--read-from-head")
    assert status == 0, text
    assert osis.count() == 15_000
    (state / "positions.db").write_bytes(b"")
    with log.open("ab") as f:
        f.write(b"".join(b"line %06d\n" % i for i in range(15_000, 20_000)))
    for name in ("head", "end"):
        shutil.copytree(state, tmp_path / name)
    expected = {f"line {i:06d}" for i in range(20_000)}

    for extra in ((), ("--read-from-head",)):
        status, text = _ship(osis, flags, log, state, *extra)
        lines = text.splitlines()
        assert status == 1, text
        assert osis.count() == 15_000  # nothing sent, nothing skipped
        assert "Traceback" not in text
        assert "--reset-positions head" in lines[-1] and "--reset-positions end" in lines[-1]
        assert "is empty" in lines[-1]
    refused_lost = len(expected - set(osis.logs()))  # still to ship: nothing was skipped

    status, text = _ship(osis, flags, log, tmp_path / "head", "--reset-positions", "head")
    assert status == 0, text
    assert "starting over from the beginning" in text
    after_head = osis.logs()
    head_lost = len(expected - set(after_head))
    head_duplicates = len(after_head) - len(set(after_head))

    before_end = len(after_head)
    status, text = _ship(osis, flags, log, tmp_path / "end", "--reset-positions", "end")
    assert status == 0, text
    assert "starting over from the end" in text
    end_sent = osis.count() - before_end
    print(
        f"\nemptied positions.db after 15,000 lines + 5,000 appended: refused (exit 1, "
        f"0 sent); lines lost by refusing: 0 (still unsent: {refused_lost:,}); "
        f"--reset-positions head: {head_lost} lost, {head_duplicates:,} duplicates; "
        f"--reset-positions end: {end_sent:,} sent, 5,000 skipped by that explicit choice"
    )
    assert head_lost == 0 and head_duplicates == 15_000
    assert end_sent == 0


def test_disk_full_position_db_is_named_once_and_shipping_goes_on(
    rolesanywhere_pki: PKI,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The position DB cannot grow (SQLITE_FULL, as on a full disk): every line is still
    delivered, the cause is named once in one line, and no callback traceback is logged."""
    from rolesanywhere.ship.positions import PositionStore

    real_open = PositionStore._open_db

    def full_disk(self: PositionStore, synchronous: str, **kw: bool) -> sqlite3.Connection:
        conn = real_open(self, synchronous, **kw)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(PositionStore, "_open_db", full_disk)
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(100):
        (logs / f"{'n' * 150}{i:03d}.log").write_bytes(b"line %03d-1\nline %03d-2\n" % (i, i))
    flags = identity_flags(rolesanywhere_pki, rolesanywhere_emulator, tmp_path)
    with caplog.at_level(logging.WARNING):
        status, text = _ship(
            rolesanywhere_osis, flags, logs / "*.log", tmp_path / "state", "--read-from-head"
        )
    assert status == 0, text
    assert rolesanywhere_osis.count() == 200
    full = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(full) == 1, caplog.text
    assert "\n" not in full[0].getMessage() and full[0].exc_info is None
    assert "no transaction" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text  # no traceback
    assert "positions not saved" in text.splitlines()[-1]
