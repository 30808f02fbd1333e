"""``rolesanywhere demo``: the whole flow, offline, on loopback.

Makes a throwaway CA and client certificate, starts the local Roles Anywhere emulator, obtains
credentials through the real command-line and library code paths, and prints what happened with
every secret redacted.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import TextIO

from .credentials import redact

__all__ = ["run_demo"]


def _redacted_process_json(text: str) -> str:
    data = json.loads(text)
    for key in ("SecretAccessKey", "SessionToken"):
        data[key] = redact(data[key])
    return json.dumps(data, separators=(",", ":"))


def run_demo(out: TextIO, *, key_type: str = "ec-p256") -> int:
    """Run the demo, writing a report to ``out``; returns the exit status."""
    from .cli import main
    from .client import RolesAnywhereClient
    from .identity import IdentityLoader
    from .testing.emulator import RolesAnywhereEmulator
    from .testing.pki import PKI, KeyFormat

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say("rolesanywhere demo: X.509 certificate -> IAM Roles Anywhere -> temporary AWS credentials")
    say("(offline: a throwaway PKI and a local emulator of the service on 127.0.0.1)")
    say()
    pki = PKI()
    leaf = pki.leaf(key_type)
    with tempfile.TemporaryDirectory(prefix="rolesanywhere-demo-") as tmp:
        folder = Path(tmp)
        cert_path, key_path = leaf.write(folder, "client", key_format=KeyFormat.PKCS8_PEM)
        chain_path = folder / "intermediates.pem"
        chain_path.write_bytes(pki.intermediate.cert_pem())
        say(
            f"1. PKI        root CA and intermediate CA made; client certificate ({key_type}, "
            f"serial {leaf.certificate.serial_number}) written to {folder}"
        )

        with RolesAnywhereEmulator.for_pki(pki) as emulator:
            say(f"2. Emulator   IAM Roles Anywhere listening on {emulator.url}")
            say(f"              trust anchor {emulator.trust_anchor_arn}")
            say(f"              profile      {emulator.profile_arn}")
            say(f"              role         {emulator.role_arn}")

            argv = [
                "credential-process",
                "--certificate", str(cert_path),
                "--private-key", str(key_path),
                "--intermediates", str(chain_path),
                "--trust-anchor-arn", emulator.trust_anchor_arn,
                "--profile-arn", emulator.profile_arn,
                "--role-arn", emulator.role_arn,
                "--endpoint", emulator.url,
                "--session-duration", "900",
            ]  # fmt: skip
            stdout, stderr = io.StringIO(), io.StringIO()
            status = main(argv, stdout=stdout, stderr=stderr)
            say(
                "3. CLI        aws_signing_helper credential-process --certificate client.pem "
                "--private-key client.key --intermediates intermediates.pem ..."
            )
            if status != 0:
                say(f"              failed: {stderr.getvalue().strip()}")
                return 1
            say(f"              {_redacted_process_json(stdout.getvalue())}")

            loader = IdentityLoader(cert_path, key_path, chain_path)
            with RolesAnywhereClient(
                loader,
                trust_anchor_arn=emulator.trust_anchor_arn,
                profile_arn=emulator.profile_arn,
                role_arn=emulator.role_arn,
                endpoint=emulator.url,
                duration_seconds=900,
            ) as client:
                credentials = client.create_session()
            say("4. Library    RolesAnywhereClient(...).create_session()")
            say(f"              {credentials!r}")
            say(
                f"5. Verified   the emulator checked {emulator.calls} signed CreateSession calls "
                f"(chain, validity, serial, signature); {emulator.successes} accepted"
            )
    say()
    say("Secrets (secret access keys, session tokens, private keys) are never printed.")
    return 0
