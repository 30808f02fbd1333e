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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arn import Arn
    from .auth import SigV4Auth, UnsignableBodyError
    from .client import AsyncRolesAnywhereClient, ClientConfig, IdentitySource, RolesAnywhereClient
    from .credentials import Credentials
    from .endpoints import Endpoint, resolve_endpoint
    from .errors import (
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
        UnsupportedKeyError,
        WrongPasswordError,
    )
    from .identity import Identity, IdentityLoader
    from .keys import SigningKey, SoftwareSigningKey
    from .loghandler import OsisHandler
    from .refresh import RefreshingCredentials
    from .retry import RetryPolicy
    from .session import (
        HttpRequest,
        SessionParams,
        SignedRequest,
        build_create_session_request,
        parse_create_session_response,
        sign_x509,
    )
    from .shipper import AsyncShipper, Shipper, ShipperConfig
    from .tail import Chunk, Tailer

from . import errors as _errors  # tiny, no dependencies: its names need not be listed twice

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Arn": "arn",
    "SigV4Auth": "auth",
    "UnsignableBodyError": "auth",
    "AsyncRolesAnywhereClient": "client",
    "ClientConfig": "client",
    "IdentitySource": "client",
    "RolesAnywhereClient": "client",
    "Credentials": "credentials",
    "Endpoint": "endpoints",
    "resolve_endpoint": "endpoints",
    "Identity": "identity",
    "IdentityLoader": "identity",
    "SigningKey": "keys",
    "SoftwareSigningKey": "keys",
    "RefreshingCredentials": "refresh",
    "OsisHandler": "loghandler",
    "AsyncShipper": "shipper",
    "Shipper": "shipper",
    "ShipperConfig": "shipper",
    "Chunk": "tail",
    "Tailer": "tail",
    "RetryPolicy": "retry",
    "HttpRequest": "session",
    "SessionParams": "session",
    "SignedRequest": "session",
    "build_create_session_request": "session",
    "parse_create_session_response": "session",
    "sign_x509": "session",
    **dict.fromkeys(_errors.__all__, "errors"),
}

__all__ = [
    "AccessDeniedError",
    "Arn",
    "AsyncRolesAnywhereClient",
    "AsyncShipper",
    "CertificateValidityError",
    "Chunk",
    "ClientConfig",
    "Credentials",
    "CredentialsError",
    "CredentialsFileError",
    "Endpoint",
    "HttpRequest",
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
    "SessionParams",
    "Shipper",
    "ShipperConfig",
    "SigV4Auth",
    "SignedRequest",
    "SigningKey",
    "SoftwareSigningKey",
    "SourceError",
    "Tailer",
    "ThrottlingError",
    "UnsignableBodyError",
    "UnsupportedKeyError",
    "WrongPasswordError",
    "__version__",
    "build_create_session_request",
    "parse_create_session_response",
    "resolve_endpoint",
    "sign_x509",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rolesanywhere' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
