"""ShipConfig from the flags of rolesanywhere ship (rolesanywhere.ship.config.flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.ship.config.flags import from_args
from rolesanywhere.ship.config.load import from_toml
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from tests.ship.config.test_config import (
    ARNS,
    BLOG,
    ENV,
    HOST,
    fb,
    keys_warned,
    minimal,
    one_line,
    ship_parser,
)

# --- flags --------------------------------------------------------------------------------------


def test_flags_override_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "fluent-bit.conf"
    conf.write_text(BLOG)
    args = ship_parser().parse_args(
        [
            "-c", str(conf),
            "/srv/app/*.log",
            "--no-read-from-head",
            "--refresh-interval", "1m",
            "--uri", "/log/ingest",
            "--no-gzip",
            "--batch-size", "512KiB",
            "--batch-events", "200",
            "--flush-interval", "250ms",
            "--retry-limit", "unlimited",
            "--state-dir", str(tmp_path / "state"),
            "--field", "env=staging",
            "--host-key", "host",
        ]
    )  # fmt: skip
    config = from_args(args, environ=ENV)
    assert config.paths == ("/srv/app/*.log",)
    assert config.exclude_paths == ("*.gz", "*.zip")  # from the file
    assert config.read_from_head is False
    assert config.refresh_interval == 60.0
    assert config.url == f"https://{HOST}/log/ingest"  # host and scheme from the file
    assert config.compress is False
    assert config.batch_bytes == 512 * 1024
    assert config.batch_events == 200
    assert config.flush_interval == 0.25
    assert config.retry_limit is None
    assert config.state_dir == str(tmp_path / "state")
    assert config.fields == (("env", "staging"),)
    assert config.host_key == "host"
    assert config.aws_profile == "ingest"
    assert config.date_format == "iso8601"  # untouched file values stay
    assert keys_warned(list(config.warnings)) == {"Log_Level", "DB"}


def test_flags_alone_and_url_parts() -> None:
    parser = ship_parser()
    config = from_args(
        parser.parse_args(
            ["/var/log/*.log", "--url", f"http://{HOST}:8080/in", "--region", "us-east-1"]
        ),
        environ=ENV,
    )
    assert config.url == f"http://{HOST}:8080/in"
    config = from_args(parser.parse_args(["/x", "--host", HOST, "--port", "443"]), environ=ENV)
    assert config.url == f"https://{HOST}/"
    with pytest.raises(ShipConfigError, match="keep one form"):
        from_args(parser.parse_args(["/x", "--url", f"https://{HOST}/", "--host", HOST]))
    with pytest.raises(ShipConfigError, match="no log files to follow"):
        from_args(parser.parse_args(["--host", HOST]), environ=ENV)
    with pytest.raises(ShipConfigError, match="no ingestion endpoint"):
        from_args(parser.parse_args(["/x"]), environ=ENV)
    with pytest.raises(ShipConfigError, match=r"--host: bad host"):
        from_args(parser.parse_args(["/x", "--host", f"{HOST}:443"]), environ=ENV)


def test_flag_identity_replaces_the_file_profile(tmp_path: Path) -> None:
    conf = tmp_path / "fluent-bit.conf"
    conf.write_text(BLOG)
    args = ship_parser().parse_args(
        ["-c", str(conf), "--certificate", "/c.pem", "--trust-anchor-arn", ARNS["trust_anchor_arn"],
         "--profile-arn", ARNS["profile_arn"], "--role-arn", ARNS["role_arn"],
         "--rolesanywhere-region", "us-east-1", "--session-duration", "1800"]
    )  # fmt: skip
    config = from_args(args, environ=ENV)
    assert config.aws_profile is None
    assert config.identity is not None
    assert config.identity.certificate == "/c.pem"
    assert config.identity.region == "us-east-1"
    assert config.identity.duration_seconds == 1800


def test_flag_profile_replaces_the_file_identity(tmp_path: Path) -> None:
    toml = tmp_path / "ship.toml"
    toml.write_text(
        f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/"\n[credentials]\n'
        + "".join(f'{k} = "{v}"\n' for k, v in ARNS.items())
        + 'certificate = "/c.pem"\n'
    )
    config = from_args(
        ship_parser().parse_args(["-c", str(toml), "--aws-profile", "p"]), environ=ENV
    )
    assert config.identity is None and config.aws_profile == "p"
    assert config.warnings == ()


def test_identity_problems() -> None:
    parser = ship_parser()
    base = ["/x", "--host", HOST]
    with pytest.raises(ShipConfigError) as info:
        from_args(parser.parse_args([*base, "--certificate", "/c.pem"]), environ=ENV)
    message = one_line(info.value)
    assert "--certificate: the Roles Anywhere identity is incomplete" in message
    assert "trust_anchor_arn (--trust-anchor-arn)" in message
    with pytest.raises(ShipConfigError) as info:
        from_args(
            parser.parse_args(
                [*base, "--certificate", "/c.pem", "--trust-anchor-arn", "bad",
                 "--profile-arn", ARNS["profile_arn"], "--role-arn", ARNS["role_arn"]]
            ),
            environ=ENV,
        )  # fmt: skip
    assert "--trust-anchor-arn is not a" in one_line(info.value)
    with pytest.raises(ShipConfigError, match="is not supported by this version"):
        from_args(parser.parse_args([*base, "--cert-selector", "{}"]), environ=ENV)
    with pytest.raises(ShipConfigError, match="both an AWS profile and a Roles Anywhere"):
        from_args(parser.parse_args([*base, "--aws-profile", "p", "--certificate", "/c"]))
    config = from_args(
        parser.parse_args([*base, "--aws-profile", "p", "--session-duration", "900"]),
        environ=ENV,
    )
    assert [w.key for w in config.warnings] == ["session_duration"]


def test_no_verify_ssl_applies_to_both_endpoints() -> None:
    args = ship_parser().parse_args(
        ["/x", "--host", HOST, "--no-verify-ssl", "--certificate", "/c.pem",
         "--trust-anchor-arn", ARNS["trust_anchor_arn"], "--profile-arn", ARNS["profile_arn"],
         "--role-arn", ARNS["role_arn"]]
    )  # fmt: skip
    config = from_args(args, environ=ENV)
    assert config.tls_verify is False
    assert config.identity is not None and config.identity.verify is False
    profile_only = from_args(
        ship_parser().parse_args(["/x", "--host", HOST, "--no-verify-ssl"]), environ=ENV
    )
    assert profile_only.tls_verify is False and profile_only.identity is None


def test_unreadable_config_file(tmp_path: Path) -> None:
    args = ship_parser().parse_args(["-c", str(tmp_path / "nope.conf")])
    with pytest.raises(ShipConfigError, match="cannot read the configuration file"):
        from_args(args, environ=ENV)


# --- credentials end to end ---------------------------------------------------------------------


def test_identity_flags_give_credentials_from_the_emulator(
    tmp_path: Path, rolesanywhere_pki: PKI, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    leaf = rolesanywhere_pki.leaf("ec-p256")
    cert, key = leaf.write(tmp_path, "client")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(rolesanywhere_pki.intermediate.cert_pem())
    emu = rolesanywhere_emulator
    args = ship_parser().parse_args(
        ["/x", "--host", HOST, "--certificate", str(cert), "--private-key", str(key),
         "--intermediates", str(chain), "--trust-anchor-arn", emu.trust_anchor_arn,
         "--profile-arn", emu.profile_arn, "--role-arn", emu.role_arn, "--endpoint", emu.url]
    )  # fmt: skip
    config = from_args(args, environ=ENV)
    with config.credential_provider(environ=ENV) as provider:
        assert provider.kind == "rolesanywhere"
        creds = provider()
    assert emu.lookup(creds.access_key_id) is not None


def test_aws_profile_gives_credentials(tmp_path: Path) -> None:
    (tmp_path / "credentials").write_text(
        "[ingest]\naws_access_key_id = AKIDSHIP\naws_secret_access_key = s\n"
    )
    env = {
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }
    config, _ = fb(BLOG)
    assert config.credential_provider(environ=env)().access_key_id == "AKIDSHIP"


def test_reset_positions_from_toml_and_flag() -> None:
    base = f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/"\n'
    assert from_toml(base, environ=ENV).reset_positions is None
    config = from_toml(base + '[state]\nreset_positions = "head"\n', environ=ENV)
    assert config.reset_positions == "head"
    assert from_toml(config.to_toml(), environ=ENV) == config
    with pytest.raises(ShipConfigError, match=r"state\.reset_positions: .*head or end"):
        from_toml(base + '[state]\nreset_positions = "middle"\n', source_name="s", environ=ENV)
    parser = ship_parser()
    args = parser.parse_args(["/x", "--url", f"https://{HOST}/", "--reset-positions", "end"])
    assert from_args(args, environ=ENV).reset_positions == "end"


def test_stop_timeout_from_grace_toml_and_flag_default_5s(tmp_path: Path) -> None:
    assert fb(minimal())[0].stop_timeout == 5.0
    config, warnings = fb(minimal(service="    Grace 3\n"))
    assert config.stop_timeout == 3.0 and warnings == []  # Fluent Bit's Grace, no longer ignored
    toml = f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/p"\nstop_timeout = "2s"\n'
    assert from_toml(toml, environ=ENV).stop_timeout == 2.0
    assert "stop_timeout = 2.0" in from_toml(toml, environ=ENV).to_toml()
    conf = tmp_path / "ship.toml"
    conf.write_text(toml)
    args = ship_parser().parse_args(["-c", str(conf), "--stop-timeout", "500ms"])
    assert from_args(args, environ=ENV).stop_timeout == 0.5
    args = ship_parser().parse_args(["-c", str(conf), "--stop-timeout", "-1"])
    with pytest.raises(ShipConfigError, match="stop-timeout"):
        from_args(args, environ=ENV)
