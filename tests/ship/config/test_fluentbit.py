"""ShipConfig from Fluent Bit classic files (rolesanywhere.ship.config.fluentbit_reader,
.fluentbit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import InvalidParameterError, ShipConfigError
from rolesanywhere.ship.config.load import from_fluent_bit, load_file
from rolesanywhere.ship.config.model import MAX_BATCH_BYTES, ConfigWarning, ShipConfig
from tests.ship.config.test_config import (
    BLOG,
    ENV,
    HOST,
    fb,
    keys_warned,
    minimal,
    one_line,
)

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
