"""pytest fixtures for offline Roles Anywhere tests (registered as a ``pytest11`` plugin).

- ``rolesanywhere_pki``: a session-wide :class:`~rolesanywhere.testing.pki.PKI`.
- ``rolesanywhere_ca_bundle``: path of a PEM file with that PKI's root (``verify=`` for TLS).
- ``rolesanywhere_emulator``: a started plain-HTTP emulator trusting the PKI, with
  ``trust_anchor_arn``, ``profile_arn`` and ``role_arn``; stopped after the test.
- ``rolesanywhere_tls_emulator``: the same over HTTPS; its ``ca_bundle`` is the CA bundle path.

Loaded in every pytest run where the package is installed, so nothing heavy is imported here:
the PKI and the emulator are imported inside the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.pki import PKI

__all__ = [
    "rolesanywhere_ca_bundle",
    "rolesanywhere_emulator",
    "rolesanywhere_pki",
    "rolesanywhere_tls_emulator",
]


@pytest.fixture(scope="session")
def rolesanywhere_pki() -> PKI:
    """A root CA and an intermediate CA (EC P-256) issuing test leaves, for the whole session."""
    from rolesanywhere.testing.pki import PKI

    return PKI(name="rolesanywhere pytest")


@pytest.fixture(scope="session")
def rolesanywhere_ca_bundle(
    rolesanywhere_pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Path of a PEM file holding the PKI's root: pass it as ``verify=`` to HTTPS clients."""
    path = tmp_path_factory.mktemp("rolesanywhere-ca") / "ca.pem"
    path.write_bytes(rolesanywhere_pki.trust_anchor_pem())
    return str(path)


@pytest.fixture
def rolesanywhere_emulator(rolesanywhere_pki: PKI) -> Iterator[RolesAnywhereEmulator]:
    """A started plain-HTTP emulator trusting the PKI's root, with one role and one profile."""
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator

    with RolesAnywhereEmulator.for_pki(rolesanywhere_pki) as emulator:
        yield emulator


@pytest.fixture
def rolesanywhere_tls_emulator(
    rolesanywhere_pki: PKI, rolesanywhere_ca_bundle: str
) -> Iterator[RolesAnywhereEmulator]:
    """Like ``rolesanywhere_emulator`` over HTTPS; ``.ca_bundle`` verifies its certificate."""
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator

    emulator = RolesAnywhereEmulator.for_pki(rolesanywhere_pki, tls=True)
    emulator.ca_bundle = rolesanywhere_ca_bundle
    with emulator:
        yield emulator


# --- OpenSearch Ingestion emulator (rolesanywhere.testing.osis) ----------------------------------
#
# - ``rolesanywhere_osis``: a started plain-HTTP OSIS pipeline endpoint (path ``/log/ingest``,
#   region ``us-east-1``) verifying SigV4 against ``rolesanywhere_emulator``'s issued credentials,
#   storing into an in-memory SQLite database; closed after the test.
# - ``rolesanywhere_tls_osis``: the same over HTTPS (``pki.server_cert()``); ``.ca_bundle`` is
#   the CA bundle path.

if TYPE_CHECKING:
    from rolesanywhere.testing.osis import OsisEmulator

__all__ += ["rolesanywhere_osis", "rolesanywhere_tls_osis"]


@pytest.fixture
def rolesanywhere_osis(
    rolesanywhere_emulator: RolesAnywhereEmulator,
) -> Iterator[OsisEmulator]:
    """A started OSIS endpoint checking signatures against ``rolesanywhere_emulator``."""
    from rolesanywhere.testing.osis import OsisEmulator

    with OsisEmulator(
        credentials=rolesanywhere_emulator, region=rolesanywhere_emulator.region
    ) as osis:
        yield osis


@pytest.fixture
def rolesanywhere_tls_osis(
    rolesanywhere_pki: PKI,
    rolesanywhere_ca_bundle: str,
    rolesanywhere_emulator: RolesAnywhereEmulator,
) -> Iterator[OsisEmulator]:
    """Like ``rolesanywhere_osis`` over HTTPS; ``.ca_bundle`` verifies its certificate."""
    from rolesanywhere.testing.osis import OsisEmulator

    osis = OsisEmulator(
        credentials=rolesanywhere_emulator,
        region=rolesanywhere_emulator.region,
        tls=rolesanywhere_pki.server_cert(),
    )
    osis.ca_bundle = rolesanywhere_ca_bundle
    osis.tls_ca_pem = rolesanywhere_pki.trust_anchor_pem()
    with osis:
        yield osis
