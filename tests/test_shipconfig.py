"""ShipConfig from Fluent Bit classic files, TOML and flags."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.profiles.settings import IdentitySettings
from rolesanywhere.ship.config import (
    MAX_BATCH_BYTES,
    ConfigWarning,
    ShipConfig,
    ShipConfigError,
    add_ship_arguments,
    default_state_dir,
    detect_format,
    from_args,
    from_fluent_bit,
    from_toml,
    load_file,
    parse_bool,
    parse_duration,
    parse_size,
    region_from_osis_host,
)
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI

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


# --- the blog's configuration -------------------------------------------------------------------


def test_blog_config_maps_every_value() -> None:
    config, warnings = fb(BLOG)
    assert config.paths == ("/var/log/*.log", "/var/log/app/*.log")
    assert config.exclude_paths == ("*.gz", "*.zip")
    assert config.read_from_head is True
    assert config.refresh_interval == 10.0
    assert config.rotate_wait == 30.0
    assert config.max_line_bytes == 64000  # Fluent Bit's k is 1000
    assert config.long_lines == "split"
    assert config.state_dir == "/var/lib/fluent-bit"
    assert config.path_key == "filename"
    assert config.log_key == "message"
    assert config.tag == "app.logs"
    assert config.url == f"https://{HOST}/test-ingestion-path"
    assert config.host == HOST
    assert config.region == "us-east-1"
    assert config.service == "osis"
    assert config.compress is True
    assert config.date_key == "timestamp"
    assert config.date_format == "iso8601"
    assert config.aws_profile == "ingest"
    assert config.identity is None
    assert config.tls_verify is True
    assert config.ca_bundle == "/etc/ssl/ca.pem"
    assert config.retry_limit == 5
    assert config.headers == (("X-Team", "ops"), ("X-Env", "prod"))
    assert config.flush_interval == 1.0
    assert config.batch_bytes == MAX_BATCH_BYTES
    assert config.sources == ("fluent-bit.conf",)
    # Log_Level is ignored, with a warning; DB maps with a warning (its content is not read)
    assert keys_warned(warnings) == {"Log_Level", "DB"}
    assert config.warnings == tuple(warnings)
    db = next(w for w in warnings if w.key == "DB")
    assert db.location == "fluent-bit.conf:15"
    assert "not read" in db.message


def test_defaults_of_a_minimal_config() -> None:
    config, warnings = fb(minimal(), environ={"XDG_STATE_HOME": "/state"})
    assert warnings == []
    assert config.url == f"https://{HOST}/"
    assert config.read_from_head is False
    assert config.refresh_interval == 60.0
    assert config.rotate_wait == 5.0
    assert config.max_line_bytes == 32 * 1024
    assert config.compress is False
    assert config.retry_limit is None  # unlimited: Fluent Bit's default of 1 loses data
    assert config.max_backoff == 60.0
    assert config.date_key == "date" and config.date_format == "double"
    assert config.log_key == "log"
    assert config.state_dir == "/state/rolesanywhere/ship"
    assert config.aws_profile is None and config.identity is None


def test_storage_path_is_the_state_dir_without_db() -> None:
    config, _ = fb(minimal(service="    storage.path /var/lib/flb\n"))
    assert config.state_dir == "/var/lib/flb"


@pytest.mark.parametrize(
    ("output", "url"),
    [
        ("    tls Off\n    URI /log/ingest\n", f"http://{HOST}/log/ingest"),
        ("    tls off\n    Port 80\n", f"http://{HOST}/"),
        ("    tls Off\n    Port 8080\n", f"http://{HOST}:8080/"),
        ("    tls On\n    Port 8443\n", f"https://{HOST}:8443/"),
        ("    tls yes\n", f"https://{HOST}/"),
    ],
)
def test_tls_off_means_plain_http(output: str, url: str) -> None:
    config, _ = fb(minimal(output))
    assert config.url == url


def test_retry_limit_forms() -> None:
    for value, expected in (("False", None), ("no_limits", None), ("no_retries", 0), ("7", 7)):
        config, _ = fb(minimal(f"    Retry_Limit {value}\n"))
        assert config.retry_limit == expected
    with pytest.raises(ShipConfigError, match=r"fluent-bit\.conf:\d+: .*Retry_Limit"):
        fb(minimal("    Retry_Limit sometimes\n"))


def test_skip_long_lines_truncates_with_a_warning() -> None:
    config, warnings = fb(minimal(tail="    Skip_Long_Lines On\n"))
    assert config.long_lines == "truncate"
    (warning,) = warnings
    assert warning.key == "Skip_Long_Lines" and "never drops" in warning.message


def test_scheduler_cap_is_max_backoff() -> None:
    config, _ = fb(minimal(service="    scheduler.cap 2m\n"))
    assert config.max_backoff == 120.0


def test_record_modifier_adds_fields() -> None:
    text = minimal() + (
        "[FILTER]\n    Name record_modifier\n    Match *\n"
        "    Record hostname ${HOSTNAME}\n    Record team the ops team\n"
        "[FILTER]\n    Name modify\n    Match *\n    Add env prod\n"
    )
    config, warnings = fb(text, environ={"HOSTNAME": "web-1"})
    assert dict(config.fields) == {"hostname": "web-1", "team": "the ops team", "env": "prod"}
    assert warnings == []


# --- warnings: never a silent ignore ------------------------------------------------------------


def test_unknown_keys_are_warnings_naming_section_key_and_line() -> None:
    text = (
        "[SERVICE]\n"
        "    Flush 1\n"
        "    Flsuh 2\n"
        "[INPUT]\n"
        "    Name tail\n"
        "    Path /var/log/*.log\n"
        "    Mem_Buf_Limit 5MB\n"
        "    Pth /oops\n"
        "[OUTPUT]\n"
        "    Name http\n"
        "    Match *\n"
        f"    Host {HOST}\n"
        "    aws_auth On\n"
        "    Hots other\n"
        "    net.keepalive off\n"
    )
    _, warnings = fb(text)
    found = {(w.section, w.key, w.location) for w in warnings}
    assert found == {
        ("[SERVICE]", "Flsuh", "fluent-bit.conf:3"),
        ("[INPUT] tail", "Mem_Buf_Limit", "fluent-bit.conf:7"),
        ("[INPUT] tail", "Pth", "fluent-bit.conf:8"),
        ("[OUTPUT] http", "Hots", "fluent-bit.conf:14"),
        ("[OUTPUT] http", "net.keepalive", "fluent-bit.conf:15"),
    }
    texts = [str(w) for w in warnings]
    assert "fluent-bit.conf:8: [INPUT] tail key 'Pth' is unknown: ignored" in texts
    assert all("\n" not in t for t in texts)


def test_other_plugins_and_sections_are_warnings() -> None:
    text = minimal() + (
        "[INPUT]\n    Name cpu\n"
        "[FILTER]\n    Name grep\n    Regex log error\n"
        "[OUTPUT]\n    Name stdout\n    Match *\n"
        "[PARSER]\n    Name json\n    Format json\n"
        "[WHATEVER]\n    Key value\n"
    )
    _, warnings = fb(text)
    messages = [str(w) for w in warnings]
    assert any("[INPUT] cpu is not supported" in m for m in messages)
    assert any("[FILTER] grep is not supported" in m for m in messages)
    assert any("[OUTPUT] stdout is not supported" in m for m in messages)
    assert any("[PARSER] section ignored" in m for m in messages)
    assert any("unknown section [WHATEVER]" in m for m in messages)
    assert len(warnings) == 5


def test_duplicate_key_warns() -> None:
    config, warnings = fb(minimal(tail="    Read_from_Head false\n    Read_from_Head true\n"))
    assert config.read_from_head is True
    assert [w.key for w in warnings] == ["Read_from_Head"]
    assert "first at fluent-bit.conf:" in warnings[0].message


def test_missing_aws_auth_and_match_warn() -> None:
    text = f"[INPUT]\n    Name tail\n    Path /a.log\n[OUTPUT]\n    Name http\n    Host {HOST}\n"
    _, warnings = fb(text)
    assert keys_warned(warnings) == {"aws_auth", "Match"}


def test_json_lines_is_sent_as_an_array_with_a_warning() -> None:
    _, warnings = fb(minimal("    Format json_lines\n"))
    assert [w.key for w in warnings] == ["Format"]
    assert "one JSON array" in warnings[0].message


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("    Format msgpack\n", "takes one JSON array of records; write Format json"),
        ("    aws_auth Off\n", "always signs"),
        ("    compress snappy\n", "gzip only"),
        ("    aws_role_arn arn:aws:iam::111122223333:role/x\n", "not supported"),
        ("    json_date_format java_sql_timestamp\n", "double, epoch or iso8601"),
        ("    Port http\n", "must be a port number"),
        ("    tls maybe\n", "On/Off"),
        ("    Header X-Lonely\n", "needs a name and a value"),
        ("    Header Authorization Basic abc\n", "set by rolesanywhere ship itself"),
        ("    Header X-Amz-Date now\n", "set by rolesanywhere ship itself"),
    ],
)
def test_refused_output_settings(output: str, expected: str) -> None:
    with pytest.raises(ShipConfigError) as info:
        fb(minimal(output))
    message = one_line(info.value)
    assert expected in message
    assert message.startswith("fluent-bit.conf:")


def test_two_http_outputs_are_refused() -> None:
    text = minimal() + f"[OUTPUT]\n    Name http\n    Match *\n    Host {HOST}\n"
    with pytest.raises(ShipConfigError, match=r"2 \[OUTPUT\] http sections .*keep one"):
        fb(text)


def test_match_that_misses_the_tag_is_refused() -> None:
    text = minimal(tail="    Tag kube.app\n").replace("Match *", "Match other.*")
    with pytest.raises(ShipConfigError, match=r"does not match the tail input's Tag 'kube\.app'"):
        fb(text)


def test_tail_inputs_are_merged_and_must_agree() -> None:
    extra = "[INPUT]\n    Name tail\n    Path /srv/*.log, /var/log/*.log\n"
    config, _ = fb(minimal() + extra)
    assert config.paths == ("/var/log/*.log", "/srv/*.log")
    conflicting = "[INPUT]\n    Name tail\n    Path /srv/*.log\n    Read_from_Head true\n"
    text = minimal(tail="    Read_from_Head false\n") + conflicting
    with pytest.raises(ShipConfigError, match="disagree on read_from_head"):
        fb(text)


# --- @SET, ${VAR}, @INCLUDE ---------------------------------------------------------------------


def test_set_and_environment_variables() -> None:
    text = (
        "@SET pipeline=my-pipeline-abc123def456\n"
        "@SET region=eu-west-1\n"
        "[INPUT]\n    Name tail\n    Path ${LOG_DIR}/*.log\n"
        "[OUTPUT]\n    Name http\n    Match *\n    aws_auth On\n"
        "    Host ${pipeline}.${region}.osis.amazonaws.com\n"
        "    URI /${MISSING}ingest\n"
    )
    config, warnings = fb(text, environ={"LOG_DIR": "/srv/logs", "region": "ignored"})
    assert config.paths == ("/srv/logs/*.log",)
    assert config.url == "https://my-pipeline-abc123def456.eu-west-1.osis.amazonaws.com/ingest"
    assert config.region == "eu-west-1"  # @SET wins over the environment
    (warning,) = warnings
    assert "${MISSING}" in warning.message and warning.location == "fluent-bit.conf:11"


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "input.conf").write_text(
        "[INPUT]\n    Name tail\n    Path ${base}/*.log\n    Bogus 1\n"
    )
    (tmp_path / "conf.d" / "output.conf").write_text(
        "@INCLUDE ../common/out.conf\n"  # relative to conf.d/
    )
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "out.conf").write_text(
        f"[OUTPUT]\n    Name http\n    Match *\n    Host {HOST}\n    aws_auth On\n"
    )
    main = tmp_path / "fluent-bit.conf"
    main.write_text("@SET base=/data\n[SERVICE]\n    Flush 2\n@INCLUDE conf.d/*.conf\n")
    config = load_file(main, environ=ENV)
    assert config.paths == ("/data/*.log",)
    assert config.flush_interval == 2.0
    assert config.host == HOST
    (warning,) = config.warnings
    assert warning.location == f"{tmp_path / 'conf.d' / 'input.conf'}:4"
    assert warning.key == "Bogus"
    assert config.sources[0] == str(main)
    assert len(config.sources) == 4


def test_include_errors(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_text("[SERVICE]\n    Flush 1\n@INCLUDE missing.conf\n")
    with pytest.raises(ShipConfigError) as info:
        load_file(main, environ=ENV)
    assert one_line(info.value).startswith(f"{main}:3: cannot read {tmp_path / 'missing.conf'}")
    loop = tmp_path / "loop.conf"
    loop.write_text("@INCLUDE loop.conf\n")
    with pytest.raises(ShipConfigError, match="@INCLUDE loop"):
        load_file(loop, environ=ENV)
    main.write_text("@INCLUDE nothing-*.conf\n" + minimal())
    config = load_file(main, environ=ENV)
    assert "matches no file" in str(config.warnings[0])


# --- malformed lines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("[INPUT]\n    Name tail\nPath /x\n", 3, "is not indented"),
        ("[SERVICE]\n    Flush 1\n\n    Daemon\n", 4, "has no value"),
        ("# comment\n[INPUT\n", 2, "malformed section header"),
        ("[SERVICE]\n  Flush 1\n[]\n", 3, "malformed section header"),
        ("# note\n    Name tail\n", 2, "outside any section"),
        ("[SERVICE]\n    Flush 1\n    @SET a=b\n", 3, "must start at the beginning"),
        ("@SET novalue\n", 1, "write @SET NAME=VALUE"),
        ("@IMPORT x.conf\n", 1, "unknown command '@IMPORT'"),
        ("[SERVICE]\n    Flush soon\n", 2, "must be a time"),
        ("[INPUT]\n    Name tail\n    Buffer_Max_Size 12 parsecs\n", 3, "must be a size"),
        ("[INPUT]\n    Path /x\n", 1, "has no Name"),
    ],
)
def test_malformed_lines_name_the_line(text: str, line: int, expected: str) -> None:
    with pytest.raises(ShipConfigError) as info:
        fb(text)
    message = one_line(info.value)
    assert message.startswith(f"fluent-bit.conf:{line}: "), message
    assert expected in message
    assert isinstance(info.value, InvalidParameterError)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(),
        st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        "[SERVICE]",
                        "[INPUT]",
                        "[OUTPUT]",
                        "[FILTER]",
                        "    Name tail",
                        "    Name http",
                        "    Path /var/log/*.log",
                        f"    Host {HOST}",
                        "    Port 99999",
                        "    tls Off",
                        "    Retry_Limit x",
                        "@SET a=${b}",
                        "@INCLUDE nothing*.conf",
                        "    Buffer_Max_Size 2M",
                        "    Header X-Amz-Foo bar",
                        "#",
                        "",
                    ]
                ),
                st.text(max_size=30),
            ),
            max_size=25,
        ).map("\n".join),
    )
)
def test_random_text_raises_only_the_library_error(tmp_path: Path, text: str) -> None:
    try:
        config, warnings = from_fluent_bit(
            text, source_name="random.conf", base_dir=tmp_path, environ={}
        )
    except ShipConfigError as exc:
        one_line(exc)
    else:
        assert isinstance(config, ShipConfig)
        assert all(isinstance(w, ConfigWarning) for w in warnings)


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
    assert region_from_osis_host(HOST) == "us-east-1"
    assert region_from_osis_host("logs-x1.ap-southeast-2.osis.amazonaws.com") == "ap-southeast-2"
    assert region_from_osis_host("ingest.example.com") is None
    assert region_from_osis_host("x.notaregion.osis.amazonaws.com") is None
    assert region_from_osis_host(None) is None
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


ARNS = {
    "trust_anchor_arn": "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/"
    "0a1b2c3d-1111-2222-3333-444455556666",
    "profile_arn": "arn:aws:rolesanywhere:us-east-1:111122223333:profile/"
    "0a1b2c3d-1111-2222-3333-444455557777",
    "role_arn": "arn:aws:iam::111122223333:role/ingest",
}


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


def test_record_field_collisions() -> None:
    toml = (
        f'[input]\npaths = ["/x"]\n[output]\nurl = "https://{HOST}/"\n[record]\npath_key = "log"\n'
    )
    with pytest.raises(ShipConfigError, match="record field 'log' is used twice"):
        from_toml(toml, environ=ENV)


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


# --- flags --------------------------------------------------------------------------------------


def ship_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rolesanywhere ship")
    add_ship_arguments(parser)
    return parser


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
        from_args(parser.parse_args([*base, "--pkcs11-lib", "/lib.so"]), environ=ENV)
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


def test_default_state_dir() -> None:
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/ship:/x"}) == "/var/lib/ship"
    assert default_state_dir({"XDG_STATE_HOME": "/s"}) == "/s/rolesanywhere/ship"
    assert default_state_dir({"HOME": "/h"}) == "/h/.local/state/rolesanywhere/ship"


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
