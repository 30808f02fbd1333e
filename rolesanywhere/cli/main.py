"""The ``rolesanywhere`` / ``aws_signing_helper`` command.

A drop-in for the Go ``aws_signing_helper``: same subcommands, flags and output, so a
``credential_process = aws_signing_helper credential-process …`` line keeps working. Errors are one
line on stderr with exit status 1, never a traceback.

Start-up time matters (the AWS SDKs run ``credential_process`` on every cold start), so this module
imports only ``sys`` and the light settings table at the top (no ``argparse``, no ``typing``);
each command imports what it needs. A ``credential-process --cache`` hit is served by
:mod:`rolesanywhere.cli.cachehit` before any argument parser is built.
"""

from __future__ import annotations

import sys

from rolesanywhere.errors import UsageError
from rolesanywhere.profiles.settings import (
    PASSWORD_ENV,
    add_credential_process_flags,
    add_flags,
    add_helper_flags,
    add_unsupported_flags,
    flag_namer,
    split,
    unsupported_flag,
    values_from_args,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any, TextIO, TypeVar

    from rolesanywhere.credentials import Credentials
    from rolesanywhere.profiles.argparser import Parser
    from rolesanywhere.session.client import RolesAnywhereClient
    from rolesanywhere.x509.identity import Identity
    from rolesanywhere.x509.keys import SigningKey
    from rolesanywhere.x509.loader import IdentityLoader

__all__ = ["main"]

#: Longest private key password accepted (from the flag, the variable or the terminal), in bytes.
MAX_PASSWORD_BYTES = 1024

#: Longest error message printed (messages are built to be much shorter).
_MESSAGE_LIMIT = 2000


def _shown(exc: BaseException, command: str | None = None) -> str:
    """An error message as printed: one line, terminal controls escaped, any PEM block (a key
    pasted where a path or a choice was expected, which argparse echoes) left out, and the
    parameters it names shown as ``command``'s flags."""
    import re

    from rolesanywhere.errors import RolesAnywhereError, safe_text

    message = (
        exc.naming(flag_namer(ship=command == "ship"))
        if isinstance(exc, RolesAnywhereError)
        else str(exc)
    )
    text = re.sub(
        r"-----BEGIN[^\n]*?-----.*?(-----END[^\n]*?-----|$)", "<PEM text>", message, flags=re.S
    )
    return safe_text(text, _MESSAGE_LIMIT)


#: Printed by the long-running commands when the password came on the command line.
PASSWORD_FLAG_WARNING = (
    "warning: --pkcs8-password stays visible to other users in ps for as long as this command "
    f"runs: set {PASSWORD_ENV} in the environment instead"
)


def _warn_password_flag(args: argparse.Namespace, stderr: TextIO) -> None:
    if getattr(args, "password", None) is not None:
        print(f"{_prog()}: {PASSWORD_FLAG_WARNING}", file=stderr, flush=True)


def _prog() -> str:
    return "aws_signing_helper" if sys.argv and "signing" in sys.argv[0] else "rolesanywhere"


def _add_update_flags(parser: argparse.ArgumentParser) -> None:
    add_helper_flags(parser)
    add = parser.add_argument
    add("--profile", default="default", help="profile of the credentials file to write")
    add("--once", action="store_true", help="write the credentials once, then exit")


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    add_helper_flags(parser)
    add = parser.add_argument
    add("--port", type=int, default=9911, help="port on 127.0.0.1 (default 9911)")
    add("--hop-limit", type=int, default=64, help="IP TTL of the answers (1: this host only)")


def _add_sign_string_flags(parser: argparse.ArgumentParser) -> None:
    from rolesanywhere.x509.diagnostics import DIGESTS, FORMATS

    add_flags(
        parser,
        names=(
            "certificate",
            "private_key",
            "password",
            "tpm_key_password",
            "no_tpm_key_password",
            "pkcs11_lib",
            "reuse_pin",
        ),
    )
    add = parser.add_argument
    add("--digest", choices=DIGESTS, default=DIGESTS[0], help="SHA256 (default), SHA384, SHA512")
    add("--format", choices=FORMATS, default=FORMATS[0], help="json (default), text or bin")
    add("--debug", action="store_true", help="say what is signed on stderr")
    add_unsupported_flags(parser)


def _add_read_certificate_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--certificate",
        help="certificate file (PEM or DER), env:NAME, - for stdin, or a pkcs11: URI (lists the "
        "matching certificates)",
    )
    from argparse import SUPPRESS

    add("--debug", action="store_true", help=SUPPRESS)
    add_flags(parser, names=("pkcs11_lib",))
    add_unsupported_flags(parser, ["cert_selector", "system_store_name"])


def _add_ship_flags(parser: argparse.ArgumentParser) -> None:
    from rolesanywhere.ship.config.flags import add_ship_arguments

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


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported when first called (keeps the cold start light)."""

    def call(*args: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    return call


#: Subcommands: name -> (help, function adding its flags). Only the one being run is configured,
#: so a cold ``credential-process`` does not pay for every other command's flags.
_SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "credential-process": (
        "print credentials as the AWS SDKs' credential_process expects",
        add_credential_process_flags,
    ),
    "ship": (
        "follow log files and ship them to OpenSearch Ingestion (replaces Fluent Bit)",
        _add_ship_flags,
    ),
    "update": (
        "keep a profile of the AWS credentials file up to date",
        _add_update_flags,
    ),
    "serve": (
        "serve credentials on 127.0.0.1 the way EC2's IMDSv2 does",
        _add_serve_flags,
    ),
    "sign-string": (
        "sign the helper's fixed test string with the private key (diagnostics)",
        _add_sign_string_flags,
    ),
    "read-certificate-data": (
        "print a certificate's key type, serial and data as JSON (diagnostics)",
        _add_read_certificate_flags,
    ),
    "version": ("print the version", None),
    "demo": (
        "run the whole flow offline against local emulators",
        _lazy("rolesanywhere.cli.demo", "add_demo_flags"),
    ),
    "curl": (
        "send one SigV4-signed HTTP request (awscurl), e.g. to query OpenSearch",
        _lazy("rolesanywhere.cli.curl", "add_curl_flags"),
    ),
    "completion": (
        "print the shell completion script: bash, zsh or fish",
        _lazy("rolesanywhere.cli.completion", "add_completion_flags"),
    ),
    "help": (
        "print the help of the command, or of COMMAND",
        _lazy("rolesanywhere.cli.completion", "add_help_flags"),
    ),
}


def _wanted(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not a flag)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _build_parser(prog: str, argv: Sequence[str], *, every: bool = False) -> Parser:
    from rolesanywhere.cli.helpformat import Formatter as _Formatter
    from rolesanywhere.profiles.argparser import Parser

    parser = Parser(
        prog=prog,
        formatter_class=_Formatter,
        description="Exchange an X.509 certificate for temporary AWS credentials "
        "(IAM Roles Anywhere); a drop-in for aws_signing_helper.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    wanted = _wanted(argv)
    for name, (text, configure) in _SUBCOMMANDS.items():
        command = sub.add_parser(name, help=text, description=text, formatter_class=_Formatter)
        if configure is not None and (every or name == wanted):
            configure(command)
        if name == wanted:
            parser.command = command
    return parser


def _password(args: argparse.Namespace) -> str | None:
    import os

    if args.password is not None:
        return _capped_password(str(args.password), "--pkcs8-password")
    return _capped_password(os.environ.get(PASSWORD_ENV) or None, PASSWORD_ENV)


def _capped_password(password: str | None, where: str) -> str | None:
    if password is not None and len(password.encode("utf-8", "surrogateescape")) > (
        MAX_PASSWORD_BYTES
    ):
        # Never echo it: it is a secret (or a file's content pasted by mistake).
        raise UsageError(
            f"the password from {where} is longer than {MAX_PASSWORD_BYTES} bytes: "
            "pass the private key's password itself, not a file's content"
        )
    return password


def _refuse_unsupported(args: argparse.Namespace) -> None:
    flag = unsupported_flag(args)
    if flag is not None:
        raise UsageError(
            f"{flag} is not supported by this version: use --certificate and --private-key files"
        )


def _identity_loader(args: argparse.Namespace, stdin: TextIO, stderr: TextIO) -> IdentityLoader:
    """The identity the flags name, loaded once (asking for the password on a terminal), then
    re-read whenever its files change: ``update`` and ``serve`` run for days across rotations."""
    from rolesanywhere.x509.loader import IdentityLoader

    _refuse_unsupported(args)
    if not args.certificate:
        raise UsageError(
            "unable to use cert store signer: no --certificate given; pass --certificate FILE "
            "(and --private-key FILE unless one file holds both)"
        )
    files, _ = split(values_from_args(args))

    def load(password: str | None) -> IdentityLoader:
        loader = IdentityLoader(**{**files, "password": password})
        loader.get()
        return loader

    return _with_password(args, stdin, stderr, load)


if TYPE_CHECKING:
    _T = TypeVar("_T")


def _with_password(
    args: argparse.Namespace, stdin: TextIO, stderr: TextIO, load: Callable[[str | None], _T]
) -> _T:
    """``load(password)``; asks for the password on a terminal when the key needs one."""
    from rolesanywhere.errors import PasswordRequiredError

    password = _password(args)
    try:
        return load(password)
    except PasswordRequiredError:
        if password is not None or not stdin.isatty():
            raise
        import getpass

        typed = getpass.getpass("Private key password: ", stream=stderr)
        return load(_capped_password(typed, "the terminal"))


def _client(
    args: argparse.Namespace, stdin: TextIO, stderr: TextIO, *, long_running: bool = False
) -> RolesAnywhereClient:
    """The CreateSession client the identity flags describe (the identity loaded on first use,
    after the ARNs and flags were validated). ``long_running`` (``serve``, ``update``): a
    throttle is not retried at once, the caller's jittered backoff takes over."""
    from rolesanywhere.session.client import RolesAnywhereClient
    from rolesanywhere.session.transport import StdlibTransport, resolve_verify

    class _Lazy:
        """Loads the identity on first use, after the ARNs and flags were validated."""

        loader: IdentityLoader | None = None

        def get(self) -> Identity:
            if self.loader is None:
                self.loader = _identity_loader(args, stdin, stderr)
            return self.loader.get()

    _, settings = split(values_from_args(args))
    settings["verify"] = verify = resolve_verify(settings["verify"])
    # One request per run: our small HTTP/1.1 client starts faster than httpx; proxies need httpx.
    transport = None if settings["proxy_from_env"] else StdlibTransport(verify=verify)

    def debug(text: str) -> None:
        print(text, file=stderr)

    retry = None
    if long_running:
        from rolesanywhere.retry import LONG_RUNNING

        retry = LONG_RUNNING
    return RolesAnywhereClient(
        _Lazy(), **settings, transport=transport, debug=debug if args.debug else None, retry=retry
    )


def _credential_process(
    args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO
) -> int:
    from rolesanywhere.profiles.cache import CredentialCache, cache_enabled

    cache = None
    if cache_enabled(args.cache):  # checked before the identity is loaded: a hit loads nothing
        warn = lambda text: print(f"{_prog()}: warning: {text}", file=stderr)  # noqa: E731
        cache = CredentialCache(values_from_args(args), warn=warn)

    import time

    # --timeout bounds the run: a miss waits for another process's answer for half of it at
    # most, and the call gets what is left
    start = time.monotonic()

    def fetch() -> Credentials:
        if cache:
            args.timeout = max(args.timeout - (time.monotonic() - start), args.timeout / 2)
        with _client(args, stdin, stderr) as client:
            return client.create_session()

    output = cache.answer(fetch, wait=args.timeout / 2) if cache else fetch().to_process_json()
    stdout.write(output)
    stdout.flush()
    return 0


def _update(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    import threading

    from rolesanywhere.cli.signals import stop_on_signals
    from rolesanywhere.profiles.credfile import credentials_file_path, run_update

    _warn_password_flag(args, stderr)
    stop = threading.Event()
    long_running = not args.once  # --once is a one-shot run: its own retries, as credential-process
    with stop_on_signals(stop), _client(args, stdin, stderr, long_running=long_running) as client:
        return run_update(
            client.create_session,
            credentials_file_path(),
            args.profile,
            once=args.once,
            wait=stop.wait,
            err=stderr,
        )


def _signing_key(args: argparse.Namespace, stdin: TextIO, stderr: TextIO) -> SigningKey:
    """The key ``sign-string`` signs with: ``--private-key``, else the one in ``--certificate``
    (a PEM file holding both, or PKCS#12); a ``pkcs11:`` key signs for ``--certificate``."""
    from rolesanywhere.x509.sources import is_pkcs11_uri

    if is_pkcs11_uri(args.private_key) and not args.certificate:
        raise UsageError(
            "a pkcs11: --private-key needs its --certificate (a file or a pkcs11: URI)"
        )
    if args.private_key is None or is_pkcs11_uri(args.private_key):
        if not args.certificate:
            raise UsageError(
                "no --private-key given: pass --private-key FILE (or a --certificate file "
                "that holds the key too)"
            )
        return _identity_loader(args, stdin, stderr).get().signing_key
    _refuse_unsupported(args)
    from rolesanywhere.x509.keyfiles import read_signing_key

    tpm = {
        "tpm_key_password": args.tpm_key_password,
        "no_tpm_key_password": args.no_tpm_key_password,
    }
    return _with_password(
        args, stdin, stderr, lambda pw: read_signing_key(args.private_key, pw, **tpm)
    )


def _serve(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    import threading

    from rolesanywhere.cli.imds import (
        CONTAINER_PATH,
        ImdsCore,
        first_credentials,
        role_name_from_arn,
        serve,
    )
    from rolesanywhere.cli.signals import stop_on_signals
    from rolesanywhere.session.refresh import RefreshingCredentials

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, not {args.port}")
    if not 1 <= args.hop_limit <= 255:
        raise UsageError(f"--hop-limit must be 1 to 255, not {args.hop_limit}")
    import os

    container_token = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") or None
    _warn_password_flag(args, stderr)
    stop = threading.Event()
    with stop_on_signals(stop), _client(args, stdin, stderr, long_running=True) as client:
        credentials = RefreshingCredentials(client)
        # Fail now, with one line, if the set-up is wrong; wait out throttles (a boot storm).
        if not first_credentials(credentials, stop, stderr, _prog()):
            credentials.close()
            return 0
        core = ImdsCore(
            role_name_from_arn(args.role_arn), credentials.get, container_token=container_token
        )

        def ready(port: int) -> None:
            print(
                f"serving credentials for role {core.role_name} on http://127.0.0.1:{port}/ "
                f"(AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{port}/"
                + (
                    f", AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{port}{CONTAINER_PATH}"
                    if container_token
                    else ""
                )
                + ")",
                file=stderr,
                flush=True,
            )

        try:
            serve(core, port=args.port, hop_limit=args.hop_limit, ready=ready, stop=stop)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}: "
                "pick another --port"
            ) from None
        finally:
            credentials.close()
    return 0


def _sign_string(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from rolesanywhere.x509.diagnostics import format_signature, sign_fixed_string

    key = _signing_key(args, stdin, stderr)
    if args.debug:
        mldsa = key.algorithm.endswith("-MLDSA")  # pure ML-DSA: no suffix, no digest
        print(
            'signing "AWS Roles Anywhere Credential Helper Signing Test" || "1"'
            + ("" if mldsa else ' || SHA256("IAM RA" || public key)')
            + f" with {key.algorithm}"
            + ("" if mldsa else f", digest {args.digest}"),
            file=stderr,
        )
    output = format_signature(sign_fixed_string(key, args.digest), args.format)
    binary = getattr(stdout, "buffer", None)
    if binary is None:
        if args.format == "bin":
            raise UsageError("--format bin needs a binary standard output")
        stdout.write(output.decode())
    else:
        stdout.flush()
        binary.write(output)
        binary.flush()
    return 0


def _read_certificate_data(
    args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO
) -> int:
    _refuse_unsupported(args)
    if not args.certificate:
        raise UsageError("no --certificate given: pass --certificate FILE")
    from rolesanywhere.x509.certificates import certificate_der_fields
    from rolesanywhere.x509.diagnostics import certificate_data_json
    from rolesanywhere.x509.sources import is_pkcs11_uri, read_source

    if is_pkcs11_uri(args.certificate):
        from rolesanywhere.x509.pkcs11 import describe_certificates, list_certificates

        found = list_certificates(args.certificate, pkcs11_lib=args.pkcs11_lib)
        stdout.write(describe_certificates(found))
        stdout.flush()
        return 0

    source = read_source(args.certificate, what="certificate")
    der, fields = certificate_der_fields(source.data, source=source.name)
    stdout.write(certificate_data_json(der, fields, source=source.name))
    stdout.flush()
    return 0


def _demo(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from rolesanywhere.cli.demo import run_demo

    return run_demo(stdout, key_type=args.key_type)


def _ship(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from rolesanywhere.cli.ship import run_ship
    from rolesanywhere.ship.config.flags import from_args

    _warn_password_flag(args, stderr)
    return run_ship(
        from_args(args), once=args.once, status_interval=args.status_interval, err=stderr
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO, TextIO], int]] = {
    "credential-process": _credential_process,
    "update": _update,
    "serve": _serve,
    "sign-string": _sign_string,
    "read-certificate-data": _read_certificate_data,
    "demo": _demo,
    "ship": _ship,
    "curl": _lazy("rolesanywhere.cli.curl", "run_curl"),
    "completion": _lazy("rolesanywhere.cli.completion", "run_completion"),
    "help": _lazy("rolesanywhere.cli.completion", "run_help"),
}


def _discard_output(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null (what is still buffered goes nowhere)."""
    import os

    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


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
    prog = _prog()
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        if argv[:1] == ["credential-process"]:
            from rolesanywhere.cli.cachehit import cached_answer

            output = cached_answer(argv[1:])
            if output is not None:  # the answer _credential_process would print
                stdout.write(output)
                stdout.flush()
                return 0
        from rolesanywhere.cli.gobool import go_booleans

        parser = _build_parser(prog, argv)
        args = parser.parse_args(go_booleans(parser, _wanted(argv), argv))
        if args.command == "version":
            from rolesanywhere import __version__

            print(__version__, file=stdout)
            return 0
        if args.command is None:
            _build_parser(prog, argv).print_help(stdout)
            return 0
        return _COMMANDS[args.command](args, stdin, stdout, stderr)
    except UsageError as exc:
        print(f"{prog}: {_shown(exc, _wanted(argv or []))}", file=stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=stderr)
    except BrokenPipeError:
        # The reader went away (``| head -3``): stop, and keep Python from failing again when it
        # flushes the dead stdout at exit.
        _discard_output(stdout)
        print(f"{prog}: output stopped: standard output was closed by its reader", file=stderr)
    except SystemExit as exc:  # --help and friends
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:  # one line, never a traceback, no terminal control sequence
        from rolesanywhere.errors import RolesAnywhereError

        if isinstance(exc, RolesAnywhereError):
            print(f"{prog}: {_shown(exc, _wanted(argv or []))}", file=stderr)
        else:
            detail = _shown(exc)
            print(f"{prog}: unexpected error: {type(exc).__name__}: {detail}", file=stderr)
    return 1
