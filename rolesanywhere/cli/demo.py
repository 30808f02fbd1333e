"""``rolesanywhere demo``: the whole flow, offline, on loopback.

Makes a throwaway CA and client certificate, starts the local Roles Anywhere emulator, obtains
credentials through the real command-line and library code paths, and prints what happened with
every secret redacted.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path
from typing import TextIO

from rolesanywhere.credentials import redact

__all__ = ["add_demo_flags", "run_demo"]


def _redacted_process_json(text: str) -> str:
    data = json.loads(text)
    for key in ("SecretAccessKey", "SessionToken"):
        data[key] = redact(data[key])
    return json.dumps(data, separators=(",", ":"))


_JSON = ("-H", "Content-Type: application/json")
_DEMO_LINES = 2_000
_SERVICES = ("sshd", "cron", "kernel", "nginx", "systemd")
_MESSAGES = (
    "Accepted publickey for deploy from 10.0.0.{n} port 5{n:04d} ssh2",
    "(root) CMD (run-parts /etc/cron.hourly) #{n}",
    "eth0: link up, 1000 Mbps, full duplex, flow control {n}",
    '10.1.2.{n} - - "GET /health HTTP/1.1" 200 2 "-" "kube-probe/1.31"',
    "Started session {n} of user deploy.",
)


def _syslog_lines(count: int, start: float) -> bytes:
    """A syslog-like file: ``<timestamp> <host> <service>[pid]: message``."""
    import time

    lines = []
    for n in range(count):
        when = time.strftime("%b %d %H:%M:%S", time.gmtime(start + n * 0.5))
        k = n % len(_SERVICES)
        message = _MESSAGES[k].format(n=n % 250)
        lines.append(f"{when} edge-01 {_SERVICES[k]}[{1000 + k}]: {message}\n")
    return "".join(lines).encode()


def add_demo_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``demo``."""
    from rolesanywhere.testing.pki import KEY_TYPES, MLDSA_KEY_TYPES

    parser.add_argument(
        "--key-type",
        default="ec-p256",
        choices=KEY_TYPES + MLDSA_KEY_TYPES,
        help=f"leaf key type: {', '.join(KEY_TYPES + MLDSA_KEY_TYPES)} (default ec-p256)",
    )


def run_demo(out: TextIO, *, key_type: str = "ec-p256") -> int:
    """Run the demo, writing a report to ``out``; returns the exit status."""
    import time

    from rolesanywhere.cli.main import main
    from rolesanywhere.session.client import RolesAnywhereClient
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.osis import OsisEmulator
    from rolesanywhere.testing.pki import PKI, KeyFormat
    from rolesanywhere.x509.loader import IdentityLoader

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say("rolesanywhere demo: X.509 certificate -> IAM Roles Anywhere -> temporary credentials")
    say("                    -> signed log shipping to Amazon OpenSearch Ingestion")
    say("(offline: a throwaway PKI and local emulators of both services on 127.0.0.1)")
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
            f"serial {leaf.certificate.serial_number}) written to a temporary folder "
            "(removed when the demo ends)"
        )

        with (
            RolesAnywhereEmulator.for_pki(pki) as emulator,
            OsisEmulator(
                credentials=emulator,
                region=emulator.region,
                path="/test-ingestion-path",
                query_service="es",
            ) as osis,
        ):
            say(f"2. Emulators  IAM Roles Anywhere on {emulator.url}")
            say(f"              trust anchor {emulator.trust_anchor_arn}")
            say(f"              profile      {emulator.profile_arn}")
            say(f"              role         {emulator.role_arn}")
            say(f"              OpenSearch Ingestion pipeline on {osis.ingest_url}")

            identity_flags = [
                "--certificate", str(cert_path),
                "--private-key", str(key_path),
                "--intermediates", str(chain_path),
                "--trust-anchor-arn", emulator.trust_anchor_arn,
                "--profile-arn", emulator.profile_arn,
                "--role-arn", emulator.role_arn,
                "--endpoint", emulator.url,
            ]  # fmt: skip
            stdout, stderr = io.StringIO(), io.StringIO()
            status = main(
                ["credential-process", *identity_flags, "--session-duration", "900"],
                stdout=stdout,
                stderr=stderr,
            )
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

            log_path = folder / "syslog"
            log_path.write_bytes(_syslog_lines(_DEMO_LINES, time.time() - _DEMO_LINES / 2))
            ship_argv = [
                "ship", str(log_path), "--once", "--read-from-head",
                "--url", osis.ingest_url, "--region", emulator.region,
                "--state-dir", str(folder / "state"), "--status-interval", "0",
                *identity_flags,
            ]  # fmt: skip
            stderr = io.StringIO()
            status = main(ship_argv, stdout=io.StringIO(), stderr=stderr)
            say(
                f"5. Ship       rolesanywhere ship {log_path.name} --once --read-from-head "
                "--url .../test-ingestion-path --certificate ... (the Fluent Bit replacement)"
            )
            summary = [line for line in stderr.getvalue().splitlines() if "done in" in line]
            shipped = summary[-1][len("ship: ") :] if summary else stderr.getvalue()
            # The folder is deleted when the demo ends: do not send the reader looking for it.
            say(f"              {shipped.replace(str(folder), '<temporary folder>')}")
            if status != 0:
                return 1

            say("6. Query      rolesanywhere curl --service es, the blog's awscurl step, signed:")

            def curl(*request: str) -> str | None:
                out, err = io.StringIO(), io.StringIO()
                argv = ["curl", "--service", "es", "--region", emulator.region, "--fail"]
                if main([*argv, *request, *identity_flags], stdout=out, stderr=err) != 0:
                    say(f"              failed: {err.getvalue().strip()}")
                    return None
                return out.getvalue()

            indices = curl(f"{osis.url}/_cat/indices?v")
            query = '{"size": 3, "sort": [{"@timestamp": {"order": "desc"}}]}'
            hits = curl(f"{osis.url}/logs-*/_search", "-X", "GET", *_JSON, "-d", query)
            if indices is None or hits is None:
                return 1
            for line in indices.rstrip().splitlines():
                say(f"              {line}")
            found = json.loads(hits)
            say(
                f"              GET logs-*/_search: {found['hits']['total']['value']} documents, "
                "newest first:"
            )
            for hit in found["hits"]["hits"]:
                doc = hit["_source"]
                say(f"              {doc['@timestamp']}  date={doc['date']}  log={doc['log']!r}")
            say(
                f"7. Verified   {emulator.calls} CreateSession calls checked (chain, validity, "
                f"serial, signature); {osis.count()} events stored after SigV4 verification "
                f"of {osis.accepted_requests} request(s); {len(osis.duplicates())} duplicates; "
                f"{osis.signed_queries} signed queries verified (service es)"
            )
            if osis.count() != _DEMO_LINES:
                say(f"              expected {_DEMO_LINES} events: something was lost")
                return 1
    say()
    say("Secrets (secret access keys, session tokens, private keys) are never printed.")
    return 0
