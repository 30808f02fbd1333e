"""ShipConfig in TOML (rolesanywhere.ship.config.toml, model.ShipConfig.to_toml) and from files
(.load)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.profiles.settings import IdentitySettings
from rolesanywhere.ship.config.load import detect_format, from_toml
from tests.ship.config.test_config import (
    ARNS,
    BLOG,
    ENV,
    HOST,
    fb,
    one_line,
)

# --- TOML ---------------------------------------------------------------------------------------


def test_toml_round_trip_of_the_blog_config() -> None:
    config, _ = fb(BLOG)
    text = config.to_toml()
    again = from_toml(text, environ=ENV)
    assert again == config
    assert again.to_toml() == text


def test_toml_round_trip_with_identity_and_every_field() -> None:
    config = from_toml(
        textwrap.dedent(
            f"""
            [input]
            paths = "/var/log/app.log"
            exclude_paths = ["*.1"]
            read_from_head = true
            refresh_interval = "2m"
            rotate_wait = 0
            max_line_bytes = 100000
            long_lines = "truncate"
            tag = "app"

            [output]
            host = "ingest.example.com"
            port = 8443
            uri = "/log/ingest?x=1"
            tls = true
            region = "eu-west-1"
            compress = "gzip"
            batch_bytes = 500000
            batch_events = 100
            flush_interval = 0.5
            retry_limit = 3
            max_backoff = "30s"
            timeout = 10
            tls_verify = false
            ca_bundle = "/ca.pem"
            headers = {{ "X-Team" = "ops", "X-Quote" = "a \\"b\\" \\u007f" }}

            [record]
            log_key = "line"
            date_key = false
            date_format = "epoch"
            path_key = "file"
            host_key = "host"
            fields = {{ env = "prod", shard = 3, ratio = 0.5, canary = false, "odd key" = "x" }}

            [state]
            dir = "/var/lib/ship"

            [credentials]
            certificate = "/pki/client.pem"
            private_key = "/pki/client.key"
            trust_anchor_arn = "{ARNS["trust_anchor_arn"]}"
            profile_arn = "{ARNS["profile_arn"]}"
            role_arn = "{ARNS["role_arn"]}"
            session_duration = 900
            role_session_name = "shipper"
            endpoint = "https://rolesanywhere.example.com"
            with_proxy = true
            pkcs8_password = "pw-123"
            """
        ),
        environ=ENV,
    )
    assert config.url == "https://ingest.example.com:8443/log/ingest?x=1"
    assert config.date_key is None
    assert config.fields == (
        ("env", "prod"),
        ("shard", 3),
        ("ratio", 0.5),
        ("canary", False),
        ("odd key", "x"),
    )
    assert config.headers[1] == ("X-Quote", 'a "b" \x7f')
    assert config.refresh_interval == 120.0 and config.rotate_wait == 0.0
    assert isinstance(config.identity, IdentitySettings)
    assert config.identity.duration_seconds == 900
    assert config.identity.password == "pw-123"
    text = config.to_toml()
    assert "pw-123" not in text
    again = from_toml(text, environ=ENV)
    assert again.identity is not None and again.identity.password is None
    assert from_toml(config.to_toml(include_secrets=True), environ=ENV) == config


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[input]\npahts = []\n", "ship.toml: unknown key input.pahts: expected one of paths"),
        ("[outptu]\n", "ship.toml: unknown key 'outptu'"),
        ("[output]\nport = '443'\n", "ship.toml: output.port: must be an integer, not str"),
        ("[input]\nread_from_head = 'yes'\n", "ship.toml: input.read_from_head: must be true"),
        ("input = 3\n", "'input' must be a table"),
        ("[output]\nurl = 'https://x/'\nhost = 'y'\n", "keep one form"),
        ("[output]\nurl = 'ftp://x/'\n", "ship.toml: output.url: bad URL"),
        ("[input\n", "ship.toml: not valid TOML"),
        ("[record]\nfields = { a = [1] }\n", "record.fields: must be a table of strings"),
        ("[input]\nrotate_wait = 'later'\n", "ship.toml: input.rotate_wait: value must be a time"),
        ("[output]\nretry_limit = 'often'\n", "ship.toml: output.retry_limit: value must be"),
    ],
)
def test_toml_errors_name_the_key(toml: str, expected: str) -> None:
    with pytest.raises(ShipConfigError) as info:
        from_toml(toml, source_name="ship.toml", environ=ENV)
    message = one_line(info.value)
    assert expected in message


def test_toml_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "ship.toml"
    path.write_text(f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/p"\n')
    config = from_toml(path, environ=ENV)
    assert config.url == f"https://{HOST}/p"
    assert config.sources == (str(path),)


# --- format detection ---------------------------------------------------------------------------


def test_detect_format() -> None:
    assert detect_format("x.toml", "whatever") == "toml"
    assert detect_format("x.conf", "[input]\npaths = []\n") == "fluent-bit"
    assert detect_format("ship", "[input]\npaths = ['/x']\n") == "toml"
    assert detect_format("ship", "[INPUT]\n    Name tail\n") == "fluent-bit"
    assert detect_format("ship", "@INCLUDE other\n") == "fluent-bit"
    assert detect_format("ship", "[input\n") == "toml"  # reported as a TOML error
    with pytest.raises(ShipConfigError, match="YAML"):
        detect_format("fluent-bit.yaml", "")
