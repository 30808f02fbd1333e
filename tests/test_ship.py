"""``run_ship`` in-process: status lines, the --once progress bar, the summary."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from rolesanywhere.cli import main
from rolesanywhere.ship import _bar
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
    from rolesanywhere.ship import run_ship
    from rolesanywhere.shipconfig import ShipConfig, from_args

    log = tmp_path / "app.log"
    log.write_bytes(b"first\n")
    import argparse

    from rolesanywhere.cli import _add_ship_flags

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
