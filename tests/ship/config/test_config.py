"""ShipConfig from Fluent Bit classic files, TOML and flags: shared helpers, and the values,
merge and validation (rolesanywhere.ship.config.units, .merge, .model).

The readers are tested in test_shipconfig_fluentbit, test_shipconfig_toml and
test_shipconfig_flags."""

from __future__ import annotations

import argparse
import textwrap

import pytest

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.ship.config.flags import add_ship_arguments, from_args
from rolesanywhere.ship.config.load import from_fluent_bit, from_toml
from rolesanywhere.ship.config.model import ConfigWarning, ShipConfig
from rolesanywhere.ship.config.units import parse_bool, parse_duration, parse_size
from rolesanywhere.ship.shipperconfig import MAX_BATCH_BYTES

HOST = "my-pipeline-abc123def456.us-east-1.osis.amazonaws.com"
ENV = {"HOME": "/home/shipper"}

# Modelled on the blog post's fluent-bit.conf (tail input, http output with aws_auth), plus
# every key this module maps.
BLOG = f"""\
[SERVICE]
    Flush        1
    Log_Level    info
    storage.path /var/lib/ignored-because-db-wins

[INPUT]
    Name              tail
    Tag               app.logs
    Path              /var/log/*.log, /var/log/app/*.log
    Exclude_Path      *.gz,*.zip
    Read_from_Head    true
    Refresh_Interval  10
    Rotate_Wait       30
    Buffer_Max_Size   64k
    DB                /var/lib/fluent-bit/tail.db
    Path_Key          filename
    Key               message

[OUTPUT]
    Name              http
    Match             app.*
    Host              {HOST}
    Port              443
    URI               /test-ingestion-path
    Format            json
    json_date_key     timestamp
    json_date_format  iso8601
    compress          gzip
    aws_auth          true
    aws_region        us-east-1
    aws_service       osis
    aws_profile       ingest
    tls               On
    tls.verify        On
    tls.ca_file       /etc/ssl/ca.pem
    Retry_Limit       5
    Header            X-Team ops
    Header            X-Env prod
"""


def fb(text: str, **kwargs: object) -> tuple[ShipConfig, list[ConfigWarning]]:
    kwargs.setdefault("environ", ENV)
    kwargs.setdefault("source_name", "fluent-bit.conf")
    return from_fluent_bit(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def minimal(output: str = "", service: str = "", tail: str = "") -> str:
    return (
        f"[SERVICE]\n    Flush 1\n{service}"
        f"[INPUT]\n    Name tail\n    Path /var/log/*.log\n{tail}"
        f"[OUTPUT]\n    Name http\n    Match *\n    Host {HOST}\n    aws_auth On\n{output}"
    )


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def keys_warned(warnings: list[ConfigWarning]) -> set[str | None]:
    return {w.key for w in warnings}


ARNS = {
    "trust_anchor_arn": "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/"
    "0a1b2c3d-1111-2222-3333-444455556666",
    "profile_arn": "arn:aws:rolesanywhere:us-east-1:111122223333:profile/"
    "0a1b2c3d-1111-2222-3333-444455557777",
    "role_arn": "arn:aws:iam::111122223333:role/ingest",
}


def ship_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rolesanywhere ship")
    add_ship_arguments(parser)
    return parser


# --- values -------------------------------------------------------------------------------------


def test_value_parsers() -> None:
    assert parse_size("32k") == 32000
    assert parse_size("32KB") == 32000
    assert parse_size("32KiB") == 32768
    assert parse_size("1.5M") == 1_500_000
    assert parse_size("1MiB") == MAX_BATCH_BYTES
    assert parse_size(" 512 ") == 512
    assert parse_duration("5") == 5.0
    assert parse_duration("5s") == 5.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1m") == 60.0
    assert parse_duration("1.5h") == 5400.0
    for word, value in (("On", True), ("off", False), ("TRUE", True), ("no", False)):
        assert parse_bool(word) is value
    for bad in ("", "k", "1x", "-1", "1e3", "٣"):
        with pytest.raises(ShipConfigError):
            parse_size(bad)
    with pytest.raises(ShipConfigError):
        parse_duration("1y")
    with pytest.raises(ShipConfigError):
        parse_bool("1")


def test_region_inference() -> None:
    config, _ = fb(minimal().replace("us-east-1", "eu-central-1"))
    assert config.region == "eu-central-1"


def test_region_errors() -> None:
    with pytest.raises(ShipConfigError, match="does not match the host"):
        fb(minimal("    aws_region us-west-2\n"))
    custom = minimal().replace(HOST, "ingest.example.com")
    with pytest.raises(ShipConfigError) as info:
        fb(custom)
    assert "no signing region" in one_line(info.value)
    assert "--region" in str(info.value)
    config, _ = fb(custom + "    aws_region eu-west-3\n")
    assert config.region == "eu-west-3"
    with pytest.raises(ShipConfigError, match="not an AWS region"):
        fb(custom + "    aws_region mars-1\n")


def test_batch_size_over_one_mib_is_refused() -> None:
    toml = f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/"\nbatch_bytes = "2MiB"\n'
    with pytest.raises(ShipConfigError) as info:
        from_toml(toml, source_name="ship.toml", environ=ENV)
    message = one_line(info.value)
    assert message.startswith("ship.toml: output.batch_bytes: batch size 2097152 bytes")
    assert "silently drops" in message
    config = from_toml(toml.replace("2MiB", "1MiB"), environ=ENV)
    assert config.batch_bytes == MAX_BATCH_BYTES
    parser = ship_parser()
    with pytest.raises(ShipConfigError, match=r"--batch-size: .*over 1 MiB"):
        from_args(
            parser.parse_args(["/x", "--url", f"https://{HOST}/", "--batch-size", "1048577"]),
            environ=ENV,
        )


def test_max_line_must_fit_in_a_batch() -> None:
    toml = f'[input]\npaths = ["/x"]\nmax_line_bytes = "1MiB"\n[output]\nurl = "https://{HOST}/"\n'
    with pytest.raises(ShipConfigError, match=r"input\.max_line_bytes: max line size"):
        from_toml(toml, source_name="ship.toml", environ=ENV)


def test_record_field_collisions() -> None:
    toml = (
        f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/"\n[record]\npath_key = "log"\n'
    )
    with pytest.raises(ShipConfigError, match="record field 'log' is used twice"):
        from_toml(toml, environ=ENV)
