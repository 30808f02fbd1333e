"""The emulator verifies ML-DSA requests (AWS4-X509-MLDSA) like RSA and ECDSA ones."""

from __future__ import annotations

import httpx
import pytest

from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.keys import ALGORITHM_ECDSA, ALGORITHM_MLDSA
from rolesanywhere.x509.mldsa import ExpandedMLDSAPrivateKey, MLDSASigningKey
from tests import mldsa_keys as mk
from tests.testing.test_emulator import (
    DENIED,
    assert_error,
    credentials_of,
    identity,
    request_for,
    send,
    with_authorization,
)


def test_mldsa_signed_by_another_key(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf("ml-dsa-65")
    other = MLDSASigningKey.from_private_key(pki.leaf("ml-dsa-65").private_key)
    response = send(http, request_for(emu, identity(leaf, key=other)))
    assert_error(response, 403, DENIED, "Invalid signature")


def test_mldsa_signature_altered(emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI) -> None:
    leaf = pki.leaf("ml-dsa-44")
    key = MLDSASigningKey.from_private_key(leaf.private_key)
    request = request_for(emu, identity(leaf, key=key))
    authorization = request.header("Authorization") or ""
    altered = authorization[:-1] + ("0" if authorization[-1] != "0" else "1")
    assert_error(send(http, with_authorization(request, altered)), 403, DENIED, "Invalid signature")


def test_an_ecdsa_name_on_an_mldsa_key_is_refused(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf("ml-dsa-87")
    liar = MLDSASigningKey(leaf.private_key, ALGORITHM_ECDSA, "ML-DSA-87")  # type: ignore[arg-type]
    response = send(http, request_for(emu, identity(leaf, key=liar)))
    assert_error(
        response,
        403,
        DENIED,
        f"Signing algorithm {ALGORITHM_ECDSA} does not match the certificate's key "
        f"(expected {ALGORITHM_MLDSA})",
    )


def test_an_mldsa_name_on_an_ec_key_is_refused(
    emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf("ec-p256")
    request = request_for(emu, identity(leaf))
    authorization = (request.header("Authorization") or "").replace(
        "AWS4-X509-ECDSA-SHA256", ALGORITHM_MLDSA, 1
    )
    response = send(http, with_authorization(request, authorization))
    assert_error(
        response,
        403,
        DENIED,
        f"Signing algorithm {ALGORITHM_MLDSA} does not match the certificate's key "
        f"(expected {ALGORITHM_ECDSA})",
    )


def test_an_mldsa_ca_can_issue_mldsa_leaves() -> None:
    # Not only an EC or RSA CA: cryptography signs certificates with ML-DSA keys too.
    pki = PKI(key_type="ml-dsa-65", name="mldsa ca")
    leaf = pki.leaf("ml-dsa-44")
    leaf.certificate.verify_directly_issued_by(pki.intermediate.certificate)
    with RolesAnywhereEmulator.for_pki(pki) as emu, httpx.Client(timeout=10) as http:
        key = MLDSASigningKey.from_private_key(leaf.private_key)
        credentials_of(send(http, request_for(emu, identity(leaf, key=key))))


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_a_key_given_only_expanded_gets_credentials(
    parameter_set: str, emu: RolesAnywhereEmulator, http: httpx.Client, pki: PKI
) -> None:
    leaf = pki.leaf(private_key=mk.private_key(parameter_set))
    expanded = ExpandedMLDSAPrivateKey.from_expanded(
        parameter_set, mk.expanded(parameter_set), "key", "key"
    )
    key = MLDSASigningKey.from_private_key(expanded)
    credentials_of(send(http, request_for(emu, identity(leaf, key=key))))
    # and the key of another certificate is refused, as with any ML-DSA key
    other = pki.leaf(parameter_set.lower())
    response = send(http, request_for(emu, identity(other, key=key)))
    assert_error(response, 403, DENIED, "Invalid signature")
