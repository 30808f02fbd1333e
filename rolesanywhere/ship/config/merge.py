"""Merging the sources of a ``rolesanywhere ship`` configuration, and validating the result.

A :class:`Layer` holds what one source (a Fluent Bit or TOML file, the flags) says; :func:`build`
merges layers, later ones winning (defaults < config file < flags), into a validated
:class:`~rolesanywhere.ship.config.model.ShipConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from rolesanywhere.auth.sigv4auth import region_from_host
from rolesanywhere.errors import InvalidParameterError, ShipConfigError
from rolesanywhere.profiles.settings import SETTINGS, IdentitySettings, flag_namer
from rolesanywhere.session.endpoints import partition_for_region, show
from rolesanywhere.ship.config.model import (
    DEFAULT_MAX_LINE_BYTES,
    ConfigWarning,
    DateFormat,
    FieldValue,
    ShipConfig,
)
from rolesanywhere.ship.shipperconfig import MAX_BATCH_BYTES
from rolesanywhere.ship.statedir import default_state_dir

__all__ = [
    "Layer",
    "build",
]

# --- layers: what one source says -----------------------------------------------------------------

#: Keys that choose a Roles Anywhere identity (over an AWS profile of a lower layer).
_ID_DEFINING = frozenset(
    f"id.{s.key}" for s in SETTINGS if s.required or s.name in ("certificate", "private_key")
)


class Layer:
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
    def __init__(self, layers: Iterable[Layer]) -> None:
        self.values: dict[str, Any] = {}
        self.where: dict[str, str] = {}
        self.warnings: list[ConfigWarning] = []
        self.sources: list[str] = []
        for layer in layers:
            self._add(layer)

    def _add(self, layer: Layer) -> None:
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


def build(layers: Sequence[Layer], environ: Mapping[str, str]) -> ShipConfig:
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
    inferred = region_from_host(host)
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
