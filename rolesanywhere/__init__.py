"""IAM Roles Anywhere for Python.

Load an X.509 identity, exchange it for temporary AWS credentials with CreateSession, and use
them. Names are imported lazily on first use, so ``import rolesanywhere`` (and the command line)
stays fast::

    import rolesanywhere

    identity = rolesanywhere.Identity.load("client.pem", "client.key")
    client = rolesanywhere.RolesAnywhereClient(
        identity, trust_anchor_arn=..., profile_arn=..., role_arn=...
    )
    credentials = client.create_session()
"""

from __future__ import annotations

# errors is tiny and has no dependencies: its exported names need not be listed twice (it also
# holds internal errors, such as the transport's and the command line's: those are not exported)
from rolesanywhere import errors as _errors

# No typing (nor importlib) import at run time: every command imports this package first.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from rolesanywhere.auth.boto import (
        attach,
        boto3_session,
        botocore_credentials,
        botocore_session,
        credential_provider,
    )
    from rolesanywhere.auth.sigv4auth import SigV4Auth
    from rolesanywhere.credentials import Credentials
    from rolesanywhere.errors import (
        AccessDeniedError,
        CertificateValidityError,
        CredentialsError,
        CredentialsFileError,
        IdentityError,
        InvalidArgumentTypeError,
        InvalidParameterError,
        KeyMismatchError,
        NetworkError,
        PasswordRequiredError,
        RequestTimeoutError,
        ResourceNotFoundError,
        RolesAnywhereError,
        ServiceError,
        ServiceValidationError,
        SourceError,
        ThrottlingError,
        TokenError,
        UnsignableBodyError,
        UnsupportedKeyError,
        WrongPasswordError,
    )
    from rolesanywhere.ratelimit import AdaptiveRateLimiter
    from rolesanywhere.retry import RetryPolicy
    from rolesanywhere.session.client import (
        AsyncRolesAnywhereClient,
        ClientConfig,
        IdentitySource,
        RolesAnywhereClient,
    )
    from rolesanywhere.session.endpoints import Endpoint
    from rolesanywhere.session.refresh import RefreshingCredentials
    from rolesanywhere.ship.loghandler import OsisHandler
    from rolesanywhere.ship.shipper import AsyncShipper, Shipper
    from rolesanywhere.ship.shipperconfig import ShipperConfig
    from rolesanywhere.x509.identity import Identity
    from rolesanywhere.x509.keys import SigningKey, SoftwareSigningKey
    from rolesanywhere.x509.loader import IdentityLoader

# The one version source: pyproject.toml reads this literal ([tool.setuptools.dynamic]).
__version__ = "0.1.0"

#: The user-facing names and the module each is imported from on first use. Protocol pieces
#: (ARNs, the CreateSession request and response, the SigV4 signer, the tailer) live in their
#: subpackages: rolesanywhere.session, rolesanywhere.sigv4, rolesanywhere.ship, ...
_EXPORTS: dict[str, str] = {
    "attach": "auth.boto",
    "boto3_session": "auth.boto",
    "botocore_credentials": "auth.boto",
    "botocore_session": "auth.boto",
    "credential_provider": "auth.boto",
    "SigV4Auth": "auth.sigv4auth",
    "Credentials": "credentials",
    "AdaptiveRateLimiter": "ratelimit",
    "RetryPolicy": "retry",
    "AsyncRolesAnywhereClient": "session.client",
    "ClientConfig": "session.client",
    "IdentitySource": "session.client",
    "RolesAnywhereClient": "session.client",
    "Endpoint": "session.endpoints",
    "RefreshingCredentials": "session.refresh",
    "OsisHandler": "ship.loghandler",
    "AsyncShipper": "ship.shipper",
    "Shipper": "ship.shipper",
    "ShipperConfig": "ship.shipperconfig",
    "Identity": "x509.identity",
    "IdentityLoader": "x509.loader",
    "SigningKey": "x509.keys",
    "SoftwareSigningKey": "x509.keys",
}

__all__ = [
    "AccessDeniedError",
    "AdaptiveRateLimiter",
    "AsyncRolesAnywhereClient",
    "AsyncShipper",
    "CertificateValidityError",
    "ClientConfig",
    "Credentials",
    "CredentialsError",
    "CredentialsFileError",
    "Endpoint",
    "Identity",
    "IdentityError",
    "IdentityLoader",
    "IdentitySource",
    "InvalidArgumentTypeError",
    "InvalidParameterError",
    "KeyMismatchError",
    "NetworkError",
    "OsisHandler",
    "PasswordRequiredError",
    "RefreshingCredentials",
    "RequestTimeoutError",
    "ResourceNotFoundError",
    "RetryPolicy",
    "RolesAnywhereClient",
    "RolesAnywhereError",
    "ServiceError",
    "ServiceValidationError",
    "Shipper",
    "ShipperConfig",
    "SigV4Auth",
    "SigningKey",
    "SoftwareSigningKey",
    "SourceError",
    "ThrottlingError",
    "TokenError",
    "UnsignableBodyError",
    "UnsupportedKeyError",
    "WrongPasswordError",
    "__version__",
    "attach",
    "boto3_session",
    "botocore_credentials",
    "botocore_session",
    "credential_provider",
]
_EXPORTS.update((name, "errors") for name in __all__ if hasattr(_errors, name))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rolesanywhere' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
