"""One definition of the identity and CreateSession settings (rolesanywhere.profiles.settings).

Every face that takes them (``credential-process``, ``update``, ``serve``, ``ship``'s flags, a
``credential_process`` line of an AWS config file read by ``ship --aws-profile``, and the
library's keyword arguments) is checked against :data:`SETTINGS`: a setting a face misses fails
here. Errors name Python parameters in the library and flags on the command line.
"""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path
from typing import Any

import pytest

import rolesanywhere.session.client as client_module
import rolesanywhere.x509.loader as loader_module
from rolesanywhere.errors import InvalidParameterError, RolesAnywhereError, parameter
from rolesanywhere.profiles.awsconfig import credential_source_for_profile
from rolesanywhere.profiles.settings import (
    SETTINGS,
    IdentitySettings,
    Setting,
    flag_namer,
    parse_helper_command,
)
from rolesanywhere.session.client import RolesAnywhereClient
from rolesanywhere.x509.loader import IdentityLoader
from tests.cli.test_main import run

EXPECTED = {s.name: s.example for s in SETTINGS}
REAL_LOADER = IdentityLoader


def flags(*, ship: bool = False) -> list[str]:
    """Every setting on a command line, each set to its example."""
    argv: list[str] = []
    for setting in SETTINGS:
        if setting.kind in ("switch", "negated"):
            assert setting.example is (setting.kind == "switch"), setting.name
            argv.append(setting.flag_for(ship=ship))
        else:
            argv += [setting.flag_for(ship=ship), str(setting.example)]
    return argv


class Stop(RolesAnywhereError):
    """Raised once the identity was asked for: everything was recorded."""


class Recorded:
    """What the face handed to RolesAnywhereClient and IdentityLoader."""

    def __init__(self) -> None:
        self.client: dict[str, Any] = {}
        self.loader: dict[str, Any] = {}

    def settings(self) -> dict[str, Any]:
        seen = {**self.loader, **self.client}
        return {name: seen[name] for name in EXPECTED if name in seen}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    record = Recorded()

    class FakeLoader:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            bound = inspect.signature(REAL_LOADER).bind(*args, **kwargs)
            record.loader.update(bound.arguments)

        def get(self) -> Any:
            raise Stop("recorded")

    class FakeClient:
        def __init__(self, identity: Any, **kwargs: Any) -> None:
            record.client.update(kwargs)
            self.identity = identity

        def create_session(self) -> Any:
            return self.identity.get()

        __call__ = create_session

        def close(self) -> None:
            pass

        def __enter__(self) -> FakeClient:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(client_module, "RolesAnywhereClient", FakeClient)
    monkeypatch.setattr(loader_module, "IdentityLoader", FakeLoader)
    return record


def test_every_setting_is_well_formed() -> None:
    names = [s.name for s in SETTINGS]
    assert len(set(names)) == len(names)
    assert len({s.flag for s in SETTINGS}) == len(SETTINGS)
    assert len({s.key for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        assert setting.flag.startswith("--") and setting.help, setting.name


@pytest.mark.parametrize(
    ("command", "extra"),
    [("credential-process", []), ("update", ["--once"]), ("serve", ["--port", "0"])],
)
def test_commands_take_every_setting(command: str, extra: list[str], recorded: Recorded) -> None:
    status, _, err = run([command, *flags(), *extra])
    assert status == 1 and "recorded" in err
    assert recorded.settings() == EXPECTED


def test_aws_profile_credential_process_line_takes_every_setting(
    tmp_path: Path, recorded: Recorded
) -> None:
    line = shlex.join(["/usr/bin/aws_signing_helper", "credential-process", *flags()])
    (tmp_path / "config").write_text(f"[profile ra]\ncredential_process = {line}\n")
    env = {
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    provider = credential_source_for_profile("ra", environ=env)
    assert provider.kind == "rolesanywhere"
    with pytest.raises(Stop):
        provider()
    assert recorded.settings() == EXPECTED


def test_ship_flags_take_every_setting(recorded: Recorded) -> None:
    from rolesanywhere.cli.main import _build_parser
    from rolesanywhere.ship.config.flags import from_args

    argv = ["ship", "--url", "https://pipe.us-east-1.osis.amazonaws.com/log", "/x.log"]
    args = _build_parser("rolesanywhere", argv).parse_args([*argv, *flags(ship=True)])
    config = from_args(args, environ={})
    assert config.identity is not None and config.identity.values == EXPECTED
    assert config.region == "us-east-1"  # --region stays the ingestion's
    with pytest.raises(Stop):
        config.credential_provider(environ={})()
    assert recorded.settings() == EXPECTED


def test_ship_toml_takes_every_setting() -> None:
    from rolesanywhere.ship.config.load import from_toml

    values = "\n".join(f"{s.key} = {_toml(s.example)}" for s in SETTINGS)
    config = from_toml(
        '[input]\npaths = ["/x.log"]\n[output]\n'
        'url = "https://pipe.us-east-1.osis.amazonaws.com/log"\n'
        f"[credentials]\n{values}\n"
    )
    assert config.identity is not None and config.identity.values == EXPECTED


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, int | float) else f'"{value}"'


def test_library_takes_every_setting(recorded: Recorded) -> None:
    targets = {"loader": REAL_LOADER, "client": RolesAnywhereClient}
    for setting in SETTINGS:
        assert setting.name in inspect.signature(targets[setting.target]).parameters
    assert IdentitySettings(**EXPECTED).values == EXPECTED


def test_sigv4auth_from_roles_anywhere_takes_every_setting(recorded: Recorded) -> None:
    from rolesanywhere.auth.sigv4auth import SigV4Auth

    region = next(s for s in SETTINGS if s.name == "region")
    kwargs = {(s.alias or s.name) if s is region else s.name: s.example for s in SETTINGS}
    auth = SigV4Auth.from_roles_anywhere(service="osis", region="eu-west-1", **kwargs)
    assert auth.region == "eu-west-1"
    assert recorded.settings() == EXPECTED


# --- the aws_signing_helper command line (moved from test_awsconfig) ------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["aws_signing_helper", "update"], None),
        (["/opt/bin/other-tool", "credential-process", "--certificate", "c"], None),
        (["aws_signing_helper"], None),
        (["C:\\tools\\aws_signing_helper.exe", "credential-process", "--bogus"], str),
        (["aws_signing_helper", "credential-process", "--certificate", "c"], str),
    ],
)
def test_parse_helper_command_variants(argv: list[str], expected: object) -> None:
    result = parse_helper_command(argv)
    if expected is None:
        assert result is None
    else:
        assert isinstance(result, str)


def test_parse_helper_command_flags() -> None:
    settings = parse_helper_command(
        [
            "/usr/local/bin/aws_signing_helper", "credential-process",
            "--certificate", "/c.pem", "--trust-anchor-arn", "ta", "--profile-arn", "p",
            "--role-arn", "r", "--session-duration", "900", "--region", "eu-west-1",
            "--no-verify-ssl", "--with-proxy", "--pkcs8-password", "pw",
            "--role-session-name", "ship",
        ]
    )  # fmt: skip
    assert isinstance(settings, IdentitySettings)
    assert settings.certificate == "/c.pem"
    assert settings.private_key is None
    assert (settings.trust_anchor_arn, settings.profile_arn, settings.role_arn) == ("ta", "p", "r")
    assert settings.duration_seconds == 900
    assert settings.region == "eu-west-1"
    assert settings.verify is False
    assert settings.proxy_from_env is True
    assert settings.password == "pw"
    assert "pw" not in repr(settings)
    assert settings.role_session_name == "ship"


# --- errors: Python names in the library, flags on the command line -------------------------------


def _arns(**changed: object) -> dict[str, object]:
    names = ("trust_anchor_arn", "profile_arn", "role_arn")
    return {**{n: EXPECTED[n] for n in names}, **changed}


def test_library_errors_name_python_parameters() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        RolesAnywhereClient(REAL_LOADER("/c.pem"), **_arns(), duration_seconds=899)  # type: ignore[arg-type]
    assert str(caught.value) == "duration_seconds must be between 900 and 43200 seconds, got 899"
    assert repr(caught.value).startswith("InvalidParameterError('duration_seconds must")
    with pytest.raises(InvalidParameterError, match=r"^trust_anchor_arn is not a trust anchor"):
        RolesAnywhereClient(REAL_LOADER("/c.pem"), **_arns(trust_anchor_arn="x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"^region 'eu-west-1' disagrees with trust_"):
        RolesAnywhereClient(REAL_LOADER("/c.pem"), **_arns(), region="eu-west-1")  # type: ignore[arg-type]


def test_command_line_errors_name_flags() -> None:
    argv = [f for s in SETTINGS if s.required for f in (s.flag, str(s.example))]
    status, _, err = run(
        ["credential-process", "--certificate", "/c.pem", *argv, "--session-duration", "899"]
    )
    assert status == 1
    assert err.endswith(": --session-duration must be between 900 and 43200 seconds, got 899\n")
    _, _, err = run(
        ["credential-process", "--certificate", "/c.pem", *argv, "--region", "eu-west-1"]
    )
    assert "--region 'eu-west-1' disagrees with --trust-anchor-arn" in err


def test_ship_and_aws_config_errors_name_their_flags(tmp_path: Path) -> None:
    from rolesanywhere.cli.main import _build_parser
    from rolesanywhere.errors import ShipConfigError
    from rolesanywhere.ship.config.flags import from_args

    argv = ["ship", "--url", "https://pipe.us-east-1.osis.amazonaws.com/log", "/x.log"]
    identity = ["--certificate", "/c.pem"] + [
        f for s in SETTINGS if s.required for f in (s.flag, str(s.example))
    ]
    args = _build_parser("rolesanywhere", argv).parse_args(
        [*argv, *identity, "--rolesanywhere-region", "eu-west-1"]
    )
    with pytest.raises(ShipConfigError, match="--rolesanywhere-region 'eu-west-1' disagrees"):
        from_args(args, environ={})

    line = shlex.join(
        ["aws_signing_helper", "credential-process", *identity, "--session-duration", "1"]
    )
    (tmp_path / "config").write_text(f"[default]\ncredential_process = {line}\n")
    env = {"AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_SHARED_CREDENTIALS_FILE": "/none"}
    with pytest.raises(InvalidParameterError, match="--session-duration must be between"):
        credential_source_for_profile(environ=env)


def test_naming_replaces_only_marked_parameters() -> None:
    error = InvalidParameterError(
        f"{parameter('region')} 'x' is in region y: see {parameter('connect_timeout')}"
    )
    assert str(error) == "region 'x' is in region y: see connect_timeout"
    assert error.naming(flag_namer()) == "--region 'x' is in region y: see connect_timeout"
    assert error.naming(flag_namer(ship=True)).startswith("--rolesanywhere-region 'x' is in region")
    password = InvalidParameterError(f"pass it ({parameter('password')})")
    assert password.naming(flag_namer()) == (
        "pass it (--pkcs8-password or ROLESANYWHERE_PKCS8_PASSWORD)"
    )


def test_a_setting_is_a_value() -> None:
    setting = SETTINGS[0]
    assert isinstance(setting, Setting) and setting == SETTINGS[0]
