"""The bad-input corpus: every wrong thing a user can hand the command line (or the library).

Each CLI case runs ``rolesanywhere.cli.main.main`` in-process (or the console script where a real
pipe
or file descriptor matters) and checks the error contract: exit status 1, exactly one line on
stderr, no traceback, no secret (a fake password, a proxy password and the private keys' PEM text
are planted in the inputs), and a message that names the fix (a per-case expected substring).
The library cases check the exception type and message.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import resource
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rolesanywhere import errors
from rolesanywhere.cli.main import main
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.client import RolesAnywhereClient
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, KeyFormat
from rolesanywhere.x509 import sources
from rolesanywhere.x509.identity import Identity
from tests.faults import FaultServer, accepted, http_response
from tests.troubleshooting import assert_on_page

BIN = Path(sys.executable).parent
PASSWORD = "SECRET-pkcs8-pw-7c1d"
PROXY_PASSWORD = "SECRETproxy93"
OTHER_PASSWORD = "SECRET-wrong-pw-41"
ENV_CLEARED = (
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
    "NO_PROXY", "no_proxy", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ROLESANYWHERE",
    "ROLESANYWHERE_PKCS8_PASSWORD",
)  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TlsServer:
    """Completes (or fails) TLS handshakes on 127.0.0.1 with a certificate no system trusts."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for conn in accepted(self._sock, self._stop):
            with contextlib.suppress(OSError), conn:
                conn.settimeout(2)
                with self._context.wrap_socket(conn, server_side=True):
                    pass

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)


@dataclass
class Ctx:
    """The files, servers and ARNs the cases refer to."""

    dir: Path
    emu: RolesAnywhereEmulator
    servers: dict[str, str]
    secrets: list[str]

    def p(self, name: str) -> str:
        return str(self.dir / name)

    def cp(self, *extra: str, drop: tuple[str, ...] = (), **flags: str) -> list[str]:
        """``credential-process`` with a working identity and ARNs, ``flags`` replacing
        (``trust_anchor_arn="x"``) and ``drop`` removing flags, ``extra`` appended."""
        values = {
            "certificate": self.p("cert.pem"),
            "private_key": self.p("key.pem"),
            "intermediates": self.p("chain.pem"),
            "trust_anchor_arn": self.emu.trust_anchor_arn,
            "profile_arn": self.emu.profile_arn,
            "role_arn": self.emu.role_arn,
            "endpoint": self.emu.url,
        }
        values.update(flags)
        argv = ["credential-process"]
        for name, value in values.items():
            if name not in drop:
                argv += ["--" + name.replace("_", "-"), value]
        return argv + list(extra)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    pki = PKI(name="bad input")
    folder = tmp_path_factory.mktemp("bad-input")
    leaf = pki.leaf("ec-p256")
    secrets = [PASSWORD, PROXY_PASSWORD, OTHER_PASSWORD, "PRIVATE KEY"]

    def key(name: str, issued: Any, fmt: KeyFormat, password: bytes | None = None) -> None:
        data = issued.key_bytes(fmt, password)
        (folder / name).write_bytes(data)
        if fmt.pem:
            secrets.extend(line for line in data.decode().splitlines()[1:3] if len(line) > 20)

    (folder / "cert.pem").write_bytes(leaf.cert_pem())
    key("key.pem", leaf, KeyFormat.PKCS8_PEM)
    key("enc.pem", leaf, KeyFormat.PKCS8_ENCRYPTED_PEM, PASSWORD.encode())
    (folder / "chain.pem").write_bytes(pki.intermediate.cert_pem())
    other = pki.leaf("ec-p384")
    key("other.key", other, KeyFormat.PKCS8_PEM)
    for name, issued in (
        ("expired", pki.expired_leaf("ec-p256")),
        ("future", pki.not_yet_valid_leaf("ec-p256")),
        ("foreign", pki.untrusted_leaf("ec-p256")),
    ):
        (folder / f"{name}.pem").write_bytes(issued.cert_pem())
        key(f"{name}.key", issued, KeyFormat.PKCS8_PEM)
    (folder / "empty.pem").write_bytes(b"")
    (folder / "garbage.pem").write_bytes(b"this is not a certificate\n" * 3)
    (folder / "combined.pem").write_bytes(leaf.cert_pem() + leaf.key_bytes(KeyFormat.PKCS8_PEM))
    server = pki.server_cert()
    (folder / "server.pem").write_bytes(server.cert_pem())
    (folder / "server.key").write_bytes(server.key_bytes(KeyFormat.PKCS8_PEM))
    (folder / "a-dir").mkdir()

    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(RolesAnywhereEmulator.for_pki(pki))
        canned = {
            "500": http_response(
                500, b'{"message":"boom"}', reason="Internal Server Error",
                headers={"X-Amzn-ErrorType": "InternalServerException"},
            ),
            "404": http_response(
                404, b'{"message":"Trust anchor not found"}', reason="Not Found",
                headers={"X-Amzn-ErrorType": "ResourceNotFoundException"},
            ),
            "403": http_response(
                403, b'{"message":"Untrusted Signing Certificate"}', reason="Forbidden",
                headers={"X-Amzn-ErrorType": "AccessDeniedException"},
            ),
        }  # fmt: skip
        servers = {
            name: stack.enter_context(FaultServer("canned", raw=raw)).url
            for name, raw in canned.items()
        }
        servers["huge"] = stack.enter_context(FaultServer("huge", size=20 << 20)).url
        servers["stall"] = stack.enter_context(FaultServer("stall")).url
        servers["plain-as-https"] = emu.url.replace("http://", "https://")
        tls = TlsServer(folder / "server.pem", folder / "server.key")
        stack.callback(tls.close)
        servers["tls"] = tls.url
        servers["closed"] = f"127.0.0.1:{_closed_port()}"
        yield Ctx(folder, emu, servers, secrets)


class EndlessStdin:
    """A stdin that never ends (a 2 GB upload, ``/dev/zero``): reading it all fails."""

    class _Buffer:
        def read(self, size: int = -1) -> bytes:
            if size is None or size < 0:
                raise MemoryError("read the whole endless stdin")
            return b"0" * size

    buffer = _Buffer()


@dataclass
class Case:
    id: str
    argv: Callable[[Ctx], list[str]]
    expect: str | tuple[str, ...]
    env: Callable[[Ctx], dict[str, str]] = field(default=lambda c: {})
    stdin: Any = None
    absent: tuple[str, ...] = ()


TA = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/"
UUID = "0a1b2c3d-1111-2222-3333-444455556666"
ARN_FIX = "expected arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID"


def ta(c: Ctx, text: str) -> list[str]:
    return c.cp(trust_anchor_arn=text)


CASES: list[Case] = [
    # --- ARNs ----------------------------------------------------------------------------------
    Case("ta-empty", lambda c: ta(c, ""), ("it is empty", ARN_FIX)),
    Case("ta-not-an-arn", lambda c: ta(c, "my-anchor"), ("six ':'-separated", ARN_FIX)),
    Case("ta-space-around", lambda c: ta(c, f" {c.emu.trust_anchor_arn} "), "remove the spaces"),
    Case("ta-newline-after", lambda c: ta(c, c.emu.trust_anchor_arn + "\n"), "remove the spaces"),
    Case("ta-crlf-after", lambda c: ta(c, c.emu.trust_anchor_arn + "\r\n"), "remove the spaces"),
    Case("ta-inner-space", lambda c: ta(c, TA + "0a1b 2c3d"), "whitespace or control"),
    Case("ta-control-char", lambda c: ta(c, TA + UUID + "\x1b[2J"), "whitespace or control"),
    Case(
        "ta-iam-service",
        lambda c: ta(c, f"arn:aws:iam:us-east-1:123456789012:trust-anchor/{UUID}"),
        "service must be 'rolesanywhere'",
    ),
    Case(
        "ta-is-a-profile",
        lambda c: ta(c, c.emu.profile_arn),
        "must start with 'trust-anchor/'",
    ),
    Case("ta-upper-uuid", lambda c: ta(c, TA + UUID.upper()), "lower-case UUID"),
    Case(
        "ta-short-account",
        lambda c: ta(c, f"arn:aws:rolesanywhere:us-east-1:12345678901:trust-anchor/{UUID}"),
        "account must be 12 digits",
    ),
    Case(
        "ta-no-region",
        lambda c: ta(c, f"arn:aws:rolesanywhere::123456789012:trust-anchor/{UUID}"),
        "region is missing",
    ),
    Case(
        "ta-fips-region",
        lambda c: ta(c, f"arn:aws:rolesanywhere:us-east-1-fips:123456789012:trust-anchor/{UUID}"),
        "without 'fips'",
    ),
    Case(
        "ta-unknown-partition",
        lambda c: ta(c, f"arn:aws-xx:rolesanywhere:us-east-1:123456789012:trust-anchor/{UUID}"),
        "unknown partition",
    ),
    Case(
        "ta-partition-region-mismatch",
        lambda c: ta(c, f"arn:aws:rolesanywhere:cn-north-1:123456789012:trust-anchor/{UUID}"),
        "is in partition aws-cn",
    ),
    Case(
        "profile-garbage",
        lambda c: c.cp(profile_arn="profile/abc"),
        ("--profile-arn is not a profile ARN", "arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID"),
    ),
    Case(
        "profile-other-region",
        lambda c: c.cp(profile_arn=f"arn:aws:rolesanywhere:eu-west-1:123456789012:profile/{UUID}"),
        "from the same region",
    ),
    Case(
        "profile-other-partition",
        lambda c: c.cp(
            profile_arn=f"arn:aws-cn:rolesanywhere:cn-north-1:123456789012:profile/{UUID}"
        ),
        "use ARNs from the same partition",
    ),
    Case(
        "profile-space-around",
        lambda c: c.cp(profile_arn=c.emu.profile_arn + " "),
        "remove the spaces",
    ),
    Case(
        "role-with-region",
        lambda c: c.cp(role_arn="arn:aws:iam:us-east-1:123456789012:role/r"),
        "IAM ARNs have an empty region field",
    ),
    Case(
        "role-is-a-user",
        lambda c: c.cp(role_arn="arn:aws:iam::123456789012:user/r"),
        "must start with 'role/'",
    ),
    Case(
        "role-bad-name",
        lambda c: c.cp(role_arn="arn:aws:iam::123456789012:role/bad!name"),
        "role name must be 1 to 64 characters",
    ),
    Case(
        "role-tab-before",
        lambda c: c.cp(role_arn="\t" + c.emu.role_arn),
        "remove the spaces",
    ),
    Case(
        "role-other-partition",
        lambda c: c.cp(role_arn="arn:aws-us-gov:iam::123456789012:role/r"),
        "--role-arn is in partition aws-us-gov",
    ),
    # --- regions -------------------------------------------------------------------------------
    Case(
        "region-disagrees",
        lambda c: c.cp("--region", "eu-west-1"),
        ("disagrees with --trust-anchor-arn", "drop --region, or pass --region us-east-1"),
    ),
    Case(
        "region-fips-of-other",
        lambda c: c.cp("--region", "us-west-2-fips"),
        "drop --region, or pass --region us-east-1",
    ),
    Case("region-format", lambda c: c.cp("--region", "xx"), "set --region to a region"),
    Case(
        "region-trailing-space",
        lambda c: c.cp("--region", "us-east-1 "),
        "set --region to a region",
    ),
    Case(
        "region-other-partition",
        lambda c: c.cp("--region", "cn-north-1"),
        "pass a region of the ARNs' partition",
    ),
    # --- durations, session names, timeouts ---------------------------------------------------
    Case("duration-short", lambda c: c.cp("--session-duration", "899"), "between 900 and 43200"),
    Case("duration-long", lambda c: c.cp("--session-duration", "43201"), "between 900 and 43200"),
    Case("duration-negative", lambda c: c.cp("--session-duration=-5"), "between 900 and 43200"),
    Case(
        "duration-word",
        lambda c: c.cp("--session-duration", "1h"),
        ("--session-duration: invalid int value", "--help"),
    ),
    Case(
        "duration-fraction",
        lambda c: c.cp("--session-duration", "3600.5"),
        "--session-duration: invalid int value",
    ),
    Case("session-name-short", lambda c: c.cp("--role-session-name", "a"), "2 to 64 characters"),
    Case(
        "session-name-space",
        lambda c: c.cp("--role-session-name", "my session"),
        "2 to 64 characters",
    ),
    Case(
        "session-name-long",
        lambda c: c.cp("--role-session-name", "n" * 65),
        "2 to 64 characters",
    ),
    Case(
        "session-name-slash",
        lambda c: c.cp("--role-session-name", "ci/job"),
        "A-Z a-z 0-9 + = , . @ _ -",
    ),
    Case("timeout-zero", lambda c: c.cp("--timeout", "0"), "--timeout must be a positive"),
    Case("timeout-negative", lambda c: c.cp("--timeout=-1"), "--timeout must be a positive"),
    Case("timeout-nan", lambda c: c.cp("--timeout", "nan"), "--timeout must be a positive"),
    Case("timeout-word", lambda c: c.cp("--timeout", "soon"), "--timeout: invalid float value"),
    # --- endpoints -----------------------------------------------------------------------------
    Case("endpoint-scheme", lambda c: c.cp(endpoint="ftp://x.example"), "use http(s)://HOST"),
    Case(
        "endpoint-with-password",
        lambda c: c.cp(endpoint=f"https://me:{PROXY_PASSWORD}@x.example"),
        "must not carry a user name or password",
    ),
    # --- certificate and key files -------------------------------------------------------------
    Case(
        "no-certificate",
        lambda c: c.cp(drop=("certificate", "private_key")),
        "pass --certificate FILE",
    ),
    Case(
        "certificate-missing",
        lambda c: c.cp(certificate=c.p("nope.pem")),
        "does not exist: check the path",
    ),
    Case(
        "key-missing",
        lambda c: c.cp(private_key=c.p("nope.key")),
        "does not exist: check the path",
    ),
    Case(
        "intermediates-missing",
        lambda c: c.cp(intermediates=c.p("nope-chain.pem")),
        "does not exist: check the path",
    ),
    Case("certificate-is-dir", lambda c: c.cp(certificate=c.p("a-dir")), "is a directory"),
    Case("key-is-dir", lambda c: c.cp(private_key=c.p("a-dir")), "is a directory"),
    Case("certificate-empty", lambda c: c.cp(certificate=c.p("empty.pem")), "is empty"),
    Case("certificate-garbage", lambda c: c.cp(certificate=c.p("garbage.pem")), "garbage.pem"),
    Case("key-garbage", lambda c: c.cp(private_key=c.p("garbage.pem")), "garbage.pem"),
    Case(
        "certificate-is-the-key",
        lambda c: c.cp(certificate=c.p("key.pem"), private_key=c.p("key.pem")),
        "key.pem",
    ),
    Case("key-mismatch", lambda c: c.cp(private_key=c.p("other.key")), "does not match"),
    Case(
        "certificate-expired",
        lambda c: c.cp(certificate=c.p("expired.pem"), private_key=c.p("expired.key")),
        "expired",
    ),
    Case(
        "certificate-not-yet-valid",
        lambda c: c.cp(certificate=c.p("future.pem"), private_key=c.p("future.key")),
        "is not valid until",
    ),
    Case(
        "encrypted-key-no-password",
        lambda c: c.cp(private_key=c.p("enc.pem")),
        ("--pkcs8-password", "ROLESANYWHERE_PKCS8_PASSWORD"),
    ),
    Case(
        "encrypted-key-wrong-password",
        lambda c: c.cp("--pkcs8-password", OTHER_PASSWORD, private_key=c.p("enc.pem")),
        "password",
    ),
    Case(
        "encrypted-key-wrong-password-env",
        lambda c: c.cp(private_key=c.p("enc.pem")),
        "password",
        env=lambda c: {"ROLESANYWHERE_PKCS8_PASSWORD": OTHER_PASSWORD},
    ),
    Case(
        "password-too-long",
        lambda c: c.cp("--pkcs8-password", PASSWORD * 100, private_key=c.p("enc.pem")),
        "longer than 1024 bytes",
    ),
    Case(
        "password-too-long-env",
        lambda c: c.cp(private_key=c.p("enc.pem")),
        "longer than 1024 bytes",
        env=lambda c: {"ROLESANYWHERE_PKCS8_PASSWORD": PASSWORD * 100},
    ),
    Case(
        "certificate-pem-text-as-path",
        lambda c: c.cp(certificate=(c.dir / "cert.pem").read_text()),
        ("certificate argument looks like PEM text, not a path", "pass the path"),
    ),
    Case(
        "key-pem-text-as-path",
        lambda c: c.cp(private_key=(c.dir / "key.pem").read_text()),
        ("private key argument looks like PEM text, not a path", "pass the path"),
    ),
    Case("certificate-dev-zero", lambda c: c.cp(certificate="/dev/zero"), "more than 4 MiB"),
    Case("key-dev-zero", lambda c: c.cp(private_key="/dev/zero"), "more than 4 MiB"),
    Case("intermediates-dev-zero", lambda c: c.cp(intermediates="/dev/zero"), "more than 4 MiB"),
    Case(
        "certificate-stdin-endless",
        lambda c: c.cp(certificate="-"),
        "stdin holds more than 4 MiB",
        stdin=EndlessStdin(),
    ),
    Case(
        "certificate-stdin-empty",
        lambda c: c.cp(certificate="-"),
        "pipe the certificate in",
        stdin=io.TextIOWrapper(io.BytesIO(b"")),
    ),
    Case("certificate-env-unset", lambda c: c.cp(certificate="env:RA_NO_SUCH_VAR"), "is not set"),
    Case(
        "certificate-env-huge",
        lambda c: c.cp(certificate="env:RA_HUGE_CERT"),
        "environment variable RA_HUGE_CERT holds more than 4 MiB",
        env=lambda c: {"RA_HUGE_CERT": "A" * (5 << 20)},
    ),
    Case(
        "unsupported-cert-selector",
        lambda c: c.cp("--cert-selector", "{}"),
        "use --certificate and --private-key files",
    ),
    Case(
        "ca-bundle-missing",
        lambda c: c.cp(),
        "check the path (or AWS_CA_BUNDLE)",
        env=lambda c: {"AWS_CA_BUNDLE": c.p("no-bundle.pem")},
    ),
    # --- flags ---------------------------------------------------------------------------------
    Case("unknown-flag", lambda c: c.cp("--bogus"), ("unrecognized arguments: --bogus", "--help")),
    Case(
        "abbreviated-flag",
        lambda c: c.cp("--trust", "x"),
        "flags are not abbreviated, did you mean --trust-anchor-arn",
    ),
    Case(
        "abbreviated-flag-equals",
        lambda c: c.cp("--session-dur=900"),
        "did you mean --session-duration",
    ),
    Case(
        "abbreviated-switch",
        lambda c: c.cp("--no-verify"),
        "did you mean --no-verify-ssl",
    ),
    Case(
        "go-bool-not-a-bool",
        lambda c: c.cp("--debug=maybe"),
        "write --debug, --debug=true or --debug=false",
    ),
    Case(
        "go-bool-yes",
        lambda c: c.cp("--no-verify-ssl=yes"),
        "--no-verify-ssl=true or --no-verify-ssl=false",
    ),
    Case(
        # Go-style booleans are accepted: with --debug=false and --with-proxy=false the run gets
        # as far as the ARN check (no debug output, no "ignored explicit argument").
        "go-bool-false-accepted",
        lambda c: c.cp("--debug=false", "--with-proxy=False", trust_anchor_arn="x"),
        "is not a trust anchor ARN",
    ),
    Case(
        "go-bool-true-accepted",
        lambda c: c.cp("--no-verify-ssl=true", "--with-proxy=1", "--session-duration", "1"),
        "between 900 and 43200",
    ),
    Case("unknown-command", lambda c: ["credentials-process"], "invalid choice"),
    Case("version-extra", lambda c: ["version", "--x"], "see 'rolesanywhere version --help'"),
    # --- what the server answers ---------------------------------------------------------------
    Case(
        "untrusted-no-intermediates",
        lambda c: c.cp(drop=("intermediates",)),
        ("Untrusted Signing Certificate", "--intermediates"),
    ),
    Case(
        "untrusted-foreign-ca",
        lambda c: c.cp(certificate=c.p("foreign.pem"), private_key=c.p("foreign.key")),
        "check that the trust anchor holds the CA",
    ),
    Case(
        "untrusted-canned-403",
        lambda c: c.cp(endpoint=c.servers["403"]),
        "--intermediates",
    ),
    Case(
        "server-500",
        lambda c: c.cp(endpoint=c.servers["500"]),
        ("HTTP 500", "try again later"),
    ),
    Case(
        "server-404",
        lambda c: c.cp(endpoint=c.servers["404"]),
        "check that the trust anchor, profile and role ARNs exist",
    ),
    Case(
        "server-oversize",
        lambda c: c.cp(endpoint=c.servers["huge"]),
        ("larger than 16 MiB", "names a Roles Anywhere endpoint"),
        absent=("cannot reach",),
    ),
    Case(
        "server-stall",
        lambda c: c.cp("--timeout", "0.5", endpoint=c.servers["stall"]),
        "raise --timeout",
    ),
    Case(
        "tls-to-plain-http",
        lambda c: c.cp(endpoint=c.servers["plain-as-https"]),
        ("speaks https", "AWS_CA_BUNDLE"),
    ),
    Case(
        "tls-untrusted-server",
        lambda c: c.cp(endpoint=c.servers["tls"]),
        ("CERTIFICATE_VERIFY_FAILED", "AWS_CA_BUNDLE"),
    ),
    Case(
        "tls-untrusted-server-httpx",
        lambda c: c.cp("--with-proxy", endpoint=c.servers["tls"]),
        "AWS_CA_BUNDLE",
    ),
    Case(
        "proxy-refused",
        lambda c: c.cp("--with-proxy"),
        ("through proxy http://***@127.0.0.1", "(from HTTP_PROXY)", "turn --with-proxy off"),
        env=lambda c: {"HTTP_PROXY": f"http://me:{PROXY_PASSWORD}@{c.servers['closed']}"},
    ),
    Case(
        "proxy-refused-https",
        lambda c: c.cp("--with-proxy", endpoint=c.servers["tls"]),
        ("through proxy http://127.0.0.1", "(from HTTPS_PROXY)"),
        env=lambda c: {"HTTPS_PROXY": f"http://{c.servers['closed']}"},
    ),
    # --- other commands ------------------------------------------------------------------------
    Case("demo-key-type", lambda c: ["demo", "--key-type", "bogus"], "invalid choice: 'bogus'"),
    Case(
        "read-certificate-no-flag",
        lambda c: ["read-certificate-data"],
        "pass --certificate FILE",
    ),
    Case(
        "read-certificate-dev-zero",
        lambda c: ["read-certificate-data", "--certificate", "/dev/zero"],
        "more than 4 MiB",
    ),
    Case("sign-string-no-key", lambda c: ["sign-string"], "pass --private-key FILE"),
    Case(
        "sign-string-digest",
        lambda c: ["sign-string", "--private-key", c.p("key.pem"), "--digest", "MD5"],
        "invalid choice: 'MD5'",
    ),
    Case(
        "sign-string-encrypted",
        lambda c: ["sign-string", "--private-key", c.p("enc.pem"), "--pkcs8-password", "x1"],
        "password",
    ),
    Case(
        "serve-port",
        lambda c: ["serve", *c.cp("--port", "70000")[1:]],
        "--port must be 0 to 65535",
    ),
    Case(
        "serve-hop-limit",
        lambda c: ["serve", *c.cp("--hop-limit", "0")[1:]],
        "--hop-limit must be 1 to 255",
    ),
]


def check_one_line(status: int, err: str, secrets: list[str]) -> str:
    assert status == 1, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for secret in secrets:
        assert secret not in err
    return err


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.id) for case in CASES],
)
def test_bad_input(case: Case, ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in case.env(ctx).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sources, "_stdin_data", None)
    monkeypatch.setattr(sys, "stdin", case.stdin or io.TextIOWrapper(io.BytesIO(b"")))
    out, err = io.StringIO(), io.StringIO()
    status = main(case.argv(ctx), stdin=io.StringIO(""), stdout=out, stderr=err)
    message = check_one_line(status, err.getvalue(), ctx.secrets)
    assert out.getvalue() == ""
    assert message.startswith("rolesanywhere: ")
    for expected in (case.expect,) if isinstance(case.expect, str) else case.expect:
        assert expected in message
    for unexpected in case.absent:
        assert unexpected not in message
    assert_on_page(message)


# --- cases that need a real process: a pipe that closes, a real /dev/zero on stdin ------------


def _limit_memory() -> None:
    # Before the cap, reading /dev/zero would eat memory until the machine ran out.
    resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))


def test_dev_zero_on_stdin(ctx: Ctx) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(
            [str(BIN / "rolesanywhere"), *ctx.cp(certificate="-")],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            preexec_fn=_limit_memory,
        )
    err = check_one_line(done.returncode, done.stderr, ctx.secrets)
    assert "stdin holds more than 4 MiB" in err
    assert_on_page(err)


def test_demo_into_a_pipe_that_closes() -> None:
    """``rolesanywhere demo | head -3``: one line on stderr, no BrokenPipeError."""
    with subprocess.Popen(
        [str(BIN / "rolesanywhere"), "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        head = [proc.stdout.readline() for _ in range(3)]
        proc.stdout.close()
        err = proc.stderr.read()
        status = proc.wait(timeout=120)
    assert all(head)
    check_one_line(status, err, [])
    assert "closed by its reader" in err
    assert_on_page(err)


def test_demo_names_no_folder_it_deletes() -> None:
    out = io.StringIO()
    assert main(["demo"], stdout=out, stderr=io.StringIO()) == 0
    assert "rolesanywhere-demo-" not in out.getvalue()
    assert "temporary folder (removed when the demo ends)" in out.getvalue()


@pytest.mark.parametrize("command", ["credential-process", "update", "serve", "demo", "ship"])
def test_subcommand_help_has_a_description(command: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([command, "--help"], stdout=out, stderr=io.StringIO()) == 0
    from rolesanywhere.cli.main import _SUBCOMMANDS

    assert _SUBCOMMANDS[command][0] in " ".join(out.getvalue().split())


def test_timeout_flag_is_documented() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["credential-process", "--help"], stdout=out, stderr=io.StringIO())
    assert "--timeout SECONDS" in out.getvalue()
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    assert "--timeout" in docs


# --- the library -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(ctx: Ctx) -> Identity:
    return Identity.load(ctx.p("cert.pem"), ctx.p("key.pem"), ctx.p("chain.pem"))


def _client(ctx: Ctx, identity: object, **options: Any) -> RolesAnywhereClient:
    params: dict[str, Any] = {
        "trust_anchor_arn": ctx.emu.trust_anchor_arn,
        "profile_arn": ctx.emu.profile_arn,
        "role_arn": ctx.emu.role_arn,
        "endpoint": ctx.emu.url,
    }
    params.update(options)
    return RolesAnywhereClient(identity, **params)  # type: ignore[arg-type]


LIBRARY_CASES: list[tuple[str, Callable[[Ctx, Identity], object], type[Exception], str]] = [
    (
        "identity-is-a-path",
        lambda c, i: _client(c, c.p("cert.pem")),
        errors.InvalidArgumentTypeError,
        "identity must be an Identity, an IdentityLoader or an object whose get()",
    ),
    ("identity-none", lambda c, i: _client(c, None), TypeError, "not NoneType"),
    ("timeout-negative", lambda c, i: _client(c, i, timeout=-1), ValueError, "timeout must be"),
    ("timeout-zero", lambda c, i: _client(c, i, timeout=0), ValueError, "timeout=30"),
    (
        "timeout-inf",
        lambda c, i: _client(c, i, timeout=math.inf),
        errors.InvalidParameterError,
        "positive, finite",
    ),
    (
        "connect-timeout-zero",
        lambda c, i: _client(c, i, connect_timeout=0),
        errors.InvalidParameterError,
        "connect_timeout must be",
    ),
    (
        "timeout-text",
        lambda c, i: _client(c, i, timeout="30"),
        errors.InvalidArgumentTypeError,
        "timeout must be a number of seconds, not str",
    ),
    (
        "retry-zero-attempts",
        lambda c, i: RetryPolicy(max_attempts=0),
        errors.InvalidParameterError,
        "max_attempts must be at least 1",
    ),
    (
        "duration",
        lambda c, i: _client(c, i, duration_seconds=60),
        errors.InvalidParameterError,
        "between 900 and 43200",
    ),
    (
        "arn-space",
        lambda c, i: _client(c, i, role_arn=c.emu.role_arn + " "),
        errors.InvalidParameterError,
        "remove the spaces",
    ),
    (
        "region-disagrees",
        lambda c, i: _client(c, i, region="eu-west-1"),
        errors.InvalidParameterError,
        "disagrees with trust_anchor_arn",
    ),
]


@pytest.mark.parametrize(
    ("make", "kind", "expected"),
    [case[1:] for case in LIBRARY_CASES],
    ids=[case[0] for case in LIBRARY_CASES],
)
def test_library_bad_input(
    make: Callable[[Ctx, Identity], object],
    kind: type[Exception],
    expected: str,
    ctx: Ctx,
    identity: Identity,
) -> None:
    with pytest.raises(kind) as caught:
        make(ctx, identity)
    assert isinstance(caught.value, errors.RolesAnywhereError)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_exception_class_derives_from_the_library_base() -> None:
    import importlib
    import inspect
    import pkgutil

    import rolesanywhere

    stray = []
    for info in pkgutil.walk_packages(rolesanywhere.__path__, "rolesanywhere."):
        if info.name.endswith(("pytest_plugin", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                # the emulators' internal signals (private, or not exported), caught inside
                and not name.startswith("_")
                and name in getattr(module, "__all__", [name])
                and not issubclass(obj, errors.RolesAnywhereError)
            ):
                stray.append(f"{module.__name__}.{name}")
    assert stray == []


def test_corpus_size() -> None:
    assert len(CASES) + len(LIBRARY_CASES) + 2 >= 60
