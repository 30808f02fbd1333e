"""The TOML format of ``rolesanywhere ship``: its schema and reader (the writer is
:meth:`ShipConfig.to_toml <rolesanywhere.ship.config.model.ShipConfig.to_toml>`).

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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.profiles.settings import SETTINGS
from rolesanywhere.ship.config.merge import Layer
from rolesanywhere.ship.config.model import FieldValue
from rolesanywhere.ship.config.units import parse_duration, parse_retry_limit, parse_size

__all__ = [
    "toml_layer",
]

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
            return parse_retry_limit(value, "value")
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


def toml_layer(text: str, source_name: str) -> Layer:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ShipConfigError(
            f"not valid TOML ({' '.join(str(exc).split())}): fix the syntax",
            location=source_name,
        ) from None
    layer = Layer()
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
