"""Endpoint resolution: partitions, FIPS, dual-stack, custom endpoint overrides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.session.endpoints import (
    PARTITIONS,
    Endpoint,
    partition_for_region,
    resolve_endpoint,
    split_fips_region,
)

NO_ENV: dict[str, str] = {}

# region, partition, regular host, dual-stack host
PARTITION_TABLE = [
    (
        "us-east-1",
        "aws",
        "rolesanywhere.us-east-1.amazonaws.com",
        "rolesanywhere.us-east-1.api.aws",
    ),
    (
        "ap-southeast-2",
        "aws",
        "rolesanywhere.ap-southeast-2.amazonaws.com",
        "rolesanywhere.ap-southeast-2.api.aws",
    ),
    ("il-central-1", "aws", "rolesanywhere.il-central-1.amazonaws.com", None),
    ("mx-central-1", "aws", "rolesanywhere.mx-central-1.amazonaws.com", None),
    (
        "cn-north-1",
        "aws-cn",
        "rolesanywhere.cn-north-1.amazonaws.com.cn",
        "rolesanywhere.cn-north-1.api.amazonwebservices.com.cn",
    ),
    (
        "us-gov-west-1",
        "aws-us-gov",
        "rolesanywhere.us-gov-west-1.amazonaws.com",
        "rolesanywhere.us-gov-west-1.api.aws",
    ),
    (
        "us-iso-east-1",
        "aws-iso",
        "rolesanywhere.us-iso-east-1.c2s.ic.gov",
        "rolesanywhere.us-iso-east-1.api.aws.ic.gov",
    ),
    (
        "us-isob-east-1",
        "aws-iso-b",
        "rolesanywhere.us-isob-east-1.sc2s.sgov.gov",
        "rolesanywhere.us-isob-east-1.api.aws.scloud",
    ),
    (
        "eu-isoe-west-1",
        "aws-iso-e",
        "rolesanywhere.eu-isoe-west-1.cloud.adc-e.uk",
        "rolesanywhere.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
    ),
    (
        "us-isof-south-1",
        "aws-iso-f",
        "rolesanywhere.us-isof-south-1.csp.hci.ic.gov",
        "rolesanywhere.us-isof-south-1.api.aws.hci.ic.gov",
    ),
    (
        "eusc-de-east-1",
        "aws-eusc",
        "rolesanywhere.eusc-de-east-1.amazonaws.eu",
        "rolesanywhere.eusc-de-east-1.api.amazonwebservices.eu",
    ),
]


@pytest.mark.parametrize(("region", "partition", "host", "dualstack_host"), PARTITION_TABLE)
def test_every_partition(
    region: str, partition: str, host: str, dualstack_host: str | None
) -> None:
    assert partition_for_region(region).name == partition
    ep = resolve_endpoint(region, environ=NO_ENV)
    assert ep == Endpoint(
        url=f"https://{host}",
        host=host,
        path_prefix="",
        signing_region=region,
        fips=False,
        dualstack=False,
    )
    fips = resolve_endpoint(region, use_fips=True, environ=NO_ENV)
    assert fips.host == host.replace("rolesanywhere.", "rolesanywhere-fips.", 1)
    assert fips.fips
    assert fips.signing_region == region
    if dualstack_host is not None:
        ds = resolve_endpoint(region, use_dualstack=True, environ=NO_ENV)
        assert ds.host == dualstack_host
        assert ds.url == f"https://{dualstack_host}"
        assert ds.dualstack
        assert not ds.fips
        both = resolve_endpoint(region, use_fips=True, use_dualstack=True, environ=NO_ENV)
        assert both.host == dualstack_host.replace("rolesanywhere.", "rolesanywhere-fips.", 1)
        assert both.fips
        assert both.dualstack
        assert both.signing_region == region


def test_partition_shape() -> None:
    gov = partition_for_region("us-gov-east-1")
    assert (gov.name, gov.dns_suffix, gov.dualstack_dns_suffix) == (
        "aws-us-gov",
        "amazonaws.com",
        "api.aws",
    )
    assert len({p.name for p in PARTITIONS}) == len(PARTITIONS)


@pytest.mark.parametrize(
    "region",
    [
        "",
        "xx",
        "us-east",
        "US-EAST-1",
        "us-east-1 ",
        "us-east-1\n",
        "zz-east-1",
        "us-east-x",
        "us-east-1-1",
        "us-\u00e9ast-1",
        "us-east-\u0661",
        "fips",
        "local",
    ],
)
def test_unknown_region_format(region: str) -> None:
    with pytest.raises(
        InvalidParameterError, match=r"not a known AWS region format: set region to"
    ):
        resolve_endpoint(region, environ=NO_ENV)


def test_unknown_region_rejected_even_with_custom_endpoint() -> None:
    with pytest.raises(InvalidParameterError, match="not a known AWS region format"):
        resolve_endpoint("moon-1", endpoint="http://localhost:8080", environ=NO_ENV)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-gov-west-1-fips", ("us-gov-west-1", True)),
        ("fips-us-gov-west-1", ("us-gov-west-1", True)),
        ("us-east-1-fips", ("us-east-1", True)),
        ("us-gov-west-1", ("us-gov-west-1", False)),
        ("fips", ("fips", False)),
        ("fips-", ("fips-", False)),
        ("-fips", ("-fips", False)),
    ],
)
def test_split_fips_region(region: str, expected: tuple[str, bool]) -> None:
    assert split_fips_region(region) == expected


@pytest.mark.parametrize("region", ["us-gov-west-1-fips", "fips-us-gov-west-1"])
def test_fips_microformat_selects_fips_host_and_real_scope_region(region: str) -> None:
    ep = resolve_endpoint(region, environ=NO_ENV)
    assert ep.host == "rolesanywhere-fips.us-gov-west-1.amazonaws.com"
    assert ep.signing_region == "us-gov-west-1"
    assert ep.fips
    assert partition_for_region(region).name == "aws-us-gov"


def test_fips_microformat_wins_over_use_fips_false() -> None:
    ep = resolve_endpoint("us-east-1-fips", use_fips=False, environ=NO_ENV)
    assert ep.host == "rolesanywhere-fips.us-east-1.amazonaws.com"


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true "])
def test_fips_from_env(value: str) -> None:
    ep = resolve_endpoint("us-east-2", environ={"AWS_USE_FIPS_ENDPOINT": value})
    assert ep.host == "rolesanywhere-fips.us-east-2.amazonaws.com"
    assert ep.signing_region == "us-east-2"


@pytest.mark.parametrize("value", ["false", "FALSE", ""])
def test_env_flags_false(value: str) -> None:
    env = {"AWS_USE_FIPS_ENDPOINT": value, "AWS_USE_DUALSTACK_ENDPOINT": value}
    assert resolve_endpoint("us-east-2", environ=env).host == (
        "rolesanywhere.us-east-2.amazonaws.com"
    )


@pytest.mark.parametrize("name", ["AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"])
@pytest.mark.parametrize("value", ["1", "yes", "on", "tru"])
def test_env_flags_invalid_value(name: str, value: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"{name} must be 'true' or 'false'"):
        resolve_endpoint("us-east-2", environ={name: value})


def test_explicit_flags_override_env() -> None:
    env = {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"}
    ep = resolve_endpoint("us-east-2", use_fips=False, use_dualstack=False, environ=env)
    assert ep.host == "rolesanywhere.us-east-2.amazonaws.com"
    assert resolve_endpoint("us-east-2", environ=env).host == (
        "rolesanywhere-fips.us-east-2.api.aws"
    )


def test_dualstack_from_env() -> None:
    ep = resolve_endpoint("cn-northwest-1", environ={"AWS_USE_DUALSTACK_ENDPOINT": "True"})
    assert ep.host == "rolesanywhere.cn-northwest-1.api.amazonwebservices.com.cn"
    assert ep.dualstack


def test_dualstack_with_fips_microformat() -> None:
    ep = resolve_endpoint("fips-us-gov-east-1", use_dualstack=True, environ=NO_ENV)
    assert ep.url == "https://rolesanywhere-fips.us-gov-east-1.api.aws"
    assert ep.signing_region == "us-gov-east-1"


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ROLESANYWHERE", "AWS_USE_FIPS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
    assert resolve_endpoint("eu-west-1").host == "rolesanywhere.eu-west-1.api.aws"


# --- custom endpoints -------------------------------------------------------------------------

FLAG = "https://flag.example"
SERVICE_ENV = "https://service-env.example"
GLOBAL_ENV = "https://global-env.example"


@pytest.mark.parametrize(
    ("endpoint", "env", "expected_host"),
    [
        (FLAG, {"AWS_ENDPOINT_URL_ROLESANYWHERE": SERVICE_ENV, "AWS_ENDPOINT_URL": GLOBAL_ENV},
         "flag.example"),
        (None, {"AWS_ENDPOINT_URL_ROLESANYWHERE": SERVICE_ENV, "AWS_ENDPOINT_URL": GLOBAL_ENV},
         "service-env.example"),
        (None, {"AWS_ENDPOINT_URL": GLOBAL_ENV}, "global-env.example"),
        (FLAG, {}, "flag.example"),
        (None, {"AWS_ENDPOINT_URL_ROLESANYWHERE": SERVICE_ENV}, "service-env.example"),
        # empty values count as unset
        ("", {"AWS_ENDPOINT_URL_ROLESANYWHERE": "", "AWS_ENDPOINT_URL": GLOBAL_ENV},
         "global-env.example"),
        ("  ", {}, "rolesanywhere.us-east-1.amazonaws.com"),
        (None, {}, "rolesanywhere.us-east-1.amazonaws.com"),
        # AWS_IGNORE_CONFIGURED_ENDPOINT_URLS drops the variables, never the flag
        (None, {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": GLOBAL_ENV},
         "rolesanywhere.us-east-1.amazonaws.com"),
        (FLAG, {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, "flag.example"),
    ],
)  # fmt: skip
def test_override_precedence(endpoint: str | None, env: dict[str, str], expected_host: str) -> None:
    ep = resolve_endpoint("us-east-1", endpoint=endpoint, environ=env)
    assert ep.host == expected_host
    assert ep.url == f"https://{expected_host}"
    assert ep.signing_region == "us-east-1"


@pytest.mark.parametrize(
    ("raw", "url", "host", "prefix"),
    [
        ("https://example.com", "https://example.com", "example.com", ""),
        ("https://example.com/", "https://example.com", "example.com", ""),
        ("example.com", "https://example.com", "example.com", ""),
        ("localhost:8443", "https://localhost:8443", "localhost:8443", ""),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "127.0.0.1:8080", ""),
        ("http://127.0.0.1:80", "http://127.0.0.1", "127.0.0.1", ""),
        ("https://example.com:443", "https://example.com", "example.com", ""),
        ("http://example.com:443", "http://example.com:443", "example.com:443", ""),
        ("https://example.com:80", "https://example.com:80", "example.com:80", ""),
        ("HTTPS://Example.COM", "https://example.com", "example.com", ""),
        ("https://gw.example/ra/", "https://gw.example/ra", "gw.example", "/ra"),
        ("https://gw.example:9443/a/b//", "https://gw.example:9443/a/b", "gw.example:9443", "/a/b"),
        ("http://[::1]:9911/x", "http://[::1]:9911/x", "[::1]:9911", "/x"),
        ("  https://example.com  ", "https://example.com", "example.com", ""),
        (
            "https://vpce-0a1b.rolesanywhere.us-east-1.vpce.amazonaws.com",
            "https://vpce-0a1b.rolesanywhere.us-east-1.vpce.amazonaws.com",
            "vpce-0a1b.rolesanywhere.us-east-1.vpce.amazonaws.com",
            "",
        ),
    ],
)
def test_custom_endpoint_shapes(raw: str, url: str, host: str, prefix: str) -> None:
    ep = resolve_endpoint("us-gov-west-1-fips", endpoint=raw, use_dualstack=True, environ=NO_ENV)
    assert (ep.url, ep.host, ep.path_prefix) == (url, host, prefix)
    assert ep.signing_region == "us-gov-west-1"
    assert (ep.fips, ep.dualstack) == (False, False)
    assert ep.sessions_path == prefix + "/sessions"
    assert ep.sessions_url("a=1") == url + "/sessions?a=1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ftp://example.com", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://:8080", "no host"),
        ("https://example.com?x=1", "query or fragment"),
        ("https://example.com/?", "query or fragment"),
        ("https://example.com#frag", "query or fragment"),
        ("https://example.com:0", "port must be between"),
        ("https://example.com:99999", "malformed host or port"),
        ("https://example.com:abc", "malformed host or port"),
        ("https://[::1", "malformed host or port"),
        ("https://exa mple.com", "whitespace or control"),
        ("https://example.com/a\tb", "whitespace or control"),
        ("https://example.com/\x00", "whitespace or control"),
        ("https://exa$mple.com", "malformed host name"),
        ("https://[zz::1]", "malformed"),
        ("http:/host", "empty port"),
        ("https://example.com:", "empty port"),
    ],
)
def test_custom_endpoint_garbage(raw: str, reason: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"^endpoint is not a valid endpoint URL") as e:
        resolve_endpoint("us-east-1", endpoint=raw, environ=NO_ENV)
    assert reason in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["AWS_ENDPOINT_URL_ROLESANYWHERE", "AWS_ENDPOINT_URL"])
def test_bad_env_endpoint_names_the_variable(name: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"^{name} is not a valid endpoint URL"):
        resolve_endpoint("us-east-1", environ={name: "gopher://x"})


def test_userinfo_is_rejected_without_echoing_the_password() -> None:
    with pytest.raises(InvalidParameterError, match="user name or password") as e:
        resolve_endpoint("us-east-1", endpoint="https://me:hunter2@example.com", environ=NO_ENV)
    assert "hunter2" not in str(e.value)


def test_sessions_url_without_query() -> None:
    ep = resolve_endpoint("us-east-1", environ=NO_ENV)
    assert ep.sessions_url("") == "https://rolesanywhere.us-east-1.amazonaws.com/sessions"


# --- properties -------------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_arbitrary_endpoint_text_only_raises_invalid_parameter(text: str) -> None:
    try:
        ep = resolve_endpoint("us-east-1", endpoint=text, environ=NO_ENV)
    except InvalidParameterError as e:
        error = str(e)
    else:
        error = ""
    assert "\n" not in error
    if error:
        return
    assert ep.url.startswith(("https://", "http://"))
    assert not ep.url.endswith("/")
    assert ep.host
    assert ep.url.split("://", 1)[1] == ep.host + ep.path_prefix


@given(st.text(max_size=40))
def test_arbitrary_region_only_raises_invalid_parameter(region: str) -> None:
    try:
        ep = resolve_endpoint(region, environ=NO_ENV)
    except InvalidParameterError as e:
        error = str(e)
    else:
        error = ""
    assert "\n" not in error
    if error:
        return
    assert not ep.signing_region.endswith("-fips")
    assert not ep.signing_region.startswith("fips-")
    assert ep.host.endswith(partition_for_region(region).dns_suffix)


@given(st.text(max_size=40), st.text(max_size=10))
def test_arbitrary_env_flags_only_raise_invalid_parameter(fips: str, dualstack: str) -> None:
    env = {"AWS_USE_FIPS_ENDPOINT": fips, "AWS_USE_DUALSTACK_ENDPOINT": dualstack}
    try:
        ep = resolve_endpoint("us-east-1", environ=env)
    except InvalidParameterError:
        assert {fips.strip().lower(), dualstack.strip().lower()} - {"", "true", "false"}
        return
    assert ep.fips == (fips.strip().lower() == "true")
    assert ep.dualstack == (dualstack.strip().lower() == "true")
