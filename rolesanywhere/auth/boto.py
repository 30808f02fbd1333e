"""boto3 and botocore sessions with Roles Anywhere credentials, in-process (extra ``boto3``).

No ``credential_process`` subprocess, no ``serve``: the session's credentials come from a
:class:`~rolesanywhere.session.client.RolesAnywhereClient` through
:class:`~rolesanywhere.session.refresh.RefreshingCredentials`, so they refresh with its
lifetime-relative windows (a 900 s session is refreshed once, 225 s before it expires, where
botocore's fixed 15/10-minute windows would call CreateSession on every request), one refresh at a
time across threads. An advisory refresh that fails keeps serving the current credentials and
logs a warning (logger ``rolesanywhere.session.refresh``)::

    import rolesanywhere

    identity = rolesanywhere.Identity.load("client.pem", "client.key")
    session = rolesanywhere.boto3_session(
        identity, trust_anchor_arn=..., profile_arn=..., role_arn=..., region_name="eu-west-1"
    )
    session.client("s3").list_buckets()

- :func:`boto3_session` / :func:`botocore_session`: a new session.
- :func:`attach`: the same credentials on a boto3 or botocore session you already have.
- :func:`credential_provider`: a botocore ``CredentialProvider`` for your own resolver chain.
- :func:`botocore_credentials`: the adapter itself, around any ``RefreshingCredentials``.

``identity`` and the keyword arguments are those of ``RolesAnywhereClient`` (``region``,
``duration_seconds``, ``endpoint``, ``timeout``, ``verify``, ``retry``…); ``clock`` goes to
``RefreshingCredentials``. boto3 and botocore are imported only when one of these is called.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.session.arn import Arn
from rolesanywhere.session.refresh import RefreshingCredentials

if TYPE_CHECKING:
    from rolesanywhere.credentials import Credentials
    from rolesanywhere.session.client import IdentitySource
    from rolesanywhere.x509.identity import Identity

__all__ = [
    "CANONICAL_NAME",
    "METHOD",
    "attach",
    "boto3_session",
    "botocore_credentials",
    "botocore_session",
    "credential_provider",
]

#: The provider's ``METHOD``: what ``session.get_credentials().method`` says.
METHOD = "iam-roles-anywhere"
#: The provider's ``CANONICAL_NAME`` (botocore wants ``custom`` in front of non-botocore names).
CANONICAL_NAME = "custom-rolesanywhere"

_INSTALL = "pip install 'rolesanywhere[boto3]'"


def _import_botocore() -> Any:
    try:
        import botocore.credentials
        import botocore.session
    except ImportError as exc:  # pragma: no cover (botocore is in the test extra)
        raise ImportError(f"rolesanywhere's botocore support needs botocore: {_INSTALL}") from exc
    return botocore


@functools.cache
def _classes() -> tuple[type[Any], type[Any]]:
    """The botocore ``Credentials`` and ``CredentialProvider`` subclasses, built on first use so
    that botocore is imported only then."""
    botocore = _import_botocore()
    base_credentials = botocore.credentials.Credentials
    base_provider = botocore.credentials.CredentialProvider
    frozen = botocore.credentials.ReadOnlyCredentials

    class RolesAnywhereBotoCredentials(base_credentials):  # type: ignore[misc,valid-type]
        """botocore credentials read from a ``RefreshingCredentials`` on every use.

        botocore's signers take :meth:`get_frozen_credentials` once per request, so the access
        key, secret and token of one request always belong together; the properties are for
        code that reads them one at a time (``SigV4Auth(credentials, ...)``).
        """

        def __init__(self, refreshing: RefreshingCredentials, account_id: str | None) -> None:
            # botocore's __init__ would store fixed values in the attributes that are
            # properties here: not called on purpose.
            self.refreshing = refreshing
            self.method = METHOD
            self._account_id = account_id

        def _current(self) -> Credentials:
            return self.refreshing.get()

        @property
        def access_key(self) -> str:
            return self._current().access_key_id

        @property
        def secret_key(self) -> str:
            return self._current().secret_access_key

        @property
        def token(self) -> str | None:
            return self._current().session_token

        @property
        def account_id(self) -> str | None:
            return self._account_id

        def get_frozen_credentials(self) -> Any:
            current = self._current()
            values = (
                current.access_key_id,
                current.secret_access_key,
                current.session_token,
                self._account_id,
            )
            return frozen(*values[: len(frozen._fields)])  # no account_id before botocore 1.36

        def __repr__(self) -> str:
            return f"RolesAnywhereBotoCredentials({self.refreshing!r})"

    class RolesAnywhereCredentialProvider(base_provider):  # type: ignore[misc,valid-type]
        """A botocore credential provider handing out one set of refreshing credentials."""

        METHOD = METHOD
        CANONICAL_NAME = CANONICAL_NAME

        def __init__(self, credentials: Any) -> None:
            super().__init__()
            self.credentials = credentials

        def load(self) -> Any:
            return self.credentials

    return RolesAnywhereBotoCredentials, RolesAnywhereCredentialProvider


def botocore_credentials(
    refreshing: RefreshingCredentials, *, account_id: str | None = None
) -> Any:
    """A ``botocore.credentials.Credentials`` whose values come from ``refreshing`` on each use.

    ``account_id`` (the role's account) is what botocore's account-based endpoints read; its
    ``.refreshing`` attribute is ``refreshing`` (counters, :meth:`~RefreshingCredentials.close`).
    """
    if not isinstance(refreshing, RefreshingCredentials):
        raise InvalidParameterError(
            f"botocore_credentials needs a RefreshingCredentials, not {type(refreshing).__name__}"
        )
    credentials_class, _ = _classes()
    return credentials_class(refreshing, account_id)


def _refreshing(
    identity: Identity | IdentitySource,
    *,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    clock: Callable[[], datetime] | None,
    options: dict[str, Any],
) -> tuple[Any, str]:
    """The botocore credentials for a new client, and the Roles Anywhere region."""
    from rolesanywhere.retry import LONG_RUNNING
    from rolesanywhere.session.client import RolesAnywhereClient

    client = RolesAnywhereClient(
        identity,
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        **{"retry": LONG_RUNNING, **options},
    )
    refreshing = RefreshingCredentials(client, clock=clock, close_source=True)
    account = Arn.parse(client.config.params.role_arn, what="role ARN").account
    return botocore_credentials(
        refreshing, account_id=account
    ), client.config.params.resolved_region


def credential_provider(
    identity: Identity | IdentitySource,
    *,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> Any:
    """A botocore ``CredentialProvider`` (``METHOD`` :data:`METHOD`) whose ``load()`` returns the
    refreshing credentials: insert it into a resolver chain of your own
    (``session.get_component("credential_provider").providers.insert(0, provider)``)."""
    credentials, _ = _refreshing(
        identity,
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        clock=clock,
        options=options,
    )
    _, provider_class = _classes()
    return provider_class(credentials)


def _botocore_of(session: Any) -> Any:
    """The botocore session behind a boto3 or botocore session."""
    botocore = _import_botocore()
    if isinstance(session, botocore.session.Session):
        return session
    inner = getattr(session, "_session", None)  # boto3.Session keeps its botocore session here
    if isinstance(inner, botocore.session.Session):
        return inner
    raise InvalidParameterError(
        f"attach needs a boto3.Session or a botocore.session.Session, not {type(session).__name__}"
    )


def _install(session: Any, provider: Any, region_name: str | None, region: str) -> None:
    """Make ``provider``'s credentials the botocore ``session``'s; set its region."""
    session.get_component("credential_provider").providers.insert(0, provider)
    # get_credentials() caches what the resolver found first: replace what may be cached.
    session._credentials = provider.load()
    if region_name is not None:
        session.set_config_variable("region", region_name)
    elif session.get_config_variable("region") is None:
        session.set_config_variable("region", region)


def attach(
    session: Any,
    identity: Identity | IdentitySource,
    *,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    region_name: str | None = None,
    clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> Any:
    """Give an existing boto3 or botocore ``session`` Roles Anywhere credentials; returns it.

    Clients created from it afterwards sign with the refreshing credentials (clients created
    before keep the credentials they were given). ``region_name`` sets the session's region;
    without it, a session with no region configured gets the Roles Anywhere region.
    """
    inner = _botocore_of(session)
    credentials, region = _refreshing(
        identity,
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        clock=clock,
        options=options,
    )
    _, provider_class = _classes()
    _install(inner, provider_class(credentials), region_name, region)
    return session


def botocore_session(
    identity: Identity | IdentitySource,
    *,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    region_name: str | None = None,
    clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> Any:
    """A new ``botocore.session.Session`` with Roles Anywhere credentials (see :func:`attach`)."""
    botocore = _import_botocore()
    return attach(
        botocore.session.get_session(),
        identity,
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        region_name=region_name,
        clock=clock,
        **options,
    )


def boto3_session(
    identity: Identity | IdentitySource,
    *,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    region_name: str | None = None,
    clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> Any:
    """A new ``boto3.Session`` with Roles Anywhere credentials (needs the ``boto3`` extra).

    ``region_name`` is the session's region for the services you call; without it, boto3's
    configuration decides, and the Roles Anywhere region is used when nothing is configured.
    """
    try:
        import boto3
    except ImportError as exc:
        raise ImportError(f"rolesanywhere.boto3_session needs boto3: {_INSTALL}") from exc
    inner = botocore_session(
        identity,
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        region_name=region_name,
        clock=clock,
        **options,
    )
    return boto3.Session(botocore_session=inner)
