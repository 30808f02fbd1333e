"""Configuration of ``rolesanywhere ship``: a :class:`ShipConfig` from Fluent Bit, TOML or flags.

``rolesanywhere ship`` replaces the Fluent Bit set-up of the AWS Big Data Blog post "Implement
secure hybrid and multicloud log ingestion with Amazon OpenSearch Ingestion" (a ``tail`` input,
an ``http`` output with ``aws_auth``, credentials from ``aws_signing_helper credential-process``).
Three sources, merged as *defaults < config file < flags*:

- :func:`from_fluent_bit`: the classic Fluent Bit format, so an existing ``fluent-bit.conf``
  keeps working;
- :func:`from_toml`: our own format (below);
- :func:`add_ship_arguments` + :func:`from_args`: the command line (``-c/--config FILE`` reads a
  Fluent Bit or TOML file first, detected by extension, then by content).

Every problem is a one-line :class:`ShipConfigError` (an
:class:`~rolesanywhere.errors.InvalidParameterError`) saying where (``file:line``, ``file: key``
or ``--flag``), what is wrong and how to fix it. Anything read but not used (unknown keys,
plugins, filters) is a :class:`ConfigWarning` naming the section, key and ``file:line``: nothing
is ignored silently.

Fluent Bit classic format
-------------------------
Sections ``[SERVICE]``, ``[INPUT]``, ``[FILTER]``, ``[OUTPUT]`` (names and keys case-insensitive);
entries indented, ``Key Value`` (the value is the rest of the line); ``#`` comment lines;
``@SET KEY=VALUE`` and ``@INCLUDE FILE`` at the start of a line (``@INCLUDE`` is relative to the
including file and may be a glob); ``${VAR}`` replaced by an ``@SET`` variable, else the
environment variable (unset: empty, with a warning). Booleans ``On/Off/true/false/yes/no``;
sizes ``32000``, ``32k``/``32KB`` (×1000, as Fluent Bit), ``32KiB`` (×1024), ``M``, ``G``;
times ``5``, ``5s``, ``500ms``, ``1m``, ``1h``, ``1d``.

=======================================  =====================================================
Fluent Bit                               ShipConfig
=======================================  =====================================================
``[SERVICE] Flush``                      ``flush_interval``
``[SERVICE] storage.path``               ``state_dir`` (when no tail ``DB``)
``[SERVICE] scheduler.cap``              ``max_backoff``
``[SERVICE] Grace``                      ``stop_timeout``
``[INPUT] Name tail``: ``Path``          ``paths`` (comma-separated globs; several tail inputs
                                         are merged, their other settings must agree)
``Exclude_Path``                         ``exclude_paths``
``Read_from_Head``                       ``read_from_head``
``Refresh_Interval`` / ``Rotate_Wait``   ``refresh_interval`` / ``rotate_wait``
``Buffer_Max_Size``                      ``max_line_bytes``
``Skip_Long_Lines On``                   ``long_lines = "truncate"`` + a warning (Fluent Bit
                                         drops such lines; we cut them and count them)
``DB``                                   ``state_dir`` = its directory (+ a warning: the Fluent
                                         Bit database itself is not read)
``Path_Key`` / ``Key`` / ``Tag``         ``path_key`` / ``log_key`` / ``tag``
``[FILTER] record_modifier Record K V``  ``fields[K] = V`` (also ``modify`` ``Add``/``Set``)
``[OUTPUT] Name http``: ``Host``,        ``url`` (``https`` unless ``tls Off``; default port
``Port``, ``URI``, ``tls``               of the scheme)
``tls.verify`` / ``tls.ca_file``         ``tls_verify`` / ``ca_bundle``
``Format json``                          (required: ``json_lines``/``json_stream`` are sent
                                         as one JSON array with a warning; others refused)
``json_date_key`` / ``json_date_format`` ``date_key`` (``false``: none) / ``date_format``
``compress gzip``                        ``compress``
``aws_auth``                             must not be ``Off``: requests are always signed
``aws_region`` / ``aws_service``         ``region`` / ``service``
``aws_profile``                          ``aws_profile``
``Retry_Limit``                          ``retry_limit`` (``False``/``no_limits``: unlimited,
                                         ``no_retries``: 0)
``Header Name Value`` (repeatable)       ``headers``
``Match``                                checked against the tail ``Tag``
=======================================  =====================================================

TOML format
-----------
Unknown keys are errors (naming the key path). Sizes are byte counts or strings such as
``"32KiB"``; times are seconds or strings such as ``"1m"``. Example::

    [input]
    paths = ["/var/log/*.log", "/opt/app/logs/**/*.log"]
    exclude_paths = ["*.gz"]
    read_from_head = false
    refresh_interval = 60          # seconds between glob re-scans
    rotate_wait = 5                # seconds a rotated file is still followed
    max_line_bytes = "32KiB"
    long_lines = "split"           # or "truncate"

    [output]
    url = "https://my-pipeline-abc123.us-east-1.osis.amazonaws.com/test-ingestion-path"
    # or: host = "...", port = 443, uri = "/test-ingestion-path", tls = true
    region = "us-east-1"           # default: read from the OSIS host name
    service = "osis"
    compress = true                # gzip (the pipeline must set compression: gzip)
    batch_bytes = "1MiB"           # at most 1 MiB
    batch_events = 1000            # optional
    flush_interval = 1
    retry_limit = "unlimited"      # or a number of retries
    max_backoff = 60
    timeout = 30                   # seconds per request
    stop_timeout = 5               # seconds from SIGTERM/SIGINT to exit (undelivered: next run)
    tls_verify = true
    ca_bundle = "/etc/ssl/certs/ca-bundle.crt"
    headers = { "X-Team" = "ops" }

    [record]
    log_key = "log"
    date_key = "date"              # false: no date field
    date_format = "double"         # or "epoch", "iso8601"
    path_key = "file"
    host_key = "host"
    fields = { env = "prod" }

    [state]
    dir = "/var/lib/rolesanywhere-ship"
    # reset_positions = "head"     # only when the position database of a state directory used
    #                              # before is missing, empty or damaged: "head" reads the files
    #                              # again from their beginning (duplicates), "end" starts at
    #                              # their end (lines written meanwhile are skipped); unset: refuse

    [credentials]
    # either an AWS profile (see rolesanywhere.profiles.awsconfig) ...
    aws_profile = "ingest"
    # ... or a Roles Anywhere identity:
    # certificate = "/etc/pki/client.pem"
    # private_key = "/etc/pki/client.key"
    # intermediates = "/etc/pki/chain.pem"
    # trust_anchor_arn = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/..."
    # profile_arn = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/..."
    # role_arn = "arn:aws:iam::111122223333:role/ingest"
    # session_duration = 3600
    # role_session_name = "shipper"
    # region = "us-east-1"         # Roles Anywhere region (default: the trust anchor's)
    # endpoint = "https://rolesanywhere.us-east-1.amazonaws.com"
    # verify_ssl = true
    # with_proxy = false
    # pkcs8_password = "..."       # better: ROLESANYWHERE_PKCS8_PASSWORD in the environment
    # timeout = 30

With neither an identity nor ``aws_profile``, credentials come from ``$AWS_PROFILE`` (else the
``default`` profile), as Fluent Bit's default chain would find them.

Imports stay light: stdlib (``tomllib`` when TOML is read), and modules of this package that
import neither ``httpx`` nor ``cryptography``.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.profiles.awsconfig import (
    CredentialProvider,
    credential_source_for_identity,
    credential_source_for_profile,
)
from rolesanywhere.profiles.settings import (
    SETTINGS,
    IdentitySettings,
    add_flags,
    add_unsupported_flags,
    flag_namer,
    unsupported_flag,
    values_from_args,
)
from rolesanywhere.session.endpoints import partition_for_region, show

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "MAX_BATCH_BYTES",
    "ConfigWarning",
    "ShipConfig",
    "ShipConfigError",
    "add_ship_arguments",
    "default_state_dir",
    "detect_format",
    "from_args",
    "from_fluent_bit",
    "from_toml",
    "load_file",
    "parse_bool",
    "parse_duration",
    "parse_size",
    "region_from_osis_host",
]

#: The largest request body (before compression) Data Prepper handles without silent drops.
MAX_BATCH_BYTES = 1 << 20
DEFAULT_MAX_LINE_BYTES = 32 * 1024
_MAX_INCLUDE_DEPTH = 16

LongLines = Literal["split", "truncate"]
DateFormat = Literal["double", "epoch", "iso8601"]
ResetPositions = Literal["head", "end"]
FieldValue = str | int | float | bool


class ShipConfigError(InvalidParameterError):
    """A configuration problem, one line: ``location: what is wrong: how to fix it``."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.problem = message


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something read but not used as written (``str()``: ``location: message``)."""

    message: str
    location: str | None = None
    section: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


# --- values ---------------------------------------------------------------------------------------

_TRUE = frozenset({"on", "true", "yes"})
_FALSE = frozenset({"off", "false", "no"})
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SIZE_RE = re.compile(_NUMBER + r"\s*([a-z]*)", re.IGNORECASE)
_TIME_RE = re.compile(_NUMBER + r"\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_bool(text: str, what: str = "value") -> bool:
    """``On/Off/true/false/yes/no`` (any case)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ShipConfigError(f"{what} must be On/Off, true/false or yes/no, not {show(text)}")


def parse_size(text: str, what: str = "size") -> int:
    """Bytes from ``32000``, ``32k``/``32KB`` (×1000, as Fluent Bit), ``32KiB`` (×1024)…"""
    match = _SIZE_RE.fullmatch(text.strip())
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ShipConfigError(
            f"{what} must be a size such as 32000, 32k, 5M or 1MiB, not {show(text)}"
        )
    return round(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str, what: str = "time") -> float:
    """Seconds from ``5``, ``5s``, ``500ms``, ``1m``, ``1h`` or ``1d``."""
    match = _TIME_RE.fullmatch(text.strip())
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _TIME_UNITS:
        raise ShipConfigError(
            f"{what} must be a time such as 5, 5s, 500ms, 1m or 1h, not {show(text)}"
        )
    return float(match.group(1)) * _TIME_UNITS[unit]


def _parse_retry_limit(text: str, what: str) -> int | None:
    word = text.strip().lower()
    if word in ("false", "no_limits", "unlimited", "off"):
        return None
    if word == "no_retries":
        return 0
    if re.fullmatch(r"[0-9]+", word):
        return int(word)
    raise ShipConfigError(
        f"{what} must be a number of retries, 'no_retries' or 'False'/'no_limits' "
        f"(unlimited), not {show(text)}"
    )


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


_OSIS_HOST = re.compile(r"[^.]+\.([a-z0-9-]+)\.osis\.[a-z0-9.-]+\.?")


def region_from_osis_host(host: str | None) -> str | None:
    """``us-east-1`` from ``{pipeline}-{id}.us-east-1.osis.amazonaws.com``; else ``None``."""
    if not host:
        return None
    match = _OSIS_HOST.fullmatch(host.strip().lower())
    if match is None:
        return None
    try:
        partition_for_region(match.group(1))
    except InvalidParameterError:
        return None
    return match.group(1)


def default_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$STATE_DIRECTORY`` (systemd ``StateDirectory=``), else
    ``$XDG_STATE_HOME/rolesanywhere/ship``, else ``~/.local/state/rolesanywhere/ship``."""
    env = os.environ if environ is None else environ
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return systemd
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "rolesanywhere", "ship")


# --- the configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShipConfig:
    """Everything ``rolesanywhere ship`` needs, validated. Build it with :func:`from_args`,
    :func:`from_fluent_bit`, :func:`from_toml` or :func:`load_file`."""

    # input
    #: Glob patterns of the files to follow (``**`` recurses).
    paths: tuple[str, ...]
    #: The ingestion URL: scheme, host, port (omitted when the scheme's default) and path.
    url: str
    #: SigV4 signing region of the ingestion endpoint.
    region: str
    #: Files matching these globs (full path or file name) are not followed.
    exclude_paths: tuple[str, ...] = ()
    #: Files present at the first start are read from their beginning, not their end.
    read_from_head: bool = False
    #: Seconds between re-scans of the globs.
    refresh_interval: float = 60.0
    #: Seconds a rotated file is still followed.
    rotate_wait: float = 5.0
    #: Longest line shipped as one record; longer ones are split or truncated.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: ``"split"``: a long line becomes several records; ``"truncate"``: it is cut (counted).
    long_lines: LongLines = "split"
    #: The Fluent Bit input ``Tag`` (informational; checked against the output's ``Match``).
    tag: str | None = None
    # output
    #: SigV4 service name.
    service: str = "osis"
    #: Send gzip bodies (the pipeline must set ``compression: gzip``).
    compress: bool = False
    #: Largest request body before compression (at most :data:`MAX_BATCH_BYTES`).
    batch_bytes: int = MAX_BATCH_BYTES
    #: Most records per request (``None``: only ``batch_bytes`` limits).
    batch_events: int | None = None
    #: Seconds to wait for more lines before sending a partial batch.
    flush_interval: float = 1.0
    #: Retries of one request after the first attempt; ``None``: retry until delivered.
    retry_limit: int | None = None
    #: Longest pause between retries, seconds.
    max_backoff: float = 60.0
    #: Seconds one request may take.
    request_timeout: float = 30.0
    #: Seconds from SIGTERM/SIGINT to exit: delivery goes on until then, and what is still
    #: undelivered is left (uncommitted) for the next run.
    stop_timeout: float = 5.0
    #: Verify the ingestion endpoint's TLS certificate.
    tls_verify: bool = True
    #: PEM bundle of CAs for the ingestion endpoint (default: the system's).
    ca_bundle: str | None = None
    #: Extra request headers, in order.
    headers: tuple[tuple[str, str], ...] = ()
    # records
    #: Field holding the line.
    log_key: str = "log"
    #: Field holding the time the line was read (``None``: no time field).
    date_key: str | None = "date"
    #: ``"double"`` (epoch seconds, fractional), ``"epoch"`` (whole seconds) or ``"iso8601"``.
    date_format: DateFormat = "double"
    #: Field holding the file's path (``None``: not added).
    path_key: str | None = None
    #: Field holding this machine's host name (``None``: not added).
    host_key: str | None = None
    #: Fixed fields added to every record, in order.
    fields: tuple[tuple[str, FieldValue], ...] = ()
    # state
    #: Directory of the positions database and the lock (see :func:`default_state_dir`).
    state_dir: str = ""
    #: Where to start over when the position database of a state directory used before is
    #: missing, empty or damaged: ``"head"`` (duplicates) or ``"end"`` (skips what was written
    #: meanwhile); ``None`` refuses to start (see :class:`~rolesanywhere.ship.tail.Tailer`).
    reset_positions: ResetPositions | None = None
    # credentials
    #: A Roles Anywhere identity (the ``credential-process`` flags), or ``None``.
    identity: IdentitySettings | None = None
    #: An AWS profile; with no identity and no profile: ``$AWS_PROFILE``, else ``default``.
    aws_profile: str | None = None
    # provenance
    #: What was read but not used as written.
    warnings: tuple[ConfigWarning, ...] = field(default=(), compare=False)
    #: Configuration files read, includes too.
    sources: tuple[str, ...] = field(default=(), compare=False)

    @property
    def host(self) -> str:
        """The ingestion host (no port)."""
        return urlsplit(self.url).hostname or ""

    def credential_provider(
        self, *, environ: Mapping[str, str] | None = None
    ) -> CredentialProvider:
        """The credential source for
        :class:`~rolesanywhere.session.refresh.RefreshingCredentials`."""
        if self.identity is not None:
            return credential_source_for_identity(self.identity, environ=environ)
        return credential_source_for_profile(self.aws_profile, environ=environ)

    def describe(self) -> str:
        """One line for status output."""
        what = ", ".join(self.paths)
        return f"{what} -> {self.url} (service {self.service}, region {self.region})"

    def to_toml(self, *, include_secrets: bool = False) -> str:
        """This configuration in the TOML format (the private key password only if asked)."""
        tables: dict[str, dict[str, object]] = {
            "input": {
                "paths": list(self.paths),
                "exclude_paths": list(self.exclude_paths),
                "read_from_head": self.read_from_head,
                "refresh_interval": self.refresh_interval,
                "rotate_wait": self.rotate_wait,
                "max_line_bytes": self.max_line_bytes,
                "long_lines": self.long_lines,
                "tag": self.tag,
            },
            "output": {
                "url": self.url,
                "region": self.region,
                "service": self.service,
                "compress": self.compress,
                "batch_bytes": self.batch_bytes,
                "batch_events": self.batch_events,
                "flush_interval": self.flush_interval,
                "retry_limit": "unlimited" if self.retry_limit is None else self.retry_limit,
                "max_backoff": self.max_backoff,
                "timeout": self.request_timeout,
                "stop_timeout": self.stop_timeout,
                "tls_verify": self.tls_verify,
                "ca_bundle": self.ca_bundle,
                "headers": dict(self.headers),
            },
            "record": {
                "log_key": self.log_key,
                "date_key": False if self.date_key is None else self.date_key,
                "date_format": self.date_format,
                "path_key": self.path_key,
                "host_key": self.host_key,
                "fields": dict(self.fields),
            },
            "state": {"dir": self.state_dir, "reset_positions": self.reset_positions},
            "credentials": {"aws_profile": self.aws_profile},
        }
        if self.identity is not None:
            tables["credentials"] = {
                s.key: self.identity.values[s.name]
                for s in SETTINGS
                if include_secrets or s.name != "password"
            }
        lines = ["# rolesanywhere ship configuration"]
        for name, values in tables.items():
            lines.append(f"\n[{name}]")
            lines.extend(
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None
            )
        return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


# --- layers: what one source says -----------------------------------------------------------------

#: Keys that choose a Roles Anywhere identity (over an AWS profile of a lower layer).
_ID_DEFINING = frozenset(
    f"id.{s.key}" for s in SETTINGS if s.required or s.name in ("certificate", "private_key")
)


class _Layer:
    """Settings from one source: internal key → value, and where each was set."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.where: dict[str, str] = {}
        self.warnings: list[ConfigWarning] = []
        self.sources: list[str] = []

    def set(self, key: str, value: object, where: str) -> None:
        self.values[key] = value
        self.where[key] = where

    def url(self, text: str, where: str) -> None:
        scheme, host, port, uri = _split_url(text, where)
        for key, value in (("scheme", scheme), ("host", host), ("port", port), ("uri", uri)):
            self.set(key, value, where)


def _split_url(text: str, where: str) -> tuple[str, str, int | None, str]:
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ShipConfigError(f"bad URL {show(text)} ({exc})", location=where) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ShipConfigError(
            f"bad URL {show(text)}: expected https://HOST[:PORT]/PATH, e.g. "
            "https://my-pipeline-abc123.us-east-1.osis.amazonaws.com/log/ingest",
            location=where,
        )
    if parts.username is not None or parts.fragment:
        raise ShipConfigError(
            f"bad URL {show(text)}: no user name, password or #fragment allowed",
            location=where,
        )
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return parts.scheme.lower(), host, port, uri


# --- the Fluent Bit reader ------------------------------------------------------------------------

_SECTION_RE = re.compile(r"\[\s*([A-Za-z][A-Za-z0-9_.-]*)\s*\]")
_COMMAND_RE = re.compile(r"@([A-Za-z_]+)(?:\s+(.*))?", re.S)
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


@dataclass(slots=True)
class _Entry:
    key: str
    value: str
    location: str


@dataclass(slots=True)
class _Section:
    kind: str
    location: str
    entries: list[_Entry] = field(default_factory=list)

    def plugin(self) -> str | None:
        names = [e.value.strip().lower() for e in self.entries if e.key.lower() == "name"]
        return names[-1] if names else None


class _FluentBitReader:
    def __init__(self, environ: Mapping[str, str], warnings: list[ConfigWarning]) -> None:
        self.environ = environ
        self.warnings = warnings
        self.variables: dict[str, str] = {}
        self.sections: list[_Section] = []
        self.files: list[str] = []
        self._stack: list[Path] = []

    def read_text(self, text: str, source: str, base_dir: Path) -> None:
        current: _Section | None = None
        for number, raw in enumerate(text.split("\n"), 1):
            location = f"{source}:{number}"
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indented = raw[0].isspace()
            if stripped.startswith("@"):
                if indented:
                    raise ShipConfigError(
                        "@SET and @INCLUDE must start at the beginning of a line, "
                        "outside sections: remove the indentation",
                        location=location,
                    )
                self._command(stripped, location, base_dir)
                current = None
                continue
            if stripped.startswith("["):
                match = _SECTION_RE.fullmatch(stripped)
                if match is None:
                    raise ShipConfigError(
                        f"malformed section header {show(stripped)}: write [SERVICE], [INPUT], "
                        "[FILTER] or [OUTPUT] alone on its line",
                        location=location,
                    )
                current = _Section(match.group(1), location)
                self.sections.append(current)
                continue
            if not indented:
                raise ShipConfigError(
                    f"{show(stripped)} is not indented: entries go under a section header "
                    "such as [INPUT], indented, as 'Key Value'",
                    location=location,
                )
            if current is None:
                raise ShipConfigError(
                    f"entry {show(stripped)} is outside any section: put it under a section "
                    "header such as [INPUT]",
                    location=location,
                )
            parts = stripped.split(None, 1)
            if len(parts) < 2:
                raise ShipConfigError(
                    f"key {show(parts[0])} has no value: write 'Key Value'", location=location
                )
            current.entries.append(
                _Entry(parts[0], self._expand(parts[1].strip(), location), location)
            )

    def _expand(self, value: str, location: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in self.variables:
                return self.variables[name]
            if name in self.environ:
                return self.environ[name]
            self.warnings.append(
                ConfigWarning(
                    f"variable ${{{name}}} is not set (no @SET, no environment variable): "
                    "replaced by an empty string",
                    location,
                )
            )
            return ""

        return _VARIABLE_RE.sub(replace, value)

    def _command(self, text: str, location: str, base_dir: Path) -> None:
        match = _COMMAND_RE.fullmatch(text)
        command = match.group(1).upper() if match else ""
        argument = (match.group(2) or "").strip() if match else ""
        if command == "SET":
            name, sep, value = argument.partition("=")
            if not sep or not _VARIABLE_NAME.fullmatch(name.strip()):
                raise ShipConfigError(
                    f"{show(text)}: write @SET NAME=VALUE (NAME: letters, digits, '_')",
                    location=location,
                )
            self.variables[name.strip()] = self._expand(value.strip(), location)
        elif command == "INCLUDE":
            if not argument:
                raise ShipConfigError("@INCLUDE needs a file name", location=location)
            self._include(self._expand(argument, location), location, base_dir)
        else:
            raise ShipConfigError(
                f"unknown command {show(text.split()[0])}: Fluent Bit knows @INCLUDE FILE "
                "and @SET NAME=VALUE",
                location=location,
            )

    def _include(self, name: str, location: str, base_dir: Path) -> None:
        path = Path(os.path.expanduser(name))
        if not path.is_absolute():
            path = base_dir / path
        if any(char in name for char in "*?["):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                self.warnings.append(
                    ConfigWarning(f"@INCLUDE {name}: the pattern matches no file", location)
                )
            for found in matches:
                self.read_file(Path(found), location)
        else:
            self.read_file(path, location)

    def read_file(self, path: Path, location: str | None) -> None:
        try:
            resolved = path.resolve()
            if resolved in self._stack:
                raise ShipConfigError(
                    f"@INCLUDE loop: {path} includes itself; remove the loop", location=location
                )
            if len(self._stack) >= _MAX_INCLUDE_DEPTH:
                raise ShipConfigError(
                    f"@INCLUDE nested more than {_MAX_INCLUDE_DEPTH} levels deep at {path}",
                    location=location,
                )
            if not stat.S_ISREG(resolved.stat().st_mode):
                raise ShipConfigError(
                    f"cannot include {path}: not a regular file", location=location
                )
            data = resolved.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ShipConfigError(
                f"cannot read {path}: {reason}: check the path", location=location
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ShipConfigError(
                f"{path} is not UTF-8 text: save it as UTF-8", location=location
            ) from None
        self.files.append(str(path))
        self._stack.append(resolved)
        try:
            self.read_text(text, str(path), resolved.parent)
        finally:
            self._stack.pop()


# --- mapping Fluent Bit sections ------------------------------------------------------------------

_REASON_BUFFER = "is not needed: lines are read from disk as they are shipped"
_REASON_PARSER = "is not applied: each line is shipped as is, in the log field"
_REASON_NONE = "has no equivalent in rolesanywhere ship"
_REASON_NET = "is not used: see the ship flags for timeouts and TLS"

_COMMON_IGNORED = {
    "alias": _REASON_NONE,
    "log_level": _REASON_NONE,
    "log_suppress_interval": _REASON_NONE,
    "routable": _REASON_NONE,
    "threaded": _REASON_NONE,
    "workers": _REASON_NONE,
    "mem_buf_limit": _REASON_BUFFER,
    "storage.type": _REASON_BUFFER,
    "storage.pause_on_chunks_overlimit": _REASON_BUFFER,
    "storage.total_limit_size": _REASON_BUFFER,
}

_TAIL_IGNORED = {
    "buffer_chunk_size": _REASON_BUFFER,
    "db.sync": _REASON_NONE,
    "db.locking": _REASON_NONE,
    "db.journal_mode": _REASON_NONE,
    "db.compare_filename": _REASON_NONE,
    "inotify_watcher": _REASON_NONE,
    "ignore_older": _REASON_NONE,
    "ignore_active_older_files": _REASON_NONE,
    "skip_empty_lines": "is not supported: empty lines are shipped",
    "offset_key": _REASON_NONE,
    "parser": _REASON_PARSER,
    "multiline": _REASON_PARSER,
    "multiline.parser": _REASON_PARSER,
    "multiline_flush": _REASON_PARSER,
    "parser_firstline": _REASON_PARSER,
    "docker_mode": _REASON_PARSER,
    "docker_mode_flush": _REASON_PARSER,
    "docker_mode_parser": _REASON_PARSER,
    "unicode.encoding": "is not supported: files must be UTF-8 (invalid bytes are replaced)",
    "generic.encoding": "is not supported: files must be UTF-8 (invalid bytes are replaced)",
    "file_cache_advise": _REASON_NONE,
    "exit_on_eof": _REASON_NONE,
}

_HTTP_IGNORED = {
    "http_user": "is not sent: requests are signed with SigV4 instead",
    "http_passwd": "is not sent: requests are signed with SigV4 instead",
    "proxy": "is not used: set HTTPS_PROXY in the environment instead",
    "header_tag": _REASON_NONE,
    "allow_duplicated_headers": _REASON_NONE,
    "log_response_payload": _REASON_NONE,
    "http_method": "is not used: records are always sent with POST",
    "body_key": _REASON_NONE,
    "headers_key": _REASON_NONE,
    "tls.debug": _REASON_NONE,
    "tls.vhost": _REASON_NONE,
    "tls.ca_path": "is not supported: use tls.ca_file (a PEM bundle)",
    "tls.crt_file": "is not supported: client certificates are not sent to the endpoint",
    "tls.key_file": "is not supported: client certificates are not sent to the endpoint",
    "tls.key_passwd": "is not supported: client certificates are not sent to the endpoint",
    "match_regex": "is not checked: every tailed line is shipped",
    "gelf_timestamp_key": _REASON_NONE,
    "gelf_host_key": _REASON_NONE,
    "gelf_short_message_key": _REASON_NONE,
    "gelf_full_message_key": _REASON_NONE,
    "gelf_level_key": _REASON_NONE,
}

_SERVICE_IGNORED = {
    "daemon": _REASON_NONE,
    "log_level": _REASON_NONE,
    "log_file": _REASON_NONE,
    "parsers_file": _REASON_PARSER,
    "plugins_file": _REASON_NONE,
    "streams_file": _REASON_NONE,
    "http_server": _REASON_NONE,
    "http_listen": _REASON_NONE,
    "http_port": _REASON_NONE,
    "health_check": _REASON_NONE,
    "hc_errors_count": _REASON_NONE,
    "hc_retry_failure_count": _REASON_NONE,
    "hc_period": _REASON_NONE,
    "hot_reload": _REASON_NONE,
    "coro_stack_size": _REASON_NONE,
    "scheduler.base": _REASON_NONE,
    "storage.sync": _REASON_NONE,
    "storage.checksum": _REASON_NONE,
    "storage.metrics": _REASON_NONE,
    "storage.backlog.mem_limit": _REASON_BUFFER,
    "storage.max_chunks_up": _REASON_BUFFER,
    "storage.delete_irrecoverable_chunks": _REASON_NONE,
}

_MULTI_KEYS = frozenset({"header", "record", "add", "set"})
_IGNORED_SECTIONS = frozenset(
    {"PARSER", "MULTILINE_PARSER", "PLUGINS", "UPSTREAM", "NODE", "CUSTOM", "STREAM_TASK"}
)
_FORMAT_ARRAY = frozenset({"json"})
_FORMAT_NDJSON = frozenset({"json_lines", "json_stream"})


class _Collect:
    """Values mapped from one section: internal key → (value, location)."""

    def __init__(self, label: str, warnings: list[ConfigWarning]) -> None:
        self.label = label
        self.values: dict[str, tuple[Any, str]] = {}
        self.warnings = warnings

    def put(self, key: str, value: object, entry: _Entry) -> None:
        self.values[key] = (value, entry.location)

    def warn(self, entry: _Entry, message: str) -> None:
        self.warnings.append(
            ConfigWarning(
                f"{self.label} key {entry.key!r} {message}",
                entry.location,
                self.label,
                entry.key,
            )
        )

    def what(self, entry: _Entry) -> str:
        return f"{self.label} {entry.key}"


_Handler = Callable[[_Entry, _Collect], None]


def _walk(
    section: _Section,
    collect: _Collect,
    handlers: Mapping[str, _Handler],
    ignored: Mapping[str, str],
) -> None:
    seen: dict[str, str] = {}
    for entry in section.entries:
        key = entry.key.lower()
        if key == "name":
            continue
        if key in seen and key not in _MULTI_KEYS:
            collect.warn(entry, f"is set again (first at {seen[key]}): this later value wins")
        seen.setdefault(key, entry.location)
        if key in handlers:
            handlers[key](entry, collect)
        elif key in ignored:
            collect.warn(entry, f"ignored: it {ignored[key]}")
        elif key in _COMMON_IGNORED:
            collect.warn(entry, f"ignored: it {_COMMON_IGNORED[key]}")
        elif key.startswith("net."):
            collect.warn(entry, f"ignored: it {_REASON_NET}")
        else:
            collect.warn(entry, "is unknown: ignored")


def _bool(entry: _Entry, collect: _Collect) -> bool:
    return parse_bool(entry.value, collect.what(entry))


def _wrap(fn: Callable[[_Entry, _Collect], None]) -> _Handler:
    """Run a handler; a value error gets the entry's ``file:line``."""

    def run(entry: _Entry, collect: _Collect) -> None:
        try:
            fn(entry, collect)
        except ShipConfigError as exc:
            if exc.location is not None:
                raise
            raise ShipConfigError(exc.problem, location=entry.location) from None

    return run


def _simple(key: str, convert: Callable[[_Entry, _Collect], object]) -> _Handler:
    return _wrap(lambda entry, collect: collect.put(key, convert(entry, collect), entry))


def _text(entry: _Entry, collect: _Collect) -> str:
    return entry.value.strip()


def _skip_long_lines(entry: _Entry, collect: _Collect) -> None:
    if _bool(entry, collect):
        collect.put("long_lines", "truncate", entry)
        collect.warn(
            entry,
            "On: Fluent Bit drops such lines; rolesanywhere ship never drops one silently: "
            "lines longer than Buffer_Max_Size are cut to that size and counted",
        )


def _db(entry: _Entry, collect: _Collect) -> None:
    directory = os.path.dirname(entry.value.strip()) or "."
    collect.put("state_dir", directory, entry)
    collect.warn(
        entry,
        f"maps to the state directory {directory}: rolesanywhere ship keeps its own positions "
        "there; the Fluent Bit database is not read, so files are read per Read_from_Head",
    )


_TAIL_HANDLERS: dict[str, _Handler] = {
    "path": _simple("paths", lambda e, c: _split_list(e.value)),
    "exclude_path": _simple("exclude_paths", lambda e, c: _split_list(e.value)),
    "read_from_head": _simple("read_from_head", _bool),
    "refresh_interval": _simple(
        "refresh_interval", lambda e, c: parse_duration(e.value, c.what(e))
    ),
    "rotate_wait": _simple("rotate_wait", lambda e, c: parse_duration(e.value, c.what(e))),
    "buffer_max_size": _simple("max_line_bytes", lambda e, c: parse_size(e.value, c.what(e))),
    "skip_long_lines": _wrap(_skip_long_lines),
    "db": _wrap(_db),
    "path_key": _simple("path_key", _text),
    "key": _simple("log_key", _text),
    "tag": _simple("tag", _text),
}


def _port(entry: _Entry, collect: _Collect) -> int:
    text = entry.value.strip()
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise ShipConfigError(f"{collect.what(entry)} must be a port number, not {show(text)}")
    return int(text)


def _tls(entry: _Entry, collect: _Collect) -> None:
    collect.put("scheme", "https" if _bool(entry, collect) else "http", entry)


def _format(entry: _Entry, collect: _Collect) -> None:
    value = entry.value.strip().lower()
    if value in _FORMAT_NDJSON:
        collect.warn(
            entry,
            f"{value}: OpenSearch Ingestion answers 400 to one JSON object per line; "
            "records are sent as one JSON array (Format json)",
        )
    elif value not in _FORMAT_ARRAY:
        raise ShipConfigError(
            f"{collect.what(entry)} {show(entry.value.strip())} is not supported: OpenSearch "
            "Ingestion takes one JSON array of records; write Format json"
        )


def _date_key(entry: _Entry, collect: _Collect) -> None:
    value = entry.value.strip()
    collect.put("date_key", None if value.lower() in ("false", "off") else value, entry)


def _date_format(entry: _Entry, collect: _Collect) -> None:
    value = entry.value.strip().lower()
    if value not in ("double", "epoch", "iso8601"):
        raise ShipConfigError(
            f"{collect.what(entry)} {show(entry.value.strip())} is not supported: use double, "
            "epoch or iso8601"
        )
    collect.put("date_format", value, entry)


def _compress(entry: _Entry, collect: _Collect) -> None:
    value = entry.value.strip().lower()
    if value not in ("gzip", "none", "off", "false"):
        raise ShipConfigError(
            f"{collect.what(entry)} {show(entry.value.strip())} is not supported: "
            "OpenSearch Ingestion decompresses gzip only; write compress gzip or remove it"
        )
    collect.put("compress", value == "gzip", entry)


def _aws_auth(entry: _Entry, collect: _Collect) -> None:
    if not _bool(entry, collect):
        raise ShipConfigError(
            f"{collect.what(entry)} is Off, but OpenSearch Ingestion needs SigV4 and "
            "rolesanywhere ship always signs: set aws_auth On (or remove it)"
        )
    collect.put("aws_auth", True, entry)


def _refuse_sts(entry: _Entry, collect: _Collect) -> None:
    raise ShipConfigError(
        f"{collect.what(entry)} (assuming another role through STS) is not supported: "
        "give the role to Roles Anywhere (--role-arn) or use an AWS profile (--aws-profile)"
    )


def _header(entry: _Entry, collect: _Collect) -> None:
    parts = entry.value.strip().split(None, 1)
    if len(parts) < 2:
        raise ShipConfigError(
            f"{collect.what(entry)} needs a name and a value: 'Header Name Value'"
        )
    previous = collect.values.get("headers", ([], ""))[0]
    collect.put("headers", [*previous, (parts[0], parts[1])], entry)


_HTTP_HANDLERS: dict[str, _Handler] = {
    "host": _simple("host", _text),
    "port": _simple("port", _port),
    "uri": _simple("uri", _text),
    "tls": _wrap(_tls),
    "tls.verify": _simple("tls_verify", _bool),
    "tls.ca_file": _simple("ca_bundle", _text),
    "format": _wrap(_format),
    "json_date_key": _wrap(_date_key),
    "json_date_format": _wrap(_date_format),
    "compress": _wrap(_compress),
    "aws_auth": _wrap(_aws_auth),
    "aws_region": _simple("region", _text),
    "aws_service": _simple("service", _text),
    "aws_profile": _simple("aws_profile", _text),
    "aws_role_arn": _wrap(_refuse_sts),
    "aws_external_id": _wrap(_refuse_sts),
    "aws_sts_endpoint": _wrap(_refuse_sts),
    "retry_limit": _simple("retry_limit", lambda e, c: _parse_retry_limit(e.value, c.what(e))),
    "header": _wrap(_header),
    "match": _simple("match", _text),
}

_SERVICE_HANDLERS: dict[str, _Handler] = {
    "flush": _simple("flush_interval", lambda e, c: parse_duration(e.value, c.what(e))),
    "storage.path": _simple("storage_path", _text),
    "scheduler.cap": _simple("max_backoff", lambda e, c: parse_duration(e.value, c.what(e))),
    "grace": _simple("stop_timeout", lambda e, c: parse_duration(e.value, c.what(e))),
}


def _record_field(entry: _Entry, collect: _Collect) -> None:
    parts = entry.value.strip().split(None, 1)
    if len(parts) < 2:
        raise ShipConfigError(f"{collect.what(entry)} needs a key and a value: 'Record key value'")
    previous = collect.values.get("fields", ({}, ""))[0]
    collect.put("fields", {**previous, parts[0]: parts[1]}, entry)


_FILTER_HANDLERS: dict[str, dict[str, _Handler]] = {
    "record_modifier": {"record": _wrap(_record_field), "match": lambda e, c: None},
    "modify": {
        "add": _wrap(_record_field),
        "set": _wrap(_record_field),
        "match": lambda e, c: None,
    },
}


def _map_fluent_bit(sections: Sequence[_Section], layer: _Layer) -> None:
    warnings = layer.warnings
    tails: list[_Collect] = []
    outputs: list[tuple[_Section, _Collect]] = []
    service = _Collect("[SERVICE]", warnings)
    filters: list[_Collect] = []
    for section in sections:
        kind = section.kind.upper()
        plugin = section.plugin()
        if kind == "SERVICE":
            _walk(section, service, _SERVICE_HANDLERS, _SERVICE_IGNORED)
        elif kind in ("INPUT", "OUTPUT", "FILTER") and plugin is None:
            raise ShipConfigError(
                f"[{kind}] section has no Name: add 'Name tail', 'Name http'...",
                location=section.location,
            )
        elif kind == "INPUT" and plugin == "tail":
            collect = _Collect("[INPUT] tail", warnings)
            _walk(section, collect, _TAIL_HANDLERS, _TAIL_IGNORED)
            tails.append(collect)
        elif kind == "OUTPUT" and plugin == "http":
            collect = _Collect("[OUTPUT] http", warnings)
            _walk(section, collect, _HTTP_HANDLERS, _HTTP_IGNORED)
            outputs.append((section, collect))
        elif kind == "FILTER" and plugin in _FILTER_HANDLERS:
            collect = _Collect(f"[FILTER] {plugin}", warnings)
            _walk(section, collect, _FILTER_HANDLERS[plugin], {})
            filters.append(collect)
        elif kind in ("INPUT", "OUTPUT", "FILTER"):
            what = {
                "INPUT": "only tail inputs are read",
                "OUTPUT": "rolesanywhere ship sends to one http (OpenSearch Ingestion) output",
                "FILTER": "records are shipped without it",
            }[kind]
            warnings.append(
                ConfigWarning(
                    f"[{kind}] {plugin} is not supported and is ignored: {what}",
                    section.location,
                    f"[{kind}] {plugin}",
                )
            )
        elif kind in _IGNORED_SECTIONS:
            reason = _REASON_PARSER if "PARSER" in kind else _REASON_NONE
            warnings.append(
                ConfigWarning(
                    f"[{kind}] section ignored: it {reason}",
                    section.location,
                    f"[{kind}]",
                )
            )
        else:
            warnings.append(
                ConfigWarning(
                    f"unknown section [{section.kind}] ignored", section.location, section.kind
                )
            )
    if len(outputs) > 1:
        places = ", ".join(section.location for section, _ in outputs)
        raise ShipConfigError(
            f"{len(outputs)} [OUTPUT] http sections ({places}): rolesanywhere ship sends to one "
            "endpoint; keep one",
            location=outputs[1][0].location,
        )
    _apply_tails(tails, layer)
    for key, (value, location) in service.values.items():
        if key == "storage_path":
            if "state_dir" not in layer.values:
                layer.set("state_dir", value, location)
        else:
            layer.set(key, value, location)
    fields: dict[str, str] = {}
    for collect in filters:
        if "fields" in collect.values:
            value, location = collect.values["fields"]
            fields.update(value)
            layer.set("fields", dict(fields), location)
    if outputs:
        section, collect = outputs[0]
        _apply_output(section, collect, layer)


def _apply_tails(tails: Sequence[_Collect], layer: _Layer) -> None:
    merged: dict[str, tuple[Any, str]] = {}
    for collect in tails:
        for key, (value, location) in collect.values.items():
            if key in ("paths", "exclude_paths"):
                before = merged.get(key, ((), location))[0]
                combined = tuple(dict.fromkeys((*before, *value)))
                merged[key] = (combined, merged.get(key, (None, location))[1])
            elif key in merged and merged[key][0] != value:
                raise ShipConfigError(
                    f"[INPUT] tail sections disagree on {key} ({show(merged[key][0])} at "
                    f"{merged[key][1]}, {show(value)} here): rolesanywhere ship follows all "
                    "paths with one setting; make them equal",
                    location=location,
                )
            else:
                merged[key] = (value, location)
    for key, (value, location) in merged.items():
        layer.set(key, value, location)


def _apply_output(section: _Section, collect: _Collect, layer: _Layer) -> None:
    values = dict(collect.values)
    match = values.pop("match", None)
    values.pop("aws_auth", None)
    if "aws_auth" not in collect.values:
        layer.warnings.append(
            ConfigWarning(
                "[OUTPUT] http has no aws_auth On: requests are signed with SigV4 anyway",
                section.location,
                "[OUTPUT] http",
                "aws_auth",
            )
        )
    tag = layer.values.get("tag")
    if match is None:
        layer.warnings.append(
            ConfigWarning(
                "[OUTPUT] http has no Match (Fluent Bit would route nothing to it): "
                "rolesanywhere ship sends every tailed line",
                section.location,
                "[OUTPUT] http",
                "Match",
            )
        )
    elif isinstance(tag, str) and "*" not in tag and not fnmatch.fnmatchcase(tag, match[0]):
        raise ShipConfigError(
            f"[OUTPUT] http Match {show(match[0])} does not match the tail input's Tag "
            f"{show(tag)}: Fluent Bit would ship nothing; fix Match (e.g. Match *)",
            location=match[1],
        )
    for key, (value, location) in values.items():
        layer.set(key, value, location)


def _fluent_bit_layer(
    text: str, source_name: str, base_dir: Path, environ: Mapping[str, str]
) -> _Layer:
    layer = _Layer()
    reader = _FluentBitReader(environ, layer.warnings)
    reader.read_text(text, source_name, base_dir)
    _map_fluent_bit(reader.sections, layer)
    layer.sources = [source_name, *reader.files]
    return layer


# --- TOML -----------------------------------------------------------------------------------------

_Convert = Callable[[Any, str], Any]


def _toml_type_error(where: str, expected: str, value: object) -> ShipConfigError:
    return ShipConfigError(f"must be {expected}, not {type(value).__name__}", location=where)


def _t_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _toml_type_error(where, "a string", value)
    return value


def _t_str_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _toml_type_error(where, "a string or a list of strings", value)
    return tuple(value)


def _t_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _toml_type_error(where, "true or false", value)
    return value


def _t_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _toml_type_error(where, "an integer", value)
    return value


def _t_duration(value: object, where: str) -> float:
    if isinstance(value, str):
        try:
            return parse_duration(value, "value")
        except ShipConfigError as exc:
            raise ShipConfigError(exc.problem, location=where) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _toml_type_error(where, 'seconds or a time such as "1m"', value)
    return float(value)


def _t_size(value: object, where: str) -> int:
    if isinstance(value, str):
        try:
            return parse_size(value, "value")
        except ShipConfigError as exc:
            raise ShipConfigError(exc.problem, location=where) from None
    return _t_int(value, where)


def _t_retry(value: object, where: str) -> int | None:
    if value is False:
        return None
    if isinstance(value, str):
        try:
            return _parse_retry_limit(value, "value")
        except ShipConfigError as exc:
            raise ShipConfigError(exc.problem, location=where) from None
    return _t_int(value, where)


def _t_compress(value: object, where: str) -> bool:
    if isinstance(value, str) and value.lower() in ("gzip", "none"):
        return value.lower() == "gzip"
    if not isinstance(value, bool):
        raise _toml_type_error(where, 'true, false, "gzip" or "none"', value)
    return value


def _t_date_key(value: object, where: str) -> str | None:
    if value is False:
        return None
    return _t_str(value, where)


def _t_headers(value: object, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _toml_type_error(where, "a table of strings", value)
    return list(value.items())


def _t_fields(value: object, where: str) -> dict[str, FieldValue]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) for v in value.values()
    ):
        raise _toml_type_error(where, "a table of strings, numbers or booleans", value)
    return dict(value)


_T_SETTING: dict[str, _Convert] = {
    "text": _t_str, "int": _t_int, "float": _t_duration, "switch": _t_bool, "negated": _t_bool
}  # fmt: skip
_TOML_SCHEMA: dict[str, dict[str, tuple[str, _Convert]]] = {
    "input": {
        "paths": ("paths", _t_str_list),
        "exclude_paths": ("exclude_paths", _t_str_list),
        "read_from_head": ("read_from_head", _t_bool),
        "refresh_interval": ("refresh_interval", _t_duration),
        "rotate_wait": ("rotate_wait", _t_duration),
        "max_line_bytes": ("max_line_bytes", _t_size),
        "long_lines": ("long_lines", _t_str),
        "tag": ("tag", _t_str),
    },
    "output": {
        "url": ("url", _t_str),
        "host": ("host", _t_str),
        "port": ("port", _t_int),
        "uri": ("uri", _t_str),
        "tls": ("tls", _t_bool),
        "region": ("region", _t_str),
        "service": ("service", _t_str),
        "compress": ("compress", _t_compress),
        "batch_bytes": ("batch_bytes", _t_size),
        "batch_events": ("batch_events", _t_int),
        "flush_interval": ("flush_interval", _t_duration),
        "retry_limit": ("retry_limit", _t_retry),
        "max_backoff": ("max_backoff", _t_duration),
        "timeout": ("request_timeout", _t_duration),
        "stop_timeout": ("stop_timeout", _t_duration),
        "tls_verify": ("tls_verify", _t_bool),
        "ca_bundle": ("ca_bundle", _t_str),
        "headers": ("headers", _t_headers),
    },
    "record": {
        "log_key": ("log_key", _t_str),
        "date_key": ("date_key", _t_date_key),
        "date_format": ("date_format", _t_str),
        "path_key": ("path_key", _t_str),
        "host_key": ("host_key", _t_str),
        "fields": ("fields", _t_fields),
    },
    "state": {
        "dir": ("state_dir", _t_str),
        "reset_positions": ("reset_positions", _t_str),
    },
    "credentials": {
        "aws_profile": ("aws_profile", _t_str),
        **{s.key: (f"id.{s.key}", _T_SETTING[s.kind]) for s in SETTINGS},
    },
}


def _toml_layer(text: str, source_name: str) -> _Layer:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ShipConfigError(
            f"not valid TOML ({' '.join(str(exc).split())}): fix the syntax",
            location=source_name,
        ) from None
    layer = _Layer()
    layer.sources = [source_name]
    for section, table in data.items():
        schema = _TOML_SCHEMA.get(section)
        if schema is None:
            raise ShipConfigError(
                f"unknown key {section!r}: expected the tables "
                f"{', '.join(f'[{name}]' for name in _TOML_SCHEMA)}",
                location=source_name,
            )
        if not isinstance(table, dict):
            raise ShipConfigError(f"{section!r} must be a table [{section}]", location=source_name)
        for key, value in table.items():
            where = f"{source_name}: {section}.{key}"
            if key not in schema:
                raise ShipConfigError(
                    f"unknown key {section}.{key}: expected one of {', '.join(schema)}",
                    location=source_name,
                )
            name, convert = schema[key]
            converted = convert(value, where)
            if name == "url":
                layer.url(converted, where)
            elif name == "tls":
                layer.set("scheme", "https" if converted else "http", where)
            else:
                layer.set(name, converted, where)
    output = data.get("output", {})
    if "url" in output and any(k in output for k in ("host", "port", "uri", "tls")):
        raise ShipConfigError(
            "output.url and output.host/port/uri/tls are both set: keep one form",
            location=source_name,
        )
    return layer


# --- format detection and files -------------------------------------------------------------------

_FB_COMMAND = re.compile(r"^@(?:INCLUDE|SET)\b", re.IGNORECASE | re.MULTILINE)
_FB_ENTRY = re.compile(r"^[ \t]+[^\s=#\[]+[ \t]+[^\s=]", re.MULTILINE)


def detect_format(path: str | os.PathLike[str], text: str) -> Literal["toml", "fluent-bit"]:
    """``.toml`` → TOML, ``.conf`` → Fluent Bit; otherwise TOML if it parses, else Fluent Bit
    when it has ``@INCLUDE``/``@SET`` or indented ``Key Value`` lines. YAML is refused."""
    import tomllib

    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix == ".conf":
        return "fluent-bit"
    if suffix in (".yaml", ".yml"):
        raise ShipConfigError(
            "Fluent Bit YAML configuration is not supported: use the classic .conf format or TOML",
            location=str(path),
        )
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        if _FB_COMMAND.search(text) or _FB_ENTRY.search(text):
            return "fluent-bit"
    return "toml"


def _read_config(path: str | os.PathLike[str]) -> str:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ShipConfigError(
            f"cannot read the configuration file {os.fspath(path)}: {reason}"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ShipConfigError(
            f"the configuration file {os.fspath(path)} is not UTF-8 text: save it as UTF-8"
        ) from None


def _file_layer(path: str | os.PathLike[str], environ: Mapping[str, str]) -> _Layer:
    text = _read_config(path)
    name = os.fspath(path)
    if detect_format(path, text) == "toml":
        return _toml_layer(text, name)
    return _fluent_bit_layer(text, name, Path(name).expanduser().resolve().parent, environ)


def from_fluent_bit(
    text: str,
    *,
    source_name: str = "<fluent-bit>",
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ShipConfig, list[ConfigWarning]]:
    """A :class:`ShipConfig` from a classic Fluent Bit configuration, and its warnings.

    ``source_name`` names the text in messages; ``@INCLUDE`` is relative to ``base_dir``
    (default: the directory of ``source_name``, or the working directory); ``environ``
    resolves ``${VAR}`` (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if base_dir is None:
        base = Path(source_name).parent if not source_name.startswith("<") else Path.cwd()
    else:
        base = Path(base_dir)
    config = _build([_fluent_bit_layer(text, source_name, base, env)], env)
    return config, list(config.warnings)


def from_toml(
    source: str | os.PathLike[str],
    *,
    source_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ShipConfig:
    """A :class:`ShipConfig` from TOML: ``source`` is the text (``str``) or a path (``Path``)."""
    env = os.environ if environ is None else environ
    if isinstance(source, str):
        text, name = source, source_name or "<toml>"
    else:
        text, name = _read_config(source), source_name or os.fspath(source)
    return _build([_toml_layer(text, name)], env)


def load_file(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> ShipConfig:
    """A :class:`ShipConfig` from a Fluent Bit or TOML file (see :func:`detect_format`)."""
    env = os.environ if environ is None else environ
    return _build([_file_layer(path, env)], env)


# --- flags ----------------------------------------------------------------------------------------


def add_ship_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``ship`` flags: files, endpoint, batching, state, and credentials (the
    ``credential-process`` identity flags, all optional here, or ``--aws-profile``).

    Every flag defaults to ``None`` ("not given"), so :func:`from_args` can let a flag
    override the config file only when it is given.
    """
    add = parser.add_argument
    add(
        "paths",
        nargs="*",
        metavar="PATH",
        help="log files to follow (globs, quote them); Fluent Bit tail Path",
    )
    add(
        "-c",
        "--config",
        metavar="FILE",
        help="a Fluent Bit .conf (tail input, http output) or a TOML file; flags override it",
    )
    files = parser.add_argument_group("files (Fluent Bit tail input)")
    files.add_argument(
        "--exclude-path",
        action="append",
        metavar="GLOB",
        help="do not follow files matching GLOB (repeatable); Exclude_Path",
    )
    files.add_argument(
        "--read-from-head",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read files present at the first start from their beginning (default: end)",
    )
    files.add_argument(
        "--refresh-interval", metavar="TIME", help="re-scan the globs every TIME (default 60s)"
    )
    files.add_argument(
        "--rotate-wait", metavar="TIME", help="follow a rotated file for TIME (default 5s)"
    )
    files.add_argument(
        "--max-line-size",
        metavar="SIZE",
        help="longest line shipped as one record (default 32KiB); Buffer_Max_Size",
    )
    files.add_argument(
        "--long-lines",
        choices=("split", "truncate"),
        help="longer lines are split into several records (default) or truncated",
    )
    files.add_argument("--state-dir", metavar="DIR", help="positions database directory")
    files.add_argument(
        "--reset-positions",
        choices=("head", "end"),
        help="when the positions database of a state dir used before is missing, empty or "
        "damaged: read the files again from their beginning (head: duplicates) or start at "
        "their end (end: lines written meanwhile are skipped); default: refuse to start",
    )
    out = parser.add_argument_group("endpoint (Fluent Bit http output)")
    out.add_argument(
        "--url", help="ingestion URL, e.g. https://PIPELINE-ID.REGION.osis.amazonaws.com/PATH"
    )
    out.add_argument("--host", help="ingestion host (https, port 443); Host")
    out.add_argument("--port", type=int, help="ingestion port; Port")
    out.add_argument("--uri", help="ingestion path, e.g. /log/ingest; URI")
    out.add_argument("--region", help="signing region (default: from the OSIS host name)")
    out.add_argument("--service", help="signing service (default osis)")
    out.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="gzip request bodies (the pipeline must set compression: gzip)",
    )
    out.add_argument("--batch-size", metavar="SIZE", help="request body limit (max 1MiB)")
    out.add_argument("--batch-events", type=int, metavar="N", help="records per request limit")
    out.add_argument(
        "--flush-interval", metavar="TIME", help="send a partial batch after TIME (default 1s)"
    )
    out.add_argument(
        "--retry-limit", metavar="N", help="retries per request, or 'unlimited' (default)"
    )
    out.add_argument("--max-backoff", metavar="TIME", help="longest pause between retries")
    out.add_argument("--request-timeout", metavar="TIME", help="time limit of one request")
    out.add_argument(
        "--stop-timeout",
        metavar="TIME",
        help="time from SIGTERM/SIGINT to exit (default 5s); undelivered lines: next run",
    )
    out.add_argument("--ca-bundle", metavar="FILE", help="CA bundle for the ingestion endpoint")
    rec = parser.add_argument_group("records")
    rec.add_argument("--path-key", metavar="NAME", help="add the file path as field NAME")
    rec.add_argument("--host-key", metavar="NAME", help="add the host name as field NAME")
    rec.add_argument(
        "--field",
        action="append",
        metavar="KEY=VALUE",
        help="add a fixed field to every record (repeatable)",
    )
    _add_credential_arguments(parser)


def _add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "credentials: an AWS profile, or a Roles Anywhere identity (credential-process flags)",
        "--no-verify-ssl applies to the ingestion endpoint too",
    )
    group.add_argument(
        "--aws-profile", metavar="NAME", help="use the credentials of AWS profile NAME"
    )
    add_flags(group, ship=True)
    add_unsupported_flags(group)


def _flags_layer(ns: argparse.Namespace) -> _Layer:
    layer = _Layer()

    def get(name: str) -> Any:
        return getattr(ns, name, None)

    flag = unsupported_flag(ns)
    if flag is not None:
        raise ShipConfigError(
            f"{flag} is not supported by this version: use --certificate and --private-key "
            "files, or an --aws-profile whose credential_process runs the official helper"
        )

    def parsed(dest: str, flag: str, key: str, parse: Callable[[str, str], object]) -> None:
        value = get(dest)
        if value is not None:
            layer.set(key, parse(str(value), flag), flag)

    def plain(dest: str, flag: str, key: str) -> None:
        value = get(dest)
        if value is not None:
            layer.set(key, value, flag)

    if get("paths"):
        layer.set("paths", tuple(get("paths")), "PATH arguments")
    if get("exclude_path"):
        layer.set("exclude_paths", tuple(get("exclude_path")), "--exclude-path")
    plain("read_from_head", "--read-from-head", "read_from_head")
    parsed("refresh_interval", "--refresh-interval", "refresh_interval", parse_duration)
    parsed("rotate_wait", "--rotate-wait", "rotate_wait", parse_duration)
    parsed("max_line_size", "--max-line-size", "max_line_bytes", parse_size)
    plain("long_lines", "--long-lines", "long_lines")
    plain("state_dir", "--state-dir", "state_dir")
    plain("reset_positions", "--reset-positions", "reset_positions")
    if get("url") is not None:
        if any(get(name) is not None for name in ("host", "port", "uri")):
            raise ShipConfigError("--url and --host/--port/--uri are both given: keep one form")
        layer.url(str(get("url")), "--url")
    plain("host", "--host", "host")
    plain("port", "--port", "port")
    plain("uri", "--uri", "uri")
    plain("region", "--region", "region")
    plain("service", "--service", "service")
    plain("gzip", "--gzip", "compress")
    parsed("batch_size", "--batch-size", "batch_bytes", parse_size)
    plain("batch_events", "--batch-events", "batch_events")
    parsed("flush_interval", "--flush-interval", "flush_interval", parse_duration)
    parsed("retry_limit", "--retry-limit", "retry_limit", _parse_retry_limit)
    parsed("max_backoff", "--max-backoff", "max_backoff", parse_duration)
    parsed("request_timeout", "--request-timeout", "request_timeout", parse_duration)
    parsed("stop_timeout", "--stop-timeout", "stop_timeout", parse_duration)
    plain("ca_bundle", "--ca-bundle", "ca_bundle")
    plain("path_key", "--path-key", "path_key")
    plain("host_key", "--host-key", "host_key")
    if get("field"):
        fields: dict[str, FieldValue] = {}
        for item in get("field"):
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise ShipConfigError(f"--field {show(item)}: write --field KEY=VALUE")
            fields[key.strip()] = value
        layer.set("fields", fields, "--field")
    plain("aws_profile", "--aws-profile", "aws_profile")
    identity = values_from_args(ns, ship=True)
    if identity.get("verify") is False:
        layer.set("tls_verify", False, "--no-verify-ssl")
    for setting in SETTINGS:
        if setting.name in identity:
            layer.set(f"id.{setting.key}", identity[setting.name], setting.flag_for(ship=True))
    return layer


def from_args(
    namespace: argparse.Namespace, *, environ: Mapping[str, str] | None = None
) -> ShipConfig:
    """The :class:`ShipConfig` of parsed ``ship`` flags: defaults < ``--config`` file < flags.

    The file's warnings are in :attr:`ShipConfig.warnings`.
    """
    env = os.environ if environ is None else environ
    layers: list[_Layer] = []
    config = getattr(namespace, "config", None)
    if config:
        layers.append(_file_layer(config, env))
    layers.append(_flags_layer(namespace))
    return _build(layers, env)


# --- merge and validate ---------------------------------------------------------------------------

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "authorization",
        "content-length",
        "content-encoding",
        "content-type",
        "transfer-encoding",
        "connection",
    }
)
_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


class _Merged:
    def __init__(self, layers: Iterable[_Layer]) -> None:
        self.values: dict[str, Any] = {}
        self.where: dict[str, str] = {}
        self.warnings: list[ConfigWarning] = []
        self.sources: list[str] = []
        for layer in layers:
            self._add(layer)

    def _add(self, layer: _Layer) -> None:
        keys = set(layer.values)
        if "aws_profile" in keys and keys & _ID_DEFINING:
            raise ShipConfigError(
                "both an AWS profile and a Roles Anywhere identity are given: keep one",
                location=layer.where["aws_profile"],
            )
        if "aws_profile" in keys:
            for key in [k for k in self.values if k.startswith("id.") and k != "id.verify_ssl"]:
                del self.values[key]
        if keys & _ID_DEFINING:
            self.values.pop("aws_profile", None)
        for key, value in layer.values.items():
            if key == "fields" and key in self.values:
                value = {**self.values[key], **value}
            elif key == "headers" and key in self.values:
                replaced = {name.lower() for name, _ in value}
                kept = [(n, v) for n, v in self.values[key] if n.lower() not in replaced]
                value = [*kept, *value]
            self.values[key] = value
            self.where[key] = layer.where[key]
        self.warnings.extend(layer.warnings)
        self.sources.extend(layer.sources)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def fail(self, key: str | None, message: str) -> ShipConfigError:
        return ShipConfigError(message, location=self.where.get(key) if key else None)


def _positive(merged: _Merged, key: str, default: float, what: str, *, zero: bool = False) -> float:
    value = float(merged.get(key, default))
    if not (value >= 0 if zero else value > 0) or value != value or value == float("inf"):
        raise merged.fail(
            key, f"{what} must be {'0 or more' if zero else 'positive'}, not {value:g}"
        )
    return value


def _build(layers: Sequence[_Layer], environ: Mapping[str, str]) -> ShipConfig:
    m = _Merged(layers)

    paths = tuple(m.get("paths", ()))
    if not paths or not all(isinstance(p, str) and p.strip() for p in paths):
        raise m.fail(
            "paths",
            "no log files to follow: give paths (rolesanywhere ship '/var/log/*.log') or "
            "Path in a [INPUT] tail section",
        )
    url = _build_url(m)
    region = _build_region(m)
    service = str(m.get("service", "osis")).strip()
    if not _SERVICE_NAME.fullmatch(service):
        raise m.fail("service", f"bad signing service {show(service)}: expected e.g. osis")

    max_line = int(m.get("max_line_bytes", DEFAULT_MAX_LINE_BYTES))
    batch = int(m.get("batch_bytes", MAX_BATCH_BYTES))
    if batch > MAX_BATCH_BYTES:
        raise m.fail(
            "batch_bytes",
            f"batch size {batch} bytes is over 1 MiB ({MAX_BATCH_BYTES} bytes): OpenSearch "
            "Ingestion's Data Prepper re-splits larger requests and silently drops chunks it "
            "fails to write while still answering 200; use 1MiB or less",
        )
    if batch < 4096:
        raise m.fail("batch_bytes", f"batch size {batch} bytes is too small: use at least 4KiB")
    if max_line < 1 or max_line > batch - 1024:
        raise m.fail(
            "max_line_bytes",
            f"max line size {max_line} bytes must be between 1 and the batch size minus "
            f"1 KiB ({batch - 1024}) so that every record fits in a request",
        )
    long_lines = m.get("long_lines", "split")
    if long_lines not in ("split", "truncate"):
        raise m.fail("long_lines", f"long_lines must be split or truncate, not {show(long_lines)}")
    batch_events = m.get("batch_events")
    if batch_events is not None and batch_events < 1:
        raise m.fail("batch_events", f"batch events must be 1 or more, not {batch_events}")
    retry_limit = m.get("retry_limit")
    if retry_limit is not None and retry_limit < 0:
        raise m.fail("retry_limit", f"retry limit must be 0 or more, not {retry_limit}")

    log_key, date_key, path_key, host_key, fields = _build_record(m)
    headers = _build_headers(m)
    identity, aws_profile = _build_credentials(m)
    ca_bundle = m.get("ca_bundle")
    state_dir = m.get("state_dir") or default_state_dir(environ)
    reset_positions = m.get("reset_positions")
    if reset_positions not in (None, "head", "end"):
        raise m.fail(
            "reset_positions", f"reset_positions must be head or end, not {show(reset_positions)}"
        )
    return ShipConfig(
        paths=tuple(p.strip() for p in paths),
        url=url,
        region=region,
        exclude_paths=tuple(m.get("exclude_paths", ())),
        read_from_head=bool(m.get("read_from_head", False)),
        refresh_interval=_positive(m, "refresh_interval", 60.0, "refresh interval"),
        rotate_wait=_positive(m, "rotate_wait", 5.0, "rotate wait", zero=True),
        max_line_bytes=max_line,
        long_lines=long_lines,
        tag=m.get("tag"),
        service=service,
        compress=bool(m.get("compress", False)),
        batch_bytes=batch,
        batch_events=batch_events,
        flush_interval=_positive(m, "flush_interval", 1.0, "flush interval"),
        retry_limit=retry_limit,
        max_backoff=_positive(m, "max_backoff", 60.0, "max backoff"),
        request_timeout=_positive(m, "request_timeout", 30.0, "request timeout"),
        stop_timeout=_positive(m, "stop_timeout", 5.0, "stop timeout", zero=True),
        tls_verify=bool(m.get("tls_verify", True)),
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        headers=headers,
        log_key=log_key,
        date_key=date_key,
        date_format=_build_date_format(m),
        path_key=path_key,
        host_key=host_key,
        fields=fields,
        state_dir=str(state_dir),
        reset_positions=reset_positions,
        identity=identity,
        aws_profile=aws_profile,
        warnings=tuple(m.warnings),
        sources=tuple(dict.fromkeys(m.sources)),
    )


def _build_url(m: _Merged) -> str:
    host = str(m.get("host") or "").strip()
    if not host:
        raise m.fail(
            "host",
            "no ingestion endpoint: pass --url https://PIPELINE-ID.REGION.osis.amazonaws.com/"
            "PATH (or --host), or set Host in the [OUTPUT] http section",
        )
    bracketed = host.startswith("[") and host.endswith("]")
    if (
        any(ch.isspace() or ch in "/@?#" for ch in host)
        or (":" in host and not bracketed)
        or "://" in host
    ):
        raise m.fail(
            "host",
            f"bad host {show(host)}: give the host name only (the port and path are separate "
            "settings), or use --url",
        )
    scheme = m.get("scheme", "https")
    port = m.get("port")
    default_port = 443 if scheme == "https" else 80
    if port is not None and not 0 < int(port) < 65536:
        raise m.fail("port", f"port must be 1-65535, not {port}")
    uri = str(m.get("uri") or "/").strip()
    if not uri.startswith("/") or any(ch.isspace() for ch in uri):
        raise m.fail("uri", f"bad URI {show(uri)}: it must start with '/', e.g. /log/ingest")
    shown_port = "" if port is None or int(port) == default_port else f":{int(port)}"
    return f"{scheme}://{host}{shown_port}{uri}"


def _build_region(m: _Merged) -> str:
    host = str(m.get("host") or "")
    inferred = region_from_osis_host(host)
    region = m.get("region")
    if region:
        region = str(region).strip()
        try:
            partition_for_region(region)
        except InvalidParameterError:
            raise m.fail(
                "region", f"region {show(region)} is not an AWS region: use e.g. us-east-1"
            ) from None
        if inferred is not None and inferred != region:
            raise m.fail(
                "region",
                f"region {region} does not match the host {host} (region {inferred}): "
                "requests would be refused; fix the region or the host",
            )
        return str(region)
    if inferred is None:
        raise m.fail(
            "host",
            f"no signing region: the host {host} does not name one (it is not "
            "PIPELINE-ID.REGION.osis.amazonaws.com); pass --region or set aws_region",
        )
    return inferred


def _build_date_format(m: _Merged) -> DateFormat:
    value = m.get("date_format", "double")
    if value == "double":
        return "double"
    if value == "epoch":
        return "epoch"
    if value == "iso8601":
        return "iso8601"
    raise m.fail("date_format", f"date format must be double, epoch or iso8601, not {show(value)}")


def _build_record(
    m: _Merged,
) -> tuple[str, str | None, str | None, str | None, tuple[tuple[str, FieldValue], ...]]:
    log_key = str(m.get("log_key", "log"))
    date_key = m.get("date_key", "date")
    path_key = m.get("path_key")
    host_key = m.get("host_key")
    fields: dict[str, FieldValue] = dict(m.get("fields", {}))
    used: dict[str, str] = {}
    for key, name in (
        ("log_key", log_key),
        ("date_key", date_key),
        ("path_key", path_key),
        ("host_key", host_key),
        *(("fields", k) for k in fields),
    ):
        if name is None:
            continue
        if not isinstance(name, str) or not name.strip():
            raise m.fail(key, f"{key} must be a non-empty field name")
        if name in used:
            raise m.fail(
                key, f"record field {name!r} is used twice ({used[name]} and {key}): rename one"
            )
        used[name] = key
    return log_key, date_key, path_key, host_key, tuple(fields.items())


def _build_headers(m: _Merged) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = list(m.get("headers", []))
    for name, value in headers:
        lower = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            raise m.fail("headers", f"bad header name {show(name)}")
        if lower in _RESERVED_HEADERS or lower.startswith("x-amz-"):
            raise m.fail(
                "headers",
                f"header {name} is set by rolesanywhere ship itself (signing, body): remove it",
            )
        if any(ch in value for ch in "\r\n\x00"):
            raise m.fail("headers", f"the value of header {name} holds a line break")
    return tuple(headers)


def _build_credentials(m: _Merged) -> tuple[IdentitySettings | None, str | None]:
    ids = {k[3:]: v for k, v in m.values.items() if k.startswith("id.")}
    aws_profile = m.get("aws_profile")
    if aws_profile is not None:
        aws_profile = str(aws_profile).strip()
        if not aws_profile:
            raise m.fail("aws_profile", "the AWS profile name is empty")
        for name in sorted(ids):
            if name != "verify_ssl":
                m.warnings.append(
                    ConfigWarning(
                        f"Roles Anywhere setting {name} ignored: credentials come from AWS "
                        f"profile {aws_profile!r}",
                        m.where.get(f"id.{name}"),
                        key=name,
                    )
                )
        return None, aws_profile
    if not set(ids) - {"verify_ssl"}:
        return None, None
    missing = [
        f"{s.key} ({s.flag_for(ship=True)})"
        for s in SETTINGS
        if (s.required or s.name == "certificate") and not ids.get(s.key)
    ]
    first = next(k for k in m.values if k.startswith("id.") and k != "id.verify_ssl")
    if missing:
        raise m.fail(
            first,
            f"the Roles Anywhere identity is incomplete: missing {', '.join(missing)}; "
            "give them, or use --aws-profile",
        )
    try:
        identity = IdentitySettings.from_keys(ids)
        identity.validate()
    except ShipConfigError:
        raise
    except InvalidParameterError as exc:
        message = exc.naming(flag_namer(ship=True))
        raise m.fail(first, " ".join(message.split())) from None
    return identity, None
