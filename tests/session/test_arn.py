"""ARN parsing and the parameter checks done before any network call."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.session.arn import (
    Arn,
    parse_profile_arn,
    parse_role_arn,
    parse_trust_anchor_arn,
    resolve_region,
    validate_duration,
    validate_role_session_name,
)
from rolesanywhere.session.endpoints import resolve_endpoint
from tests.conformance import X509, require

UUID = "8f916267-7377-4d5d-a6f6-0b03f3feed3c"
UUID2 = "9419ce03-14c5-41e5-b0bc-62e717c53092"
ACCOUNT = "123456789012"


def ta(region: str = "us-east-1", partition: str = "aws") -> str:
    return f"arn:{partition}:rolesanywhere:{region}:{ACCOUNT}:trust-anchor/{UUID}"


def profile(region: str = "us-east-1", partition: str = "aws") -> str:
    return f"arn:{partition}:rolesanywhere:{region}:{ACCOUNT}:profile/{UUID2}"


def role(name: str = "role/Admin", partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{ACCOUNT}:{name}"


# --- Arn ---------------------------------------------------------------------------------------


def test_parse_fields_and_str() -> None:
    text = "arn:aws:s3:::bucket/key:with:colons"
    arn = Arn.parse(text)
    assert arn == Arn("aws", "s3", "", "", "bucket/key:with:colons")
    assert str(arn) == text


def test_parse_strips_surrounding_whitespace() -> None:
    assert str(Arn.parse(f"  {ta()}\n")) == ta()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("arn:aws:iam::123456789012", "six ':'-separated fields"),
        ("urn:aws:iam::123456789012:role/x", "six ':'-separated fields"),
        ("ARN:aws:iam::123456789012:role/x", "six ':'-separated fields"),
        ("arn:azure:iam::123456789012:role/x", "bad partition"),
        ("arn::iam::123456789012:role/x", "bad partition"),
        ("arn:aws::us-east-1:123456789012:role/x", "bad service"),
        ("arn:aws:IAM::123456789012:role/x", "bad service"),
        ("arn:aws:iam:US-EAST-1:123456789012:role/x", "bad region"),
        ("arn:aws:iam::12345678901_:role/x", "bad account"),
        ("arn:aws:iam::123456789012:", "the resource is empty"),
        ("arn:aws:iam::123456789012:role/a b", "whitespace or control"),
        ("arn:aws:iam::123456789012:role/a\x00b", "whitespace or control"),
    ],
)
def test_generic_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"^my ARN is not a valid ARN \(") as e:
        Arn.parse(text, what="my ARN")
    assert reason in str(e.value)
    assert "expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE" in str(e.value)
    assert "\n" not in str(e.value)


def test_non_string_is_invalid_parameter() -> None:
    with pytest.raises(InvalidParameterError, match="not a string"):
        parse_role_arn(None)  # type: ignore[arg-type]


# --- trust anchor and profile ARNs ------------------------------------------------------------

PARTITION_REGIONS = [
    ("aws", "us-east-1"),
    ("aws", "ap-southeast-2"),
    ("aws-cn", "cn-north-1"),
    ("aws-us-gov", "us-gov-west-1"),
    ("aws-iso", "us-iso-east-1"),
    ("aws-iso-b", "us-isob-east-1"),
    ("aws-iso-e", "eu-isoe-west-1"),
    ("aws-iso-f", "us-isof-south-1"),
]


@pytest.mark.parametrize(("partition", "region"), PARTITION_REGIONS)
def test_valid_arns_in_every_partition(partition: str, region: str) -> None:
    anchor = parse_trust_anchor_arn(ta(region, partition))
    prof = parse_profile_arn(profile(region, partition))
    rl = parse_role_arn(role(partition=partition))
    assert anchor == Arn(partition, "rolesanywhere", region, ACCOUNT, f"trust-anchor/{UUID}")
    assert prof.resource == f"profile/{UUID2}"
    assert (rl.partition, rl.service, rl.region, rl.resource) == (
        partition,
        "iam",
        "",
        "role/Admin",
    )
    assert resolve_region(anchor, prof, None, role_arn=rl) == region


RA_ERRORS = [
    ("nonsense", "six ':'-separated fields"),
    ("arn:aws-moon:rolesanywhere:us-east-1:123456789012:trust-anchor/" + UUID, "unknown partition"),
    ("arn:aws:iam:us-east-1:123456789012:trust-anchor/" + UUID, "service must be 'rolesanywhere'"),
    ("arn:aws:rolesanywhere::123456789012:trust-anchor/" + UUID, "the region is missing"),
    ("arn:aws:rolesanywhere:moon-1:123456789012:trust-anchor/" + UUID, "not a known AWS region"),
    ("arn:aws:rolesanywhere:us-east-1-fips:123456789012:trust-anchor/" + UUID, "without 'fips'"),
    ("arn:aws:rolesanywhere:cn-north-1:123456789012:trust-anchor/" + UUID, "partition aws-cn"),
    ("arn:aws-cn:rolesanywhere:us-east-1:123456789012:trust-anchor/" + UUID, "partition aws,"),
    ("arn:aws:rolesanywhere:us-east-1:12345678901:trust-anchor/" + UUID, "12 digits"),
    ("arn:aws:rolesanywhere:us-east-1::trust-anchor/" + UUID, "12 digits"),
    ("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/not-a-uuid", "lower-case UUID"),
    ("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/" + UUID.upper(), "UUID"),
    ("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/" + UUID + "/x", "UUID"),
    ("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/", "UUID"),
    ("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor" + UUID, "start with"),
    ("arn:aws:rolesanywhere:us-east-1:123456789012:profile/" + UUID, "start with 'trust-anchor/'"),
]


@pytest.mark.parametrize(("text", "reason"), RA_ERRORS)
def test_trust_anchor_errors(text: str, reason: str) -> None:
    with pytest.raises(InvalidParameterError) as e:
        parse_trust_anchor_arn(text)
    message = str(e.value)
    assert message.startswith("trust_anchor_arn is not a trust anchor ARN (")
    assert "expected arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID" in message
    assert message.endswith(f"got {text!r}")
    assert reason in message


@pytest.mark.parametrize(("text", "reason"), RA_ERRORS[:-1])
def test_profile_errors(text: str, reason: str) -> None:
    text = text.replace("trust-anchor", "profile")
    reason = reason.replace("trust-anchor", "profile")
    with pytest.raises(InvalidParameterError) as e:
        parse_profile_arn(text)
    message = str(e.value)
    assert message.startswith("profile_arn is not a profile ARN (")
    assert "expected arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID" in message
    assert reason in message


def test_profile_given_as_trust_anchor() -> None:
    with pytest.raises(InvalidParameterError, match="start with 'profile/'"):
        parse_profile_arn(ta())


def test_what_overrides_the_flag_name() -> None:
    with pytest.raises(InvalidParameterError, match=r"^trust_anchor_arn is not"):
        parse_trust_anchor_arn("x", what="trust_anchor_arn")


# --- role ARNs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        "role/a",
        "role/TestRole",
        "role/" + "r" * 64,
        "role/with+=,.@_-chars",
        "role/service-role/MyRole",
        "role/aws-service-role/rolesanywhere.amazonaws.com/AWSServiceRole",
        "role/a/b/c/d/Name",
    ],
)
def test_valid_role_arns(resource: str) -> None:
    assert parse_role_arn(role(resource)).resource == resource


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("role", "six ':'-separated fields"),
        ("arn:aws-moon:iam::123456789012:role/x", "unknown partition"),
        ("arn:aws:sts::123456789012:role/x", "service must be 'iam'"),
        ("arn:aws:iam:us-east-1:123456789012:role/x", "empty region"),
        ("arn:aws:iam::1234:role/x", "12 digits"),
        ("arn:aws:iam::123456789012:user/x", "start with 'role/'"),
        ("arn:aws:iam::123456789012:assumed-role/x/y", "start with 'role/'"),
        ("arn:aws:iam::123456789012:role/", "role name must be 1 to 64"),
        ("arn:aws:iam::123456789012:role/a/", "role name must be 1 to 64"),
        ("arn:aws:iam::123456789012:role/" + "r" * 65, "role name must be 1 to 64"),
        ("arn:aws:iam::123456789012:role/na*me", "role name must be 1 to 64"),
        ("arn:aws:iam::123456789012:role/caf\u00e9", "role name must be 1 to 64"),
        ("arn:aws:iam::123456789012:role//x", "bad role path"),
        ("arn:aws:iam::123456789012:role/a//x", "bad role path"),
        ("arn:aws:iam::123456789012:role/p\u00e4th/x", "bad role path"),
        ("arn:aws:iam::123456789012:role/" + "p" * 511 + "/x", "bad role path"),
    ],
)
def test_role_errors(text: str, reason: str) -> None:
    with pytest.raises(InvalidParameterError) as e:
        parse_role_arn(text)
    message = str(e.value)
    assert message.startswith("role_arn is not an IAM role ARN (")
    assert "expected arn:aws:iam::ACCOUNT:role/NAME" in message
    assert reason in message


# --- duration and session name ---------------------------------------------------------------


@pytest.mark.parametrize("seconds", [900, 901, 3600, 43199, 43200])
def test_duration_in_range(seconds: int) -> None:
    assert validate_duration(seconds) == seconds


@pytest.mark.parametrize("seconds", [-1, 0, 60, 899, 43201, 10**9])
def test_duration_out_of_range(seconds: int) -> None:
    with pytest.raises(InvalidParameterError) as e:
        validate_duration(seconds)
    assert str(e.value) == (
        f"duration_seconds must be between 900 and 43200 seconds, got {seconds}"
    )


@pytest.mark.parametrize("value", [True, 3600.0, "3600", None])
def test_duration_wrong_type(value: object) -> None:
    with pytest.raises(InvalidParameterError, match="duration_seconds must be between"):
        validate_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ab", "a" * 64, "user@example.com", "A_b-c.d,e=f+g", "12"])
def test_session_name_valid(name: str) -> None:
    assert validate_role_session_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a", "a" * 65, "has space", "sl/ash", "col:on", "caf\u00e9", "a\n", "\u0661\u0662"]
)
def test_session_name_invalid(name: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"^role_session_name must be 2 to 64") as e:
        validate_role_session_name(name)
    assert "\n" not in str(e.value)


# --- region resolution ------------------------------------------------------------------------


def test_region_defaults_to_trust_anchor() -> None:
    anchor, prof = parse_trust_anchor_arn(ta("eu-west-2")), parse_profile_arn(profile("eu-west-2"))
    assert resolve_region(anchor, prof, None) == "eu-west-2"
    assert resolve_region(anchor, prof, "") == "eu-west-2"


def test_explicit_region_wins_and_keeps_fips_microformat() -> None:
    anchor = parse_trust_anchor_arn(ta("us-gov-west-1", "aws-us-gov"))
    prof = parse_profile_arn(profile("us-gov-west-1", "aws-us-gov"))
    chosen = resolve_region(anchor, prof, "us-gov-west-1-fips")
    assert chosen == "us-gov-west-1-fips"
    ep = resolve_endpoint(chosen, environ={})
    assert ep.host == "rolesanywhere-fips.us-gov-west-1.amazonaws.com"
    assert ep.signing_region == "us-gov-west-1"
    assert resolve_region(anchor, prof, "fips-us-gov-west-1") == "fips-us-gov-west-1"


def test_explicit_region_must_be_the_trust_anchors() -> None:
    anchor = parse_trust_anchor_arn(ta("us-gov-west-1", "aws-us-gov"))
    prof = parse_profile_arn(profile("us-gov-west-1", "aws-us-gov"))
    with pytest.raises(InvalidParameterError, match="disagrees with trust_anchor_arn") as e:
        resolve_region(anchor, prof, "us-gov-east-1")
    assert "pass region us-gov-west-1" in str(e.value)


@pytest.mark.parametrize("pad", [" {}", "{} ", "{}\n", "\t{}\r\n"])
def test_typed_parsers_refuse_surrounding_whitespace(pad: str) -> None:
    with pytest.raises(InvalidParameterError, match="whitespace around it: remove"):
        parse_trust_anchor_arn(pad.format(ta()))
    with pytest.raises(InvalidParameterError, match="whitespace around it: remove"):
        parse_role_arn(pad.format(role()))


def test_region_mismatch_names_both() -> None:
    anchor, prof = parse_trust_anchor_arn(ta("us-east-1")), parse_profile_arn(profile("us-west-2"))
    with pytest.raises(InvalidParameterError) as e:
        resolve_region(anchor, prof, None)
    message = str(e.value)
    assert "trust_anchor_arn is in region 'us-east-1'" in message
    assert "profile_arn is in region 'us-west-2'" in message


def test_partition_mismatch_between_arns() -> None:
    anchor = parse_trust_anchor_arn(ta())
    cn_profile = parse_profile_arn(profile("cn-north-1", "aws-cn"))
    with pytest.raises(InvalidParameterError, match="partition aws but profile_arn is in aws-cn"):
        resolve_region(anchor, cn_profile, None)
    with pytest.raises(InvalidParameterError, match="role_arn is in partition aws-us-gov"):
        resolve_region(
            anchor,
            parse_profile_arn(profile()),
            None,
            role_arn=parse_role_arn(role(partition="aws-us-gov")),
        )


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1", "fips-us-gov-west-1"])
def test_explicit_region_in_other_partition(region: str) -> None:
    anchor, prof = parse_trust_anchor_arn(ta()), parse_profile_arn(profile())
    with pytest.raises(InvalidParameterError, match=f"region '{region}' is in partition"):
        resolve_region(anchor, prof, region)


@pytest.mark.parametrize("region", ["xx", "us-east-1 ", "US-EAST-1"])
def test_explicit_region_unknown_format(region: str) -> None:
    anchor, prof = parse_trust_anchor_arn(ta()), parse_profile_arn(profile())
    with pytest.raises(InvalidParameterError, match="not a known AWS region format: set region to"):
        resolve_region(anchor, prof, region)


def test_conformance_arns_resolve_to_their_hosts() -> None:
    (case_file,) = require(X509).glob("case1*/case.json")
    case = json.loads(case_file.read_text())
    query = case["query"]
    anchor = parse_trust_anchor_arn(query["trustAnchorArn"])
    prof = parse_profile_arn(query["profileArn"])
    rl = parse_role_arn(query["roleArn"])
    region = resolve_region(anchor, prof, None, role_arn=rl)
    assert region == case["region"]
    assert resolve_endpoint(region, environ={}).host == case["host"]


# --- properties -------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
arns = st.builds(
    Arn,
    partition=st.from_regex(r"aws(-[a-z]{1,5}){0,2}", fullmatch=True),
    service=st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}", fullmatch=True),
    region=st.one_of(
        st.just(""), st.from_regex(r"[a-z0-9]{1,6}(-[a-z0-9]{1,6}){0,3}", fullmatch=True)
    ),
    account=st.from_regex(r"[a-z0-9-]{0,12}", fullmatch=True),
    resource=st.text(
        st.characters(
            min_codepoint=0x21,
            max_codepoint=0x2FFF,
            exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
        ),
        min_size=1,
        max_size=40,
    ),
)


@given(arns)
def test_round_trip(arn: Arn) -> None:
    assert Arn.parse(str(arn)) == arn


PARSERS: list[Callable[[str], object]] = [
    Arn.parse,
    parse_trust_anchor_arn,
    parse_profile_arn,
    parse_role_arn,
    validate_role_session_name,
]


@pytest.mark.parametrize("parser", PARSERS)
@given(text=st.one_of(st.text(max_size=120), st.builds(lambda a: str(a), arns)))
def test_arbitrary_text_only_raises_invalid_parameter(
    parser: Callable[[str], object], text: str
) -> None:
    message = ""
    try:
        parser(text)
    except InvalidParameterError as e:
        message = str(e)
    assert "\n" not in message


@given(
    st.sampled_from(PARTITION_REGIONS), st.from_regex(r"[a-zA-Z0-9+=,.@_-]{1,64}", fullmatch=True)
)
def test_generated_valid_arns_parse(partition_region: tuple[str, str], name: str) -> None:
    partition, region = partition_region
    assert str(parse_trust_anchor_arn(ta(region, partition))) == ta(region, partition)
    assert str(parse_role_arn(role("role/" + name, partition))) == role("role/" + name, partition)


@given(st.integers())
def test_duration_property(seconds: int) -> None:
    try:
        assert validate_duration(seconds) == seconds
    except InvalidParameterError:
        assert not 900 <= seconds <= 43200
    else:
        assert 900 <= seconds <= 43200
