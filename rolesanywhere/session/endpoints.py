"""Where CreateSession goes: partitions, FIPS and dual-stack hosts, custom endpoint overrides.

Everything here is a pure function of its arguments; the environment is passed in as a mapping
and only defaults to :data:`os.environ` when none is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from rolesanywhere.errors import InvalidParameterError, parameter
from rolesanywhere.values import Value

__all__ = [
    "PARTITIONS",
    "Endpoint",
    "Partition",
    "partition_for_region",
    "resolve_endpoint",
    "split_fips_region",
]

SERVICE = "rolesanywhere"
ENV_ENDPOINT_SERVICE = "AWS_ENDPOINT_URL_ROLESANYWHERE"
ENV_ENDPOINT_GLOBAL = "AWS_ENDPOINT_URL"
ENV_IGNORE_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
ENV_FIPS = "AWS_USE_FIPS_ENDPOINT"
ENV_DUALSTACK = "AWS_USE_DUALSTACK_ENDPOINT"

_DEFAULT_PORTS = {"https": 443, "http": 80}
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HOSTNAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*)(?:\.[a-z0-9_-]+)*\.?", re.ASCII)
_IPV6 = re.compile(r"[0-9a-f:.]+(?:%[A-Za-z0-9._~-]+)?", re.ASCII)
_SHOW_LIMIT = 120


class Partition(Value):
    """An AWS partition: its name and the DNS suffixes of its regular and dual-stack hosts."""

    __slots__ = ("name", "dns_suffix", "dualstack_dns_suffix")

    name: str
    dns_suffix: str
    dualstack_dns_suffix: str

    def __init__(self, name: str, dns_suffix: str, dualstack_dns_suffix: str) -> None:
        super().__init__(name, dns_suffix, dualstack_dns_suffix)


# (region pattern, partition); most specific first so ``us-gov-…`` is not read as ``us-…``.
_PARTITION_TABLE: tuple[tuple[re.Pattern[str], Partition], ...] = tuple(
    (re.compile(pattern, re.ASCII), Partition(name, suffix, dualstack_suffix))
    for pattern, name, suffix, dualstack_suffix in (
        (r"us-gov-\w+-\d+", "aws-us-gov", "amazonaws.com", "api.aws"),
        (r"us-iso-\w+-\d+", "aws-iso", "c2s.ic.gov", "api.aws.ic.gov"),
        (r"us-isob-\w+-\d+", "aws-iso-b", "sc2s.sgov.gov", "api.aws.scloud"),
        (r"eu-isoe-\w+-\d+", "aws-iso-e", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
        (r"us-isof-\w+-\d+", "aws-iso-f", "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
        (r"cn-\w+-\d+", "aws-cn", "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
        (r"eusc-de-\w+-\d+", "aws-eusc", "amazonaws.eu", "api.amazonwebservices.eu"),
        (r"(?:us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+", "aws", "amazonaws.com", "api.aws"),
    )
)

PARTITIONS: tuple[Partition, ...] = tuple(partition for _, partition in _PARTITION_TABLE)

PARTITION_NAMES: frozenset[str] = frozenset(p.name for p in PARTITIONS)


def show(value: object) -> str:
    """A one-line, length-capped ``repr`` of user input for error messages."""
    text = repr(value)
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 4] + "...'"
    return text


class Endpoint(Value):
    """The resolved CreateSession endpoint.

    ``fips`` and ``dualstack`` say which AWS host was chosen; both are ``False`` for a custom
    endpoint, whose host is the user's. ``signing_region`` is always the real region.
    """

    __slots__ = ("url", "host", "path_prefix", "signing_region", "fips", "dualstack")

    url: str
    host: str
    path_prefix: str
    signing_region: str
    fips: bool
    dualstack: bool

    def __init__(
        self,
        url: str,
        host: str,
        path_prefix: str,
        signing_region: str,
        fips: bool,
        dualstack: bool,
    ) -> None:
        super().__init__(url, host, path_prefix, signing_region, fips, dualstack)

    @property
    def sessions_path(self) -> str:
        """The CreateSession path as sent on the wire (and signed)."""
        return self.path_prefix + "/sessions"

    def sessions_url(self, query: str) -> str:
        """The CreateSession URL, with ``query`` (already encoded) appended when non-empty."""
        return self.url + "/sessions" + ("?" + query if query else "")


def split_fips_region(region: str) -> tuple[str, bool]:
    """Strip a FIPS microformat: ``us-gov-west-1-fips`` / ``fips-us-gov-west-1`` → real region."""
    fips = False
    if region.startswith("fips-") and len(region) > len("fips-"):
        region, fips = region[len("fips-") :], True
    if region.endswith("-fips") and len(region) > len("-fips"):
        region, fips = region[: -len("-fips")], True
    return region, fips


def _find_partition(region: str) -> Partition | None:
    for pattern, partition in _PARTITION_TABLE:
        if pattern.fullmatch(region):
            return partition
    return None


def partition_for_region(region: str) -> Partition:
    """The partition of ``region`` (a FIPS microformat is accepted); unknown formats raise."""
    real, _ = split_fips_region(region)
    partition = _find_partition(real)
    if partition is None:
        raise InvalidParameterError(
            f"{parameter('region')} {show(region)} is not a known AWS region format: "
            f"set {parameter('region')} to a region such as us-east-1"
        )
    return partition


def _env_flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    raise InvalidParameterError(
        f"{name} must be 'true' or 'false', got {show(raw)}: fix or unset it"
    )


def _custom_endpoint(environ: Mapping[str, str], explicit: str | None) -> tuple[str, str] | None:
    """The custom endpoint URL and the name of where it came from, highest precedence first."""
    if explicit is not None and explicit.strip():
        return explicit, parameter("endpoint")
    if _env_flag(environ, ENV_IGNORE_ENDPOINTS):
        return None
    for name in (ENV_ENDPOINT_SERVICE, ENV_ENDPOINT_GLOBAL):
        value = environ.get(name)
        if value is not None and value.strip():
            return value, name
    return None


def _parse_custom(raw: str, source: str) -> tuple[str, str, str]:
    """Validate a custom endpoint URL; return (scheme, host header value, path prefix)."""
    text = raw.strip()

    def bad(reason: str, *, echo: bool = True) -> InvalidParameterError:
        got = f", got {show(raw)}" if echo else ""
        return InvalidParameterError(
            f"{source} is not a valid endpoint URL ({reason}){got}: "
            "use http(s)://HOST[:PORT][/PATH]"
        )

    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise bad("it contains whitespace or control characters")
    if not _SCHEME_PREFIX.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise bad("malformed host or port") from exc
    if parts.netloc.endswith(":"):
        raise bad("empty port")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise bad(f"scheme must be http or https, not {show(parts.scheme)}")
    if "@" in parts.netloc:
        # Never echo: the user-info part may hold a password.
        raise bad("it must not carry a user name or password", echo=False)
    if "?" in text or "#" in text:
        raise bad("it must not have a query or fragment")
    hostname = parts.hostname
    if not hostname:
        raise bad("no host")
    if ":" in hostname:
        if not _IPV6.fullmatch(hostname):
            raise bad("malformed IPv6 address")
        hostname = f"[{hostname}]"
    elif not _HOSTNAME.fullmatch(hostname):
        raise bad("malformed host name")
    if port == 0:
        raise bad("port must be between 1 and 65535")
    host = hostname
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{hostname}:{port}"
    return scheme, host, parts.path.rstrip("/")


def resolve_endpoint(
    region: str,
    *,
    endpoint: str | None = None,
    use_fips: bool | None = None,
    use_dualstack: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """Resolve the CreateSession endpoint for ``region`` (which may be a FIPS microformat).

    A custom endpoint comes from ``endpoint``, else
    ``AWS_ENDPOINT_URL_ROLESANYWHERE``, else ``AWS_ENDPOINT_URL`` (the two variables are skipped
    when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``). Otherwise the AWS host is built from the
    partition, with FIPS from the microformat, ``use_fips`` or ``AWS_USE_FIPS_ENDPOINT`` and
    dual-stack from ``use_dualstack`` or ``AWS_USE_DUALSTACK_ENDPOINT``.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    real_region, micro_fips = split_fips_region(region)
    partition = partition_for_region(real_region)

    custom = _custom_endpoint(env, endpoint)
    if custom is not None:
        scheme, host, prefix = _parse_custom(*custom)
        return Endpoint(
            url=f"{scheme}://{host}{prefix}",
            host=host,
            path_prefix=prefix,
            signing_region=real_region,
            fips=False,
            dualstack=False,
        )

    fips = micro_fips or (_env_flag(env, ENV_FIPS) if use_fips is None else use_fips)
    dualstack = _env_flag(env, ENV_DUALSTACK) if use_dualstack is None else use_dualstack
    label = f"{SERVICE}-fips" if fips else SERVICE
    suffix = partition.dualstack_dns_suffix if dualstack else partition.dns_suffix
    host = f"{label}.{real_region}.{suffix}"
    return Endpoint(
        url=f"https://{host}",
        host=host,
        path_prefix="",
        signing_region=real_region,
        fips=fips,
        dualstack=dualstack,
    )
