"""The ``rolesanywhere`` / ``aws_signing_helper`` command.

A drop-in for the Go ``aws_signing_helper``: same subcommands, flags and output, so a
``credential_process = aws_signing_helper credential-process …`` line keeps working. Errors are one
line on stderr with exit status 1, never a traceback.

Start-up time matters (the AWS SDKs run ``credential_process`` on every cold start), so this module
imports only ``argparse`` and ``sys`` at the top; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    from .identity import Identity

__all__ = ["main"]

PASSWORD_ENV = "ROLESANYWHERE_PKCS8_PASSWORD"  # noqa: S105 - a variable name

#: Go helper flags this version parses but does not implement yet (hardware and OS stores).
_UNSUPPORTED_FLAGS = {
    "pkcs11_lib": "--pkcs11-lib",
    "reuse_pin": "--reuse-pin",
    "tpm_key_password": "--tpm-key-password",
    "no_tpm_key_password": "--no-tpm-key-password",
    "cert_selector": "--cert-selector",
    "system_store_name": "--system-store-name",
    "use_latest_expiring_certificate": "--use-latest-expiring-certificate",
}


class UsageError(Exception):
    """Bad command-line usage; reported as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.HelpFormatter):
    """Asks the terminal its width itself: argparse would import ``shutil`` (and with it bz2
    and lzma) for that on every ``add_argument``, a large share of a cold start."""

    def __init__(self, prog: str) -> None:
        import os

        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 80
        super().__init__(prog, width=max(width - 2, 40))


def _add_identity_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("identity and session")
    add = group.add_argument
    add("--certificate", help="certificate file (PEM, DER or PKCS#12), env:NAME or - for stdin")
    add("--private-key", help="private key file (PKCS#1, SEC1 or PKCS#8; PEM or DER)")
    add("--intermediates", help="intermediate CA certificates (PEM bundle)")
    add("--trust-anchor-arn", required=True, help="ARN of the trust anchor")
    add("--profile-arn", required=True, help="ARN of the profile")
    add("--role-arn", required=True, help="ARN of the role to assume")
    add("--session-duration", type=int, default=3600, help="seconds, 900-43200 (default 3600)")
    add("--role-session-name", help="session name recorded in CloudTrail")
    add("--region", help="signing region (default: the trust anchor's)")
    add("--endpoint", help="Roles Anywhere endpoint URL")
    add("--no-verify-ssl", action="store_true", help="do not verify the endpoint's TLS certificate")
    add("--with-proxy", action="store_true", help="use HTTP(S)_PROXY from the environment")
    add("--debug", action="store_true", help="print the canonical request and headers to stderr")
    add(
        "--pkcs8-password",
        help=f"password of an encrypted private key (or set {PASSWORD_ENV})",
    )
    for dest, flag in _UNSUPPORTED_FLAGS.items():
        if dest in ("reuse_pin", "no_tpm_key_password", "use_latest_expiring_certificate"):
            add(flag, dest=dest, action="store_true", help=argparse.SUPPRESS)
        else:
            add(flag, dest=dest, help=argparse.SUPPRESS)
    add("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def _add_demo_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-type", default="ec-p256", help="leaf key type (default ec-p256)")


def _add_ship_flags(parser: argparse.ArgumentParser) -> None:
    from .shipconfig import add_ship_arguments

    add_ship_arguments(parser)
    parser.add_argument(
        "--once", action="store_true", help="ship what is there, then exit when it is delivered"
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between status lines on stderr (0: none; default 10)",
    )


#: Subcommands: name -> (help, function adding its flags). Only the one being run is configured,
#: so a cold ``credential-process`` does not pay for every other command's flags.
_SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "credential-process": (
        "print credentials as the AWS SDKs' credential_process expects",
        _add_identity_flags,
    ),
    "ship": (
        "follow log files and ship them to OpenSearch Ingestion (replaces Fluent Bit)",
        _add_ship_flags,
    ),
    "version": ("print the version", None),
    "demo": ("run the whole flow offline against local emulators", _add_demo_flags),
}


def _build_parser(prog: str, argv: Sequence[str]) -> _Parser:
    parser = _Parser(
        prog=prog,
        formatter_class=_Formatter,
        description="Exchange an X.509 certificate for temporary AWS credentials "
        "(IAM Roles Anywhere); a drop-in for aws_signing_helper.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (text, add_flags) in _SUBCOMMANDS.items():
        command = sub.add_parser(name, help=text, formatter_class=_Formatter)
        if add_flags is not None and name == wanted:
            add_flags(command)
    return parser


def _password(args: argparse.Namespace) -> str | None:
    import os

    if args.pkcs8_password is not None:
        return str(args.pkcs8_password)
    return os.environ.get(PASSWORD_ENV) or None


def _load_identity(args: argparse.Namespace, stdin: TextIO, stderr: TextIO) -> Identity:
    from .errors import PasswordRequiredError
    from .identity import Identity

    for dest, flag in _UNSUPPORTED_FLAGS.items():
        if getattr(args, dest):
            raise UsageError(
                f"{flag} is not supported by this version: "
                "use --certificate and --private-key files"
            )
    if not args.certificate:
        raise UsageError(
            "unable to use cert store signer: no --certificate given; pass --certificate FILE "
            "(and --private-key FILE unless one file holds both)"
        )
    password = _password(args)
    try:
        return Identity.load(args.certificate, args.private_key, args.intermediates, password)
    except PasswordRequiredError:
        if password is not None or not stdin.isatty():
            raise
        import getpass

        password = getpass.getpass("Private key password: ", stream=stderr)
        return Identity.load(args.certificate, args.private_key, args.intermediates, password)


def _credential_process(
    args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO
) -> int:
    from .client import RolesAnywhereClient
    from .transport import StdlibTransport, resolve_verify

    class _Lazy:
        """Loads the identity on first use, after the ARNs and flags were validated."""

        identity: Identity | None = None

        def get(self) -> Identity:
            if self.identity is None:
                self.identity = _load_identity(args, stdin, stderr)
            return self.identity

    verify = resolve_verify(not args.no_verify_ssl)
    # One request per run: our small HTTP/1.1 client starts faster than httpx; proxies need httpx.
    transport = None if args.with_proxy else StdlibTransport(verify=verify)

    def debug(text: str) -> None:
        print(text, file=stderr)

    with RolesAnywhereClient(
        _Lazy(),
        trust_anchor_arn=args.trust_anchor_arn,
        profile_arn=args.profile_arn,
        role_arn=args.role_arn,
        region=args.region,
        duration_seconds=args.session_duration,
        role_session_name=args.role_session_name,
        endpoint=args.endpoint,
        verify=verify,
        proxy_from_env=args.with_proxy,
        transport=transport,
        timeout=args.timeout,
        debug=debug if args.debug else None,
    ) as client:
        credentials = client.create_session()
    stdout.write(credentials.to_process_json())
    stdout.flush()
    return 0


def _demo(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from .demo import run_demo

    return run_demo(stdout, key_type=args.key_type)


def _ship(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from .ship import run_ship
    from .shipconfig import from_args

    return run_ship(
        from_args(args), once=args.once, status_interval=args.status_interval, err=stderr
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO, TextIO], int]] = {
    "credential-process": _credential_process,
    "demo": _demo,
    "ship": _ship,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status (0 success, 1 any error)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    prog = "aws_signing_helper" if sys.argv and "signing" in sys.argv[0] else "rolesanywhere"
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = _build_parser(prog, argv).parse_args(argv)
        if args.command == "version":
            from . import __version__

            print(__version__, file=stdout)
            return 0
        if args.command is None:
            _build_parser(prog, argv).print_help(stdout)
            return 0
        return _COMMANDS[args.command](args, stdin, stdout, stderr)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=stderr)
    except SystemExit as exc:  # --help and friends
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:  # one line, never a traceback
        from .errors import RolesAnywhereError

        if isinstance(exc, RolesAnywhereError):
            print(f"{prog}: {exc}", file=stderr)
        else:
            detail = " ".join(str(exc).split())
            print(f"{prog}: unexpected error: {type(exc).__name__}: {detail}", file=stderr)
    return 1
