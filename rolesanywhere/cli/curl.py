"""``rolesanywhere curl``: one SigV4-signed HTTP request, as ``awscurl`` sends it.

The blog post's last step checks the shipped logs with ``awscurl --service es
"$ENDPOINT/_cat/indices?v"``, which needs a second tool and a credentials profile. This command
signs with the package's :class:`~rolesanywhere.auth.sigv4auth.SigV4Auth` and takes any identity
the other commands take: the ``credential-process`` identity flags (CreateSession in-process),
or ``--aws-profile`` (default ``$AWS_PROFILE``, else ``default``), as ``ship`` does.

The response body goes to standard output; errors are one line on standard error with exit
status 1 (also, with ``--fail``, an answer of HTTP 400 or more). The whole request, credentials
included, ends by ``--max-time``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, BinaryIO, TextIO

from rolesanywhere.errors import UsageError
from rolesanywhere.profiles.settings import (
    SETTINGS,
    add_flags,
    add_unsupported_flags,
    unsupported_flag,
    values_from_args,
)

if TYPE_CHECKING:
    import httpx

    from rolesanywhere.profiles.awsconfig import CredentialProvider

__all__ = ["DEFAULT_MAX_TIME", "DEFAULT_SERVICE", "MAX_BODY_BYTES", "add_curl_flags", "run_curl"]

#: The signing service when ``--service`` is not given (``awscurl``'s default).
DEFAULT_SERVICE = "execute-api"
#: Seconds the whole request may take, credentials included, unless ``--max-time`` says.
DEFAULT_MAX_TIME = 60.0
#: The most of an answer read (the rest is cut, and the command fails saying so).
MAX_BODY_BYTES = 64 << 20

#: Settings that choose a Roles Anywhere identity (``--no-verify-ssl`` applies to the URL too).
_IDENTITY_FLAGS = tuple(s.name for s in SETTINGS if s.name != "verify")


def add_curl_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``curl``: the request, the signature, and the credentials."""
    add = parser.add_argument
    add("url", metavar="URL", help="the URL to request (http or https)")
    add("-X", "--request", metavar="METHOD", help="HTTP method (default GET, POST with -d)")
    add(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a header (repeatable); it is signed too",
    )
    add("-d", "--data", metavar="DATA", help="request body; @FILE reads FILE, @- standard input")
    add(
        "--service",
        default=DEFAULT_SERVICE,
        help=f"signing service, e.g. es, aoss, osis (default {DEFAULT_SERVICE})",
    )
    add("--region", help="signing region (default: from the host name)")
    add("-i", "--include", action="store_true", help="print the status line and headers first")
    add("--fail", action="store_true", help="exit 1, printing no body, on HTTP 400 or more")
    add(
        "--max-time",
        type=float,
        default=DEFAULT_MAX_TIME,
        metavar="SECONDS",
        help=f"time limit of the whole request (default {DEFAULT_MAX_TIME:g})",
    )
    group = parser.add_argument_group(
        "credentials: an AWS profile, or a Roles Anywhere identity (credential-process flags)",
        "--no-verify-ssl applies to URL too",
    )
    group.add_argument(
        "--aws-profile",
        metavar="NAME",
        help="use the credentials of AWS profile NAME (default $AWS_PROFILE, else default)",
    )
    add_flags(group, ship=True)
    add_unsupported_flags(group)


def _credentials(args: argparse.Namespace) -> CredentialProvider:
    """Credentials from the identity flags, else from the AWS profile."""
    from rolesanywhere.profiles.awsconfig import (
        credential_source_for_identity,
        credential_source_for_profile,
    )
    from rolesanywhere.profiles.settings import IdentitySettings

    flag = unsupported_flag(args)
    if flag is not None:
        raise UsageError(f"{flag} is not supported by this version: use --certificate files")
    values = values_from_args(args, ship=True)
    given = [s for s in SETTINGS if s.name in values and s.name in _IDENTITY_FLAGS]
    if not given:
        return credential_source_for_profile(args.aws_profile)
    if args.aws_profile is not None:
        raise UsageError(
            f"both --aws-profile and {given[0].flag_for(ship=True)} are given: keep one "
            "(an AWS profile, or a Roles Anywhere identity)"
        )
    missing = [
        s.flag_for(ship=True)
        for s in SETTINGS
        if (s.required or s.name == "certificate") and values.get(s.name) is None
    ]
    if missing:
        raise UsageError(f"the Roles Anywhere identity is incomplete: pass {', '.join(missing)}")
    return credential_source_for_identity(IdentitySettings(**values))


def _header(text: str) -> tuple[str, str]:
    from rolesanywhere.session.endpoints import show

    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise UsageError(f"-H {show(text)}: write -H 'NAME: VALUE'")
    return name, value.strip()


def _body(data: str | None, stdin: TextIO) -> bytes | None:
    if data is None or not data.startswith("@"):
        return None if data is None else data.encode()
    if data == "@-":
        source = getattr(stdin, "buffer", None)
        return source.read() if source is not None else stdin.read().encode()
    from pathlib import Path

    from rolesanywhere.session.endpoints import show

    try:
        return Path(data[1:]).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"-d {show(data)}: cannot read {show(data[1:])}: {exc.strerror or exc}"
        ) from None


def _send(
    client: httpx.Client, request: httpx.Request, max_time: float
) -> tuple[httpx.Response, bytes, bool]:
    """The answer by the deadline, httpx's failures as one-line errors."""
    import time

    import httpx

    from rolesanywhere.errors import NetworkError, RequestTimeoutError, safe_text
    from rolesanywhere.session.transport import exchange

    where = f"{request.method} {request.url}"
    try:
        return exchange(
            client, request, deadline=time.monotonic() + max_time, max_body=MAX_BODY_BYTES
        )
    except httpx.TimeoutException:
        raise RequestTimeoutError(
            f"{where}: no complete answer within {max_time:g} s: check the URL, or raise --max-time"
        ) from None
    except httpx.TransportError as exc:
        detail = safe_text(exc) or "no answer"
        raise NetworkError(f"{where}: {type(exc).__name__}: {detail}") from None


def _write(stdout: TextIO, data: bytes) -> None:
    binary: BinaryIO | None = getattr(stdout, "buffer", None)
    if binary is None:
        stdout.write(data.decode("utf-8", "replace"))
        stdout.flush()
    else:
        stdout.flush()
        binary.write(data)
        binary.flush()


def _head(response: httpx.Response) -> bytes:
    version = response.http_version
    lines = [f"{version} {response.status_code} {response.reason_phrase}".encode()]
    lines += [name + b": " + value for name, value in response.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def run_curl(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Send the request the flags describe; returns the exit status."""
    import httpx

    from rolesanywhere.auth.sigv4auth import SigV4Auth, region_from_host
    from rolesanywhere.errors import NetworkError, ServiceError, safe_text
    from rolesanywhere.session.endpoints import show
    from rolesanywhere.session.transport import resolve_verify

    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"URL {show(args.url)} is not valid: {safe_text(exc)}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"URL {show(args.url)} is not valid: give http(s)://HOST/PATH")
    if not args.max_time > 0:
        raise UsageError(f"--max-time must be more than 0 seconds, not {args.max_time}")
    region = args.region or region_from_host(url.host)
    if not region:
        raise UsageError(
            f"cannot tell the signing region from host {show(url.host)}: pass --region"
        )
    headers = [_header(text) for text in args.header]
    body = _body(args.data, stdin)
    method = (args.request or ("POST" if body is not None else "GET")).upper()
    verify = resolve_verify(values_from_args(args, ship=True).get("verify", True))
    with _credentials(args) as provider:
        # fresh credentials: a refusal is not staleness, so it is not retried
        auth = SigV4Auth(provider, service=args.service, region=region, retry_on_stale=False)
        with httpx.Client(auth=auth, verify=verify) as client:
            request = client.build_request(method, url, headers=headers, content=body)
            response, data, whole = _send(client, request, args.max_time)
    status = response.status_code
    if args.fail and status >= 400:
        raise ServiceError(
            f"{method} {url}: {safe_text(data) or response.reason_phrase}",
            status=status,
            error_type=response.headers.get("x-amzn-errortype", "").split(":")[0] or None,
            request_id=response.headers.get("x-amzn-requestid") or None,
        )
    _write(stdout, (_head(response) if args.include else b"") + data)
    if not whole:
        raise NetworkError(
            f"{method} {url}: the answer is larger than {MAX_BODY_BYTES} bytes: only the first "
            "ones were printed"
        )
    return 0
