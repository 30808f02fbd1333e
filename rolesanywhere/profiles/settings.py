"""The identity and CreateSession settings, defined once for every face that takes them.

:data:`SETTINGS` lists each setting with its Python parameter name (a keyword argument of
:class:`~rolesanywhere.x509.identity.IdentityLoader` or
:class:`~rolesanywhere.session.client.RolesAnywhereClient`), its command-line flag (the Go
``aws_signing_helper``'s name), its key in a configuration file, help text, type and default.
From it come:

- the flags of ``credential-process``, ``update`` and ``serve`` (:func:`add_helper_flags`) and of
  ``ship`` (:func:`add_flags` with ``ship=True``: every flag optional, and ``--region``, the
  ingestion's region there, becomes ``--rolesanywhere-region``);
- the keyword arguments those flags mean (:func:`values_from_args`, :func:`split`);
- an ``aws_signing_helper credential-process …`` line of an AWS config file read in-process
  (:func:`parse_helper_command`), as :class:`IdentitySettings`;
- the flag that names a parameter in an error message (:func:`flag_namer`: library errors name
  Python parameters, the command line prints its flags).

Adding a setting means adding one :class:`Setting` here. Imports stay light (no ``argparse``, no
``typing`` at run time): the command line imports this module on every run, and a
``credential-process --cache`` hit reads its flags from :data:`SETTINGS`
(:func:`simple_credential_process_values`) without building an argument parser.
:class:`Parser` is imported (with ``argparse``) on first use.
"""

from __future__ import annotations

import os

from rolesanywhere.values import Value

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, Literal

    from rolesanywhere.profiles.argparser import Parser
    from rolesanywhere.retry import RetryPolicy
    from rolesanywhere.session.client import RolesAnywhereClient

    Kind = Literal["text", "int", "float", "switch", "negated"]
    Target = Literal["loader", "client"]

__all__ = [
    "CACHE_FLAG",
    "HELPER_NAMES",
    "PASSWORD_ENV",
    "SETTINGS",
    "UNSUPPORTED_FLAGS",
    "IdentitySettings",
    "Parser",
    "Setting",
    "add_credential_process_flags",
    "add_flags",
    "add_helper_flags",
    "add_unsupported_flags",
    "flag_namer",
    "parse_helper_command",
    "program_name",
    "simple_credential_process_values",
    "split",
    "unsupported_flag",
    "values_from_args",
]

#: Environment variable holding the private key's password (read when no password is given).
PASSWORD_ENV = "ROLESANYWHERE_PKCS8_PASSWORD"  # noqa: S105 - a variable name

#: ``credential-process``'s flag asking for the per-user cache (:mod:`.cache`).
CACHE_FLAG = "--cache"


class Setting(Value):
    """One identity or CreateSession setting.

    ``name``: the Python parameter; ``target``: whose (``"loader"``: ``IdentityLoader``,
    ``"client"``: ``RolesAnywhereClient``); ``flag``: the Go helper's flag; ``key``: the name in
    a configuration file (``ship``'s TOML); ``kind``: ``"text"``, ``"int"``, ``"float"``,
    ``"switch"`` (the flag turns it on) or ``"negated"`` (the flag turns it off); ``default``:
    the command line's; ``required``: the Go helper refuses to run without it; ``env``: the
    variable read when it is not given; ``alias``: its name where ``name`` means something else
    (``region`` is the target service's in ``ship`` and ``SigV4Auth``); ``example``: a valid
    value (tests and docs).
    """

    __slots__ = (
        "name",
        "target",
        "flag",
        "key",
        "help",
        "kind",
        "default",
        "metavar",
        "required",
        "env",
        "alias",
        "example",
    )

    name: str
    target: Target
    flag: str
    key: str
    help: str
    kind: Kind
    default: object
    metavar: str | None
    required: bool
    env: str | None
    alias: str | None
    example: object

    def __init__(
        self,
        name: str,
        target: Target,
        flag: str,
        help: str,
        *,
        example: object,
        key: str | None = None,
        kind: Kind = "text",
        default: object = None,
        metavar: str | None = None,
        required: bool = False,
        env: str | None = None,
        alias: str | None = None,
    ) -> None:
        super().__init__(
            name, target, flag, key or name, help, kind, default, metavar, required, env, alias,
            example,
        )  # fmt: skip

    def flag_for(self, *, ship: bool = False) -> str:
        """The flag in ``credential-process`` (``ship=False``) or in ``ship``."""
        if ship and self.alias is not None:
            return "--" + self.alias.replace("_", "-")
        return self.flag

    def dest(self, *, ship: bool = False) -> str:
        """The attribute of the parsed arguments."""
        return self.alias if ship and self.alias is not None else self.name

    @property
    def switch(self) -> bool:
        """The flag takes no value (``"switch"`` or ``"negated"``)."""
        return self.kind in ("switch", "negated")

    def flag_default(self, *, ship: bool = False) -> object:
        """The value when the flag is not given (``ship=True``: ``None``)."""
        if ship:
            return None
        return self.kind != "switch" if self.switch else self.default

    def flag_value(self, text: str | None) -> object:
        """The value the flag gives: ``text`` converted (``ValueError`` when it is not one), or
        a switch's (``text`` is ``None``)."""
        if self.switch:
            return self.kind == "switch"
        assert text is not None
        return _TYPES[self.kind](text)


_ARN = "arn:aws:rolesanywhere:us-east-1:111122223333"

#: Every identity and CreateSession setting, in the order ``--help`` lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "certificate", "loader", "--certificate",
        "certificate file (PEM, DER or PKCS#12), env:NAME or - for stdin",
        metavar="FILE", example="/etc/pki/client.pem",
    ),
    Setting(
        "private_key", "loader", "--private-key",
        "private key file (PKCS#1, SEC1 or PKCS#8; PEM or DER)",
        metavar="FILE", example="/etc/pki/client.key",
    ),
    Setting(
        "intermediates", "loader", "--intermediates",
        "intermediate CA certificates (PEM bundle)",
        metavar="FILE", example="/etc/pki/chain.pem",
    ),
    Setting(
        "trust_anchor_arn", "client", "--trust-anchor-arn", "ARN of the trust anchor",
        metavar="ARN", required=True,
        example=f"{_ARN}:trust-anchor/0a1b2c3d-0000-4000-8000-00000000000a",
    ),
    Setting(
        "profile_arn", "client", "--profile-arn", "ARN of the Roles Anywhere profile",
        metavar="ARN", required=True,
        example=f"{_ARN}:profile/0a1b2c3d-0000-4000-8000-00000000000b",
    ),
    Setting(
        "role_arn", "client", "--role-arn", "ARN of the role to assume",
        metavar="ARN", required=True, example="arn:aws:iam::111122223333:role/probe",
    ),
    Setting(
        "duration_seconds", "client", "--session-duration", "seconds, 900-43200 (default 3600)",
        key="session_duration", kind="int", default=3600, metavar="SECONDS", example=1800,
    ),
    Setting(
        "role_session_name", "client", "--role-session-name",
        "session name recorded in CloudTrail", metavar="NAME", example="probe-session",
    ),
    Setting(
        "region", "client", "--region",
        "Roles Anywhere signing region (default: the trust anchor's)",
        metavar="REGION", alias="rolesanywhere_region", example="us-east-1",
    ),
    Setting(
        "endpoint", "client", "--endpoint", "Roles Anywhere endpoint URL",
        metavar="URL", example="https://rolesanywhere.example.test",
    ),
    Setting(
        "verify", "client", "--no-verify-ssl", "do not verify the endpoint's TLS certificate",
        key="verify_ssl", kind="negated", default=True, example=False,
    ),
    Setting(
        "proxy_from_env", "client", "--with-proxy", "use HTTP(S)_PROXY from the environment",
        key="with_proxy", kind="switch", default=False, example=True,
    ),
    Setting(
        "password", "loader", "--pkcs8-password",
        "password of an encrypted private key; visible to other users in ps: prefer setting "
        + PASSWORD_ENV,
        key="pkcs8_password", metavar="PASSWORD", env=PASSWORD_ENV, example="probe-password",
    ),
    Setting(
        "tpm_key_password", "loader", "--tpm-key-password",
        "password of a TPM 2.0 key (handle:0x81… or a TSS2 key file); visible in ps",
        metavar="PASSWORD", example="probe-tpm-password",
    ),
    Setting(
        "no_tpm_key_password", "loader", "--no-tpm-key-password",
        "the TPM 2.0 key has no password", kind="switch", default=False, example=True,
    ),
    Setting(
        "pkcs11_lib", "loader", "--pkcs11-lib",
        "PKCS#11 module for pkcs11: URIs (default: p11-kit-proxy where present)",
        metavar="LIB", example="/usr/lib/softhsm/libsofthsm2.so",
    ),
    Setting(
        "reuse_pin", "loader", "--reuse-pin",
        "sign with the login PIN when a token key asks for it at every signature",
        kind="switch", default=False, example=True,
    ),
    Setting(
        "timeout", "client", "--timeout",
        "seconds one CreateSession call may take, retries included (default 30)",
        kind="float", default=30.0, metavar="SECONDS", example=12.5,
    ),
)  # fmt: skip

_BY_NAME = {setting.name: setting for setting in SETTINGS}
#: Settings never shown.
_SECRETS = frozenset({"password", "tpm_key_password"})

#: Go helper flags this version parses but does not implement yet (hardware and OS stores):
#: attribute -> (flag, whether it is a switch).
UNSUPPORTED_FLAGS: dict[str, tuple[str, bool]] = {
    "cert_selector": ("--cert-selector", False),
    "system_store_name": ("--system-store-name", False),
    "system_store_location": ("--system-store-location", False),
    "use_latest_expiring_certificate": ("--use-latest-expiring-certificate", True),
}

#: Executable names (any directory) whose ``credential-process`` runs in-process.
HELPER_NAMES = frozenset(
    {"aws_signing_helper", "aws_signing_helper.exe", "rolesanywhere", "rolesanywhere.exe"}
)


# --- errors ---------------------------------------------------------------------------------------


def flag_namer(*, ship: bool = False) -> Callable[[str], str]:
    """How the command line names a parameter in an error message (see
    :meth:`~rolesanywhere.errors.RolesAnywhereError.naming`): its flag, and the variable that
    may stand in for it; a parameter that is no setting keeps its name."""

    def name(python_name: str) -> str:
        setting = _BY_NAME.get(python_name)
        if setting is None:
            return python_name
        flag = setting.flag_for(ship=ship)
        return f"{flag} or {setting.env}" if setting.env else flag

    return name


# --- argparse -------------------------------------------------------------------------------------


def __getattr__(name: str) -> object:
    # Parser subclasses argparse's: imported when first used, not with this module.
    if name == "Parser":
        from rolesanywhere.profiles.argparser import Parser

        return Parser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_TYPES: dict[Kind, Callable[[str], object]] = {"text": str, "int": int, "float": float}


def add_flags(
    add_to: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    ship: bool = False,
    names: Sequence[str] | None = None,
) -> None:
    """Add the settings' flags (those of ``names``, default all) to a parser or group.

    ``ship=False``: as ``credential-process`` takes them (the ARNs required, defaults set).
    ``ship=True``: all optional and ``None`` when not given (a configuration file may hold
    them), ``--region`` spelled ``--rolesanywhere-region``.
    """
    for setting in SETTINGS if names is None else [_BY_NAME[n] for n in names]:
        options: dict[str, Any] = {"dest": setting.dest(ship=ship), "help": setting.help}
        options.update(default=setting.flag_default(ship=ship))
        if setting.switch:
            options.update(action="store_const", const=setting.flag_value(None))
        else:
            options.update(type=_TYPES[setting.kind], metavar=setting.metavar)
            options.update(required=setting.required and not ship)
        add_to.add_argument(setting.flag_for(ship=ship), **options)


def add_unsupported_flags(
    add_to: argparse.ArgumentParser | argparse._ArgumentGroup, names: Sequence[str] | None = None
) -> None:
    """Accept the Go helper's flags of :data:`UNSUPPORTED_FLAGS` (hidden from ``--help``)."""
    import argparse

    for dest in UNSUPPORTED_FLAGS if names is None else names:
        flag, switch = UNSUPPORTED_FLAGS[dest]
        if switch:
            add_to.add_argument(flag, dest=dest, action="store_true", help=argparse.SUPPRESS)
        else:
            add_to.add_argument(flag, dest=dest, help=argparse.SUPPRESS)


def add_helper_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the Go helper's ``credential-process`` (also ``update`` and ``serve``)."""
    group = parser.add_argument_group("identity and session")
    add_flags(group)
    group.add_argument(
        "--debug", action="store_true", help="print the canonical request and headers to stderr"
    )
    add_unsupported_flags(group)


def add_credential_process_flags(parser: argparse.ArgumentParser) -> None:
    """``credential-process``'s flags: :func:`add_helper_flags` and ``--cache`` (see
    :mod:`rolesanywhere.profiles.cache`), a command-line option, not a library setting
    (in-process clients keep their credentials)."""
    add_helper_flags(parser)
    parser.add_argument(
        CACHE_FLAG,
        action="store_true",
        help="reuse unexpired credentials from a per-user cache across runs "
        "(also ROLESANYWHERE_CACHE=1)",
    )


def simple_credential_process_values(words: Sequence[str]) -> tuple[dict[str, Any], bool] | None:
    """``credential-process``'s arguments (``words``, after the subcommand) read without
    ``argparse``, when they are plainly :data:`SETTINGS` flags (``--flag VALUE``,
    ``--flag=VALUE``, a bare switch) and :data:`CACHE_FLAG`, each at most once, the required
    ones given: (every setting's value by Python name, as :func:`values_from_args` gives them;
    whether :data:`CACHE_FLAG` was given). ``None`` for anything else (another flag, an
    abbreviation, ``--help``, a switch with a value, a value starting with ``-``, a repeated
    flag, a value that does not convert, a missing one): the argument parser decides those."""
    by_flag = {setting.flag: setting for setting in SETTINGS}
    values = {setting.name: setting.flag_default() for setting in SETTINGS}
    given: set[str] = set()
    cache = False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == CACHE_FLAG and not cache:
            cache = True
            continue
        flag, equals, text = word.partition("=")
        setting = by_flag.get(flag)
        if setting is None or flag in given or (setting.switch and equals):
            return None
        given.add(flag)
        if not setting.switch and not equals:
            if i == len(words) or words[i].startswith("-"):
                return None
            text = words[i]
            i += 1
        try:
            values[setting.name] = setting.flag_value(None if setting.switch else text)
        except ValueError:
            return None
    if any(s.required and s.flag not in given for s in SETTINGS):
        return None
    return values, cache


def unsupported_flag(args: argparse.Namespace) -> str | None:
    """The first flag of :data:`UNSUPPORTED_FLAGS` given, if any."""
    for dest, (flag, _) in UNSUPPORTED_FLAGS.items():
        if getattr(args, dest, None):
            return flag
    return None


def values_from_args(args: argparse.Namespace, *, ship: bool = False) -> dict[str, Any]:
    """The settings parsed by :func:`add_flags`, by Python name: those the parser has (with
    ``ship=True``, only those given)."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        dest = setting.dest(ship=ship)
        if hasattr(args, dest) and (not ship or getattr(args, dest) is not None):
            values[setting.name] = getattr(args, dest)
    return values


def split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` (settings by Python name) as the keyword arguments of ``IdentityLoader`` and of
    ``RolesAnywhereClient``."""
    loader: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for name, value in values.items():
        (loader if _BY_NAME[name].target == "loader" else client)[name] = value
    return loader, client


# --- one credential source ------------------------------------------------------------------------


class IdentitySettings:
    """A Roles Anywhere credential source: every :data:`SETTINGS` value, by Python name.

    ``IdentitySettings(certificate=..., trust_anchor_arn=..., ...)``; settings not given take
    the command line's defaults. Read them as attributes (``settings.duration_seconds``). A
    ``password`` of ``None`` means :data:`PASSWORD_ENV`, read when the client is built; it is
    never shown.
    """

    __slots__ = ("values",)

    values: dict[str, Any]

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(_BY_NAME))
        if unknown:
            raise TypeError(f"IdentitySettings() got unknown settings: {', '.join(unknown)}")
        resolved = {s.name: values.get(s.name, s.default) for s in SETTINGS}
        object.__setattr__(self, "values", resolved)

    @classmethod
    def from_keys(cls, keys: Mapping[str, Any]) -> IdentitySettings:
        """The settings of a configuration file's keys (:attr:`Setting.key`)."""
        return cls(**{s.name: keys[s.key] for s in SETTINGS if s.key in keys})

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "values")[name]
        except KeyError:
            raise AttributeError(f"IdentitySettings has no setting {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"IdentitySettings is read-only: cannot assign to {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdentitySettings):
            return NotImplemented
        return self.values == other.values

    def __hash__(self) -> int:
        return hash(tuple(self.values.items()))

    def __repr__(self) -> str:
        from rolesanywhere.x509.sources import redact_uri

        shown = ", ".join(
            f"{name}={redact_uri(value) if isinstance(value, str) else value!r}"
            if name in ("certificate", "private_key")
            else f"{name}={value!r}"
            for name, value in self.values.items()
            if name not in _SECRETS
        )
        return f"IdentitySettings({shown})"

    def validate(self) -> None:
        """Check ARNs, regions, duration, session name and timeout without any I/O (raises
        :class:`~rolesanywhere.errors.InvalidParameterError`)."""
        from rolesanywhere.errors import InvalidParameterError, parameter

        if not str(self.certificate or "").strip():
            raise InvalidParameterError(
                f"{parameter('certificate')} is empty: pass a certificate file"
            )
        self.client(environ={}).close()

    def describe(self) -> str:
        """One line for status output (paths and ARNs, never the password)."""
        from rolesanywhere.x509.sources import describe

        shown = describe(self.certificate) if self.certificate else None
        return f"IAM Roles Anywhere (certificate {shown}, role {self.role_arn})"

    def client(
        self, *, environ: Mapping[str, str] | None = None, retry: RetryPolicy | None = None
    ) -> RolesAnywhereClient:
        """A :class:`~rolesanywhere.session.client.RolesAnywhereClient` over an
        :class:`~rolesanywhere.x509.identity.IdentityLoader` (files re-read when they change).
        Nothing is read until the first call. ``retry``: the client's retry policy
        (long-running callers pass :data:`~rolesanywhere.retry.LONG_RUNNING`)."""
        from rolesanywhere.session.client import RolesAnywhereClient
        from rolesanywhere.x509.loader import IdentityLoader

        loader, client = split(self.values)
        if loader["password"] is None:
            env = os.environ if environ is None else environ
            loader["password"] = env.get(PASSWORD_ENV) or None
        return RolesAnywhereClient(IdentityLoader(**loader), **client, retry=retry)


# --- the aws_signing_helper command line ----------------------------------------------------------


def program_name(path: str) -> str:
    """The executable's file name, without its directory (``/`` or ``\\``)."""
    import re

    return re.split(r"[\\/]", path)[-1]


def parse_helper_command(argv: Sequence[str]) -> IdentitySettings | str | None:
    """Read an ``aws_signing_helper credential-process …`` command line.

    Returns the :class:`IdentitySettings` when it can run in-process, ``None`` when ``argv`` is
    not that command, or a reason (a string) when it is but must run as a subprocess (a flag
    this version does not implement in-process, or arguments the parser refuses).
    """
    if len(argv) < 2 or program_name(argv[0]) not in HELPER_NAMES:
        return None
    if argv[1] != "credential-process":
        return None
    from rolesanywhere.errors import UsageError
    from rolesanywhere.profiles.argparser import Parser

    parser = Parser(prog="aws_signing_helper credential-process", add_help=False)
    add_credential_process_flags(parser)  # --cache accepted; in-process credentials need no cache
    try:
        args = parser.parse_args(list(argv[2:]))
    except UsageError as exc:
        return f"its arguments were not understood ({exc})"
    flag = unsupported_flag(args)
    if flag is not None:
        return f"{flag} is not supported in-process"
    if not args.certificate:
        return "it has no --certificate"
    return IdentitySettings(**values_from_args(args))
