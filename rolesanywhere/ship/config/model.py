"""The configuration of ``rolesanywhere ship``: :class:`ShipConfig`, its problems
(:class:`ShipConfigError`, :class:`ConfigWarning`) and its TOML form
(:meth:`ShipConfig.to_toml`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from rolesanywhere.profiles.awsconfig import (
    CredentialProvider,
    credential_source_for_identity,
    credential_source_for_profile,
)
from rolesanywhere.profiles.settings import SETTINGS, IdentitySettings
from rolesanywhere.ship.shipperconfig import MAX_BATCH_BYTES

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "ConfigWarning",
    "DateFormat",
    "FieldValue",
    "LongLines",
    "ResetPositions",
    "ShipConfig",
]

DEFAULT_MAX_LINE_BYTES = 32 * 1024

LongLines = Literal["split", "truncate"]
DateFormat = Literal["double", "epoch", "iso8601"]
ResetPositions = Literal["head", "end"]
FieldValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something read but not used as written (``str()``: ``location: message``)."""

    message: str
    location: str | None = None
    section: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


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
