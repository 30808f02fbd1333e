"""ARNs and the CreateSession parameters checked before any network call.

Messages name the parameter to fix (``trust_anchor_arn``…, marked with
:func:`~rolesanywhere.errors.parameter`: the command line shows its flag); ARNs are not secrets and
are shown.
"""

from __future__ import annotations

import re

from rolesanywhere.errors import InvalidParameterError, parameter
from rolesanywhere.session.endpoints import (
    PARTITION_NAMES,
    partition_for_region,
    show,
    split_fips_region,
)
from rolesanywhere.values import Value

__all__ = [
    "MAX_DURATION_SECONDS",
    "MIN_DURATION_SECONDS",
    "Arn",
    "parse_profile_arn",
    "parse_role_arn",
    "parse_trust_anchor_arn",
    "resolve_region",
    "validate_duration",
    "validate_role_session_name",
]

MIN_DURATION_SECONDS = 900
MAX_DURATION_SECONDS = 43200

_PARTITION = re.compile(r"aws(?:-[a-z]+)*", re.ASCII)
_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]*", re.ASCII)
_REGION = re.compile(r"(?:[a-z0-9]+(?:-[a-z0-9]+)*)?", re.ASCII)
_ACCOUNT_FIELD = re.compile(r"[a-z0-9-]*", re.ASCII)
_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The service's documented ID pattern for trust anchors and profiles.
_RESOURCE_ID = re.compile(r"[a-f0-9]{8}-(?:[a-z0-9]{4}-){3}[a-z0-9]{12}", re.ASCII)
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_ROLE_PATH = re.compile(r"/(?:[\x21-\x2e\x30-\x7e]+/)*", re.ASCII)
_ROLE_PATH_MAX = 512
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)

_GENERIC_TEMPLATE = "arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE"
# The parameters as messages name them.
_TRUST_ANCHOR_ARN = parameter("trust_anchor_arn")
_PROFILE_ARN = parameter("profile_arn")
_ROLE_ARN = parameter("role_arn")
_REGION_PARAM = parameter("region")


class Arn(Value):
    """An Amazon Resource Name. Built by :meth:`parse`; the constructor does not validate."""

    __slots__ = ("partition", "service", "region", "account", "resource")

    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __init__(
        self, partition: str, service: str, region: str, account: str, resource: str
    ) -> None:
        super().__init__(partition, service, region, account, resource)

    @classmethod
    def parse(cls, text: str, *, what: str = "ARN") -> Arn:
        """Parse ``arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE``; ``what`` names the input."""
        return _parse_generic(text, what=what, kind="", template=_GENERIC_TEMPLATE)

    def __str__(self) -> str:
        return ":".join(
            ("arn", self.partition, self.service, self.region, self.account, self.resource)
        )


def _error(what: str, kind: str, reason: str, template: str, text: object) -> InvalidParameterError:
    noun = f"{kind} ARN" if kind else "a valid ARN"
    return InvalidParameterError(
        f"{what} is not {noun} ({reason}): expected {template}, got {show(text)}"
    )


def _parse_generic(text: object, *, what: str, kind: str, template: str) -> Arn:
    if not isinstance(text, str):
        raise _error(what, kind, "not a string", template, text)
    stripped = text.strip()

    def fail(reason: str) -> InvalidParameterError:
        return _error(what, kind, reason, template, text)

    if not stripped:
        raise fail("it is empty")
    if stripped != text and kind:
        # The service trims the ARN it reports, so a stray space or newline (a quoted shell
        # variable, a CRLF config file) would come back as a puzzling 404 for the trimmed ARN.
        raise fail("it has whitespace around it: remove the spaces or line break")
    if _CONTROL.search(stripped) or any(ch.isspace() for ch in stripped):
        raise fail("it contains whitespace or control characters")
    fields = stripped.split(":", 5)
    if len(fields) != 6 or fields[0] != "arn":
        raise fail("an ARN has six ':'-separated fields starting with 'arn'")
    _, partition, service, region, account, resource = fields
    if not _PARTITION.fullmatch(partition):
        raise fail(f"bad partition {show(partition)}")
    if not _SERVICE.fullmatch(service):
        raise fail(f"bad service {show(service)}")
    if not _REGION.fullmatch(region):
        raise fail(f"bad region {show(region)}")
    if not _ACCOUNT_FIELD.fullmatch(account):
        raise fail(f"bad account {show(account)}")
    if not resource:
        raise fail("the resource is empty")
    return Arn(partition, service, region, account, resource)


def _parse_rolesanywhere(text: str, *, what: str, kind: str, resource_type: str) -> Arn:
    template = f"arn:aws:rolesanywhere:REGION:ACCOUNT:{resource_type}/ID"
    arn = _parse_generic(text, what=what, kind=kind, template=template)

    def fail(reason: str) -> InvalidParameterError:
        return _error(what, kind, reason, template, text)

    if arn.partition not in PARTITION_NAMES:
        raise fail(f"unknown partition {show(arn.partition)}")
    if arn.service != "rolesanywhere":
        raise fail(f"service must be 'rolesanywhere', not {show(arn.service)}")
    if not arn.region:
        raise fail("the region is missing")
    if split_fips_region(arn.region)[1]:
        raise fail("an ARN holds the real region, without 'fips'")
    try:
        region_partition = partition_for_region(arn.region).name
    except InvalidParameterError:
        raise fail(f"{show(arn.region)} is not a known AWS region format") from None
    if region_partition != arn.partition:
        raise fail(
            f"region {show(arn.region)} is in partition {region_partition}, not {arn.partition}"
        )
    if not _ACCOUNT_ID.fullmatch(arn.account):
        raise fail("the account must be 12 digits")
    prefix = resource_type + "/"
    if not arn.resource.startswith(prefix):
        raise fail(f"the resource must start with '{prefix}'")
    if not _RESOURCE_ID.fullmatch(arn.resource[len(prefix) :]):
        raise fail("the ID must be a lower-case UUID")
    return arn


def parse_trust_anchor_arn(text: str, *, what: str = _TRUST_ANCHOR_ARN) -> Arn:
    """Parse ``arn:PARTITION:rolesanywhere:REGION:ACCOUNT:trust-anchor/UUID``."""
    return _parse_rolesanywhere(
        text, what=what, kind="a trust anchor", resource_type="trust-anchor"
    )


def parse_profile_arn(text: str, *, what: str = _PROFILE_ARN) -> Arn:
    """Parse ``arn:PARTITION:rolesanywhere:REGION:ACCOUNT:profile/UUID``."""
    return _parse_rolesanywhere(text, what=what, kind="a profile", resource_type="profile")


def parse_role_arn(text: str, *, what: str = _ROLE_ARN) -> Arn:
    """Parse ``arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME``."""
    template = "arn:aws:iam::ACCOUNT:role/NAME"
    arn = _parse_generic(text, what=what, kind="an IAM role", template=template)

    def fail(reason: str) -> InvalidParameterError:
        return _error(what, "an IAM role", reason, template, text)

    if arn.partition not in PARTITION_NAMES:
        raise fail(f"unknown partition {show(arn.partition)}")
    if arn.service != "iam":
        raise fail(f"service must be 'iam', not {show(arn.service)}")
    if arn.region:
        raise fail("IAM ARNs have an empty region field")
    if not _ACCOUNT_ID.fullmatch(arn.account):
        raise fail("the account must be 12 digits")
    if not arn.resource.startswith("role/"):
        raise fail("the resource must start with 'role/'")
    path, _, name = arn.resource[len("role") :].rpartition("/")
    if not _ROLE_NAME.fullmatch(name):
        raise fail("the role name must be 1 to 64 characters from A-Z a-z 0-9 + = , . @ _ -")
    if len(path) >= _ROLE_PATH_MAX or not _ROLE_PATH.fullmatch(path + "/"):
        raise fail("bad role path")
    return arn


def validate_duration(seconds: int) -> int:
    """Check a session duration (``durationSeconds``): 900 to 43200 seconds inclusive."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not MIN_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS
    ):
        raise InvalidParameterError(
            f"{parameter('duration_seconds')} must be between {MIN_DURATION_SECONDS} and "
            f"{MAX_DURATION_SECONDS} seconds, got {show(seconds)}"
        )
    return seconds


def validate_role_session_name(name: str) -> str:
    """Check a role session name: 2 to 64 characters from ``A-Za-z0-9+=,.@_-``."""
    if not isinstance(name, str) or not _SESSION_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"{parameter('role_session_name')} must be 2 to 64 characters from "
            "A-Z a-z 0-9 + = , . @ _ -, "
            f"got {show(name)}"
        )
    return name


def resolve_region(
    trust_anchor_arn: Arn,
    profile_arn: Arn,
    region: str | None,
    *,
    role_arn: Arn | None = None,
) -> str:
    """The region to call: ``region`` when given (it must be the trust anchor's region; a FIPS
    microformat is kept), else the trust anchor's. The trust anchor and profile must share a
    region, and every ARN (the role's too, when given) and the region must share a partition."""
    if trust_anchor_arn.partition != profile_arn.partition:
        raise InvalidParameterError(
            f"{_TRUST_ANCHOR_ARN} is in partition {trust_anchor_arn.partition} but {_PROFILE_ARN} "
            f"is in {profile_arn.partition}: use ARNs from the same partition"
        )
    if role_arn is not None and role_arn.partition != trust_anchor_arn.partition:
        raise InvalidParameterError(
            f"{_ROLE_ARN} is in partition {role_arn.partition} but {_TRUST_ANCHOR_ARN} is in "
            f"{trust_anchor_arn.partition}: use ARNs from the same partition"
        )
    if trust_anchor_arn.region != profile_arn.region:
        raise InvalidParameterError(
            f"{_TRUST_ANCHOR_ARN} is in region {show(trust_anchor_arn.region)} but {_PROFILE_ARN} "
            f"is in region {show(profile_arn.region)}: use a trust anchor and profile from the "
            "same region"
        )
    chosen = trust_anchor_arn.region if region is None or region == "" else region
    partition = partition_for_region(chosen).name
    if partition != trust_anchor_arn.partition:
        raise InvalidParameterError(
            f"{_REGION_PARAM} {show(chosen)} is in partition {partition} but "
            f"{_TRUST_ANCHOR_ARN} is in {trust_anchor_arn.partition}: pass a region of the ARNs' "
            "partition"
        )
    if split_fips_region(chosen)[0] != trust_anchor_arn.region:
        # The service only knows a trust anchor in its own region: it would refuse the call.
        raise InvalidParameterError(
            f"{_REGION_PARAM} {show(chosen)} disagrees with {_TRUST_ANCHOR_ARN}, which is in "
            f"region {show(trust_anchor_arn.region)}: drop {_REGION_PARAM}, or pass "
            f"{_REGION_PARAM} {trust_anchor_arn.region} (or its FIPS form)"
        )
    return chosen
