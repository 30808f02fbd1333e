"""The pure-Python FIPS 204 pieces behind signing with an expanded ML-DSA key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rolesanywhere.x509 import mldsa_expanded as me
from tests import mldsa_keys as mk

Q = me.Q
polynomials = st.lists(st.integers(0, Q - 1), min_size=256, max_size=256)
small_polynomials = st.lists(st.integers(-4, 4), min_size=256, max_size=256)
gamma2s = st.sampled_from(sorted({p.gamma2 for p in me.PARAMETERS.values()}))


def negacyclic_product(a: list[int], b: list[int]) -> list[int]:
    """a·b in Z_q[X]/(X^256 + 1), the schoolbook way."""
    out = [0] * 256
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if i + j < 256:
                out[i + j] += x * y
            else:
                out[i + j - 256] -= x * y
    return [c % Q for c in out]


@given(polynomials)
def test_the_inverse_ntt_undoes_the_ntt(poly: list[int]) -> None:
    assert me.ntt_inverse(me.ntt(poly)) == poly
    assert me.ntt(me.ntt_inverse(poly)) == poly


@settings(max_examples=20)  # the schoolbook product is slow
@given(small_polynomials, polynomials)
def test_products_in_the_ntt_domain_are_ring_products(a: list[int], b: list[int]) -> None:
    product = [x * y % Q for x, y in zip(me.ntt(a), me.ntt(b), strict=True)]
    assert me.ntt_inverse(product) == negacyclic_product(a, b)


def test_the_zetas_are_fips_204s() -> None:
    # Appendix B: zetas[k] = 1753^brv8(k) mod q, 1753 a primitive 512th root of unity mod q.
    assert (me.ZETAS[0], me.ZETAS[1], me.ZETAS[2]) == (1, 4808194, 3765607)
    assert pow(1753, 256, Q) == Q - 1
    assert me.ZETAS[255] == pow(1753, 255, Q)


@given(st.integers(0, Q - 1), gamma2s)
def test_decompose_recomposes(r: int, gamma2: int) -> None:
    r1, r0 = me.decompose(r, gamma2)
    assert (r1 * 2 * gamma2 + r0) % Q == r
    assert -gamma2 <= r0 <= gamma2
    assert 0 <= r1 < (Q - 1) // (2 * gamma2)
    assert (me.high_bits(r, gamma2), me.low_bits(r, gamma2)) == (r1, r0)
    assert not me.make_hint(0, r, gamma2)


@given(polynomials, gamma2s)
def test_decompose_poly_is_decompose_of_each_coefficient(poly: list[int], gamma2: int) -> None:
    edges = [0, 1, gamma2, gamma2 + 1, Q - gamma2, Q - gamma2 - 1, Q - 2, Q - 1]
    poly = edges + poly[len(edges) :]
    pairs = [me.decompose(r, gamma2) for r in poly]
    assert me.decompose_poly(poly, gamma2) == ([a for a, _ in pairs], [b for _, b in pairs])


@given(st.integers(0, Q - 1), gamma2s)
def test_a_hint_says_whether_the_high_bits_moved(r: int, gamma2: int) -> None:
    z = gamma2 + 1  # always enough to move past the next boundary
    assert me.make_hint(z, r, gamma2) == (me.high_bits(r, gamma2) != me.high_bits(r + z, gamma2))


@given(st.integers(0, Q - 1))
def test_power2round_recomposes(r: int) -> None:
    r1, r0 = me.power2round(r)
    assert (r1 << me.D) + r0 == r
    assert -(1 << (me.D - 1)) < r0 <= 1 << (me.D - 1)
    assert 0 <= r1 < 1 << 10


@given(st.integers(1, 24), st.data())
def test_simple_bit_packing_round_trips(bits: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=256, max_size=256))
    packed = me.simple_bit_pack(values, bits)
    assert len(packed) == 32 * bits
    assert me.simple_bit_unpack(packed, bits) == values


@given(st.sampled_from([(2, 2), (4, 4), (4095, 4096), ((1 << 17) - 1, 1 << 17)]), st.data())
def test_bit_packing_round_trips(bounds: tuple[int, int], data: st.DataObject) -> None:
    a, b = bounds
    values = data.draw(st.lists(st.integers(-a, b), min_size=256, max_size=256))
    assert me.bit_unpack(me.bit_pack(values, a, b), a, b) == values


@given(st.binary(min_size=32, max_size=64), st.sampled_from([39, 49, 60]))
def test_sample_in_ball_sets_tau_signs(seed: bytes, tau: int) -> None:
    c = me.sample_in_ball(seed, tau)
    assert len(c) == 256
    assert sum(x != 0 for x in c) == tau
    assert set(c) <= {-1, 0, 1}


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_sizes_are_fips_204s(parameter_set: str) -> None:
    params = me.PARAMETERS[parameter_set]
    expected = {"ML-DSA-44": (2560, 2420), "ML-DSA-65": (4032, 3309), "ML-DSA-87": (4896, 4627)}
    assert (params.private_key_size, params.signature_size) == expected[parameter_set]
    assert len(mk.expanded(parameter_set)) == params.private_key_size


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_signatures_verify_with_cryptographys_key_of_the_seed(parameter_set: str) -> None:
    key = me.prepare(parameter_set, mk.expanded(parameter_set))
    public = mk.private_key(parameter_set).public_key()
    assert key.public_key == public.public_bytes_raw()
    assert "redacted" in repr(key) and key.key.hex() not in repr(key)
    signature = me.sign(key, b"to sign", rnd=bytes(32))
    assert len(signature) == key.params.signature_size
    assert me.sign(key, b"to sign", rnd=bytes(32)) == signature
    public.verify(signature, b"to sign")
    # pure ML-DSA with an empty context, over M' = 0 || 0 || M
    assert me.sign_internal(key, b"\x00\x00to sign", bytes(32)) == signature
    with pytest.raises(ValueError, match="32 bytes"):
        me.sign(key, b"to sign", rnd=bytes(31))


def test_a_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="ML-DSA-65 expanded key of 2560 bytes"):
        me.prepare("ML-DSA-65", mk.expanded("ML-DSA-44"))
