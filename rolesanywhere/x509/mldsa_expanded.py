"""ML-DSA (FIPS 204) signing with an expanded private key, in pure Python.

cryptography builds ML-DSA keys only from their 32-byte seed; a PKCS#8 file that holds only the
expanded key (FIPS 204 ``skEncode``: ``rho``, ``K``, ``tr``, ``s1``, ``s2``, ``t0``) is signed with
here. Written from FIPS 204: ``skDecode``, ``ExpandA``, ``ExpandMask``, ``SampleInBall``, the NTT
and its inverse, ``Power2Round``, ``Decompose``/``HighBits``/``LowBits``, ``MakeHint``,
``sigEncode`` and Algorithm 7 (``ML-DSA.Sign_internal``), for ML-DSA-44, -65 and -87. Only
:mod:`hashlib`'s SHAKE128 and SHAKE256 are used.

:func:`prepare` decodes a key once (``ExpandA`` and the NTTs of ``s1``, ``s2`` and ``t0`` are
kept in the returned :class:`ExpandedKey`), recomputes its public key ``rho || t1`` from
``t = A·s1 + s2`` and refuses a key whose ``tr`` or ``t0`` do not match it. :func:`sign` is pure
ML-DSA with an empty context (``M' = 0x00 || 0x00 || M``, Algorithm 2), hedged with 32 random
bytes, or deterministic with ``rnd=bytes(32)``.

Polynomials are lists of 256 ints; vectors are lists of polynomials. Nothing here is
constant-time: Python cannot promise that.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

__all__ = [
    "PARAMETERS",
    "ExpandedKey",
    "Parameters",
    "bit_pack",
    "bit_unpack",
    "decompose",
    "decompose_poly",
    "high_bits",
    "low_bits",
    "make_hint",
    "ntt",
    "ntt_inverse",
    "power2round",
    "prepare",
    "sign",
    "sign_internal",
    "simple_bit_pack",
    "simple_bit_unpack",
]

Q = 8380417
D = 13
N = 256
_HALF_Q = Q // 2
_N_INV = pow(N, -1, Q)  # 8347681
_T1_BITS = (Q - 1).bit_length() - D  # 10


class Parameters(NamedTuple):
    """One FIPS 204 parameter set (Table 1)."""

    name: str
    k: int
    l: int  # noqa: E741 (FIPS 204's name)
    eta: int
    tau: int
    lam: int
    gamma1: int
    gamma2: int
    omega: int

    @property
    def beta(self) -> int:
        return self.tau * self.eta

    @property
    def eta_bits(self) -> int:
        return (2 * self.eta).bit_length()

    @property
    def z_bits(self) -> int:
        return (2 * self.gamma1 - 1).bit_length()

    @property
    def w1_bits(self) -> int:
        return ((Q - 1) // (2 * self.gamma2) - 1).bit_length()

    @property
    def private_key_size(self) -> int:
        return 128 + 32 * ((self.k + self.l) * self.eta_bits + D * self.k)

    @property
    def signature_size(self) -> int:
        return self.lam // 4 + self.l * 32 * self.z_bits + self.omega + self.k


PARAMETERS: dict[str, Parameters] = {
    "ML-DSA-44": Parameters("ML-DSA-44", 4, 4, 2, 39, 128, 1 << 17, (Q - 1) // 88, 80),
    "ML-DSA-65": Parameters("ML-DSA-65", 6, 5, 4, 49, 192, 1 << 19, (Q - 1) // 32, 55),
    "ML-DSA-87": Parameters("ML-DSA-87", 8, 7, 2, 60, 256, 1 << 19, (Q - 1) // 32, 75),
}

# --- NTT (Algorithms 41, 42) --------------------------------------------------------------------


def _bit_reverse8(i: int) -> int:
    return int(f"{i:08b}"[::-1], 2)


#: zeta^brv8(k) mod q, zeta = 1753 (Appendix B).
ZETAS: tuple[int, ...] = tuple(pow(1753, _bit_reverse8(k), Q) for k in range(N))
# Per layer (half-block length ``length``): the zetas of its blocks, forward and inverse.
_LAYERS = tuple(1 << s for s in range(7, -1, -1))  # 128, 64, ..., 1
_FORWARD = {n: ZETAS[128 // n : 256 // n] for n in _LAYERS}
_INVERSE = {n: tuple(-ZETAS[256 // n - 1 - b] % Q for b in range(128 // n)) for n in _LAYERS}


def _layer(w: list[int], length: int, zetas: tuple[int, ...], inverse: bool) -> None:
    """One butterfly layer in place, over contiguous slices (few blocks) or strided ones (many
    short blocks), so each Python-level loop runs at most 16 times per layer."""
    step = 2 * length
    if length >= len(zetas):
        for b, z in enumerate(zetas):
            s = b * step
            lo, hi = w[s : s + length], w[s + length : s + step]
            if inverse:
                w[s : s + length] = [a + c for a, c in zip(lo, hi, strict=True)]
                w[s + length : s + step] = [z * (a - c) % Q for a, c in zip(lo, hi, strict=True)]
            else:
                t = [z * c % Q for c in hi]
                w[s : s + length] = [a + c for a, c in zip(lo, t, strict=True)]
                w[s + length : s + step] = [a - c for a, c in zip(lo, t, strict=True)]
        return
    for j in range(length):
        lo, hi = w[j::step], w[j + length :: step]
        if inverse:
            w[j::step] = [a + c for a, c in zip(lo, hi, strict=True)]
            w[j + length :: step] = [z * (a - c) % Q for z, a, c in zip(zetas, lo, hi, strict=True)]
        else:
            t = [z * c % Q for z, c in zip(zetas, hi, strict=True)]
            w[j::step] = [a + c for a, c in zip(lo, t, strict=True)]
            w[j + length :: step] = [a - c for a, c in zip(lo, t, strict=True)]


def ntt(poly: list[int]) -> list[int]:
    """NTT(w) (Algorithm 41); any integer coefficients in, coefficients mod q out."""
    w = list(poly)
    for length in _LAYERS:
        _layer(w, length, _FORWARD[length], inverse=False)
    return [x % Q for x in w]


def ntt_inverse(poly: list[int]) -> list[int]:
    """NTT^-1(w) (Algorithm 42); coefficients mod q out."""
    w = list(poly)
    for length in reversed(_LAYERS):
        _layer(w, length, _INVERSE[length], inverse=True)
    return [_N_INV * x % Q for x in w]


def _multiply(a: list[int], b: list[int]) -> list[int]:
    return [x * y % Q for x, y in zip(a, b, strict=True)]


def _matrix_times(a_hat: list[list[list[int]]], v_hat: list[list[int]]) -> list[list[int]]:
    """A·v in the NTT domain, reduced mod q."""
    out = []
    for row in a_hat:
        acc = [0] * N
        for a, v in zip(row, v_hat, strict=True):
            acc = [s + x * y for s, x, y in zip(acc, a, v, strict=True)]
        out.append([s % Q for s in acc])
    return out


# --- rounding (Algorithms 35-39) ----------------------------------------------------------------


def _mod_pm(r: int, alpha: int) -> int:
    """r mod± alpha, in (-alpha/2, alpha/2] for an even alpha."""
    r %= alpha
    return r - alpha if r > alpha // 2 else r


def power2round(r: int) -> tuple[int, int]:
    """(r1, r0) with r = r1·2^d + r0 mod q (Algorithm 35)."""
    r %= Q
    r0 = _mod_pm(r, 1 << D)
    return (r - r0) >> D, r0


def decompose(r: int, gamma2: int) -> tuple[int, int]:
    """(r1, r0) with r = r1·2·gamma2 + r0 mod q (Algorithm 36)."""
    r %= Q
    r0 = _mod_pm(r, 2 * gamma2)
    if r - r0 == Q - 1:
        return 0, r0 - 1
    return (r - r0) // (2 * gamma2), r0


def high_bits(r: int, gamma2: int) -> int:
    return decompose(r, gamma2)[0]


def low_bits(r: int, gamma2: int) -> int:
    return decompose(r, gamma2)[1]


def make_hint(z: int, r: int, gamma2: int) -> bool:
    """Whether adding z to r changes its high bits (Algorithm 39)."""
    return high_bits(r, gamma2) != high_bits(r + z, gamma2)


def _center(poly: list[int]) -> list[int]:
    """Each coefficient mod± q."""
    return [x - Q if x > _HALF_Q else x for x in (c % Q for c in poly)]


def _norm_at_least(vector: list[list[int]], bound: int) -> bool:
    """Whether ||v||∞ >= bound, for centered coefficients."""
    return any(c >= bound or -c >= bound for poly in vector for c in poly)


# --- bit packing (Algorithms 16-21) -------------------------------------------------------------


def simple_bit_pack(w: list[int], bits: int) -> bytes:
    """Coefficients in [0, 2^bits), ``bits`` each, little-endian."""
    acc = 0
    for c in reversed(w):
        acc = (acc << bits) | c
    return acc.to_bytes(len(w) * bits // 8, "little")


def simple_bit_unpack(data: bytes, bits: int) -> list[int]:
    acc, mask = int.from_bytes(data, "little"), (1 << bits) - 1
    return [(acc >> (bits * i)) & mask for i in range(len(data) * 8 // bits)]


def bit_pack(w: list[int], a: int, b: int) -> bytes:
    """Coefficients in [-a, b], stored as b - w_i in bitlen(a + b) bits."""
    return simple_bit_pack([b - c for c in w], (a + b).bit_length())


def bit_unpack(data: bytes, a: int, b: int) -> list[int]:
    return [b - c for c in simple_bit_unpack(data, (a + b).bit_length())]


def _hint_bit_pack(h: list[list[bool]], omega: int) -> bytes:
    """HintBitPack (Algorithm 20): positions of the ones, then a running count per polynomial."""
    out = bytearray(omega + len(h))
    index = 0
    for i, poly in enumerate(h):
        for j, bit in enumerate(poly):
            if bit:
                out[index] = j
                index += 1
        out[omega + i] = index
    return bytes(out)


def _split(data: bytes, count: int, size: int) -> list[bytes]:
    return [data[i * size : (i + 1) * size] for i in range(count)]


# --- sampling (Algorithms 29-34) ----------------------------------------------------------------


def _rej_ntt_poly(seed: bytes) -> list[int]:
    """RejNTTPoly (Algorithm 30): uniform coefficients mod q from SHAKE128, in the NTT domain."""
    size = 3 * N + 84
    while True:
        stream = hashlib.shake_128(seed).digest(size)
        coeffs = [
            v
            for v in (
                int.from_bytes(stream[i : i + 3], "little") & 0x7FFFFF for i in range(0, size, 3)
            )
            if v < Q
        ]
        if len(coeffs) >= N:
            return coeffs[:N]
        size *= 2


def expand_a(rho: bytes, k: int, l: int) -> list[list[list[int]]]:  # noqa: E741
    """ExpandA (Algorithm 32): the k×l matrix Â from rho."""
    return [[_rej_ntt_poly(rho + bytes([s, r])) for s in range(l)] for r in range(k)]


def expand_mask(rho2: bytes, kappa: int, params: Parameters) -> list[list[int]]:
    """ExpandMask (Algorithm 34): y with coefficients in (-gamma1, gamma1]."""
    size = 32 * params.z_bits
    return [
        bit_unpack(
            hashlib.shake_256(rho2 + (kappa + r).to_bytes(2, "little")).digest(size),
            params.gamma1 - 1,
            params.gamma1,
        )
        for r in range(params.l)
    ]


def sample_in_ball(c_tilde: bytes, tau: int) -> list[int]:
    """SampleInBall (Algorithm 29): tau coefficients ±1, the rest 0."""
    size = 8 + 2 * 136
    stream = hashlib.shake_256(c_tilde).digest(size)
    signs = int.from_bytes(stream[:8], "little")
    pos = 8
    c = [0] * N
    for i in range(N - tau, N):
        while True:
            if pos >= size:
                size *= 2
                stream = hashlib.shake_256(c_tilde).digest(size)
            j = stream[pos]
            pos += 1
            if j <= i:
                break
        c[i] = c[j]
        c[j] = -1 if (signs >> (i + tau - N)) & 1 else 1
    return c


# --- keys ---------------------------------------------------------------------------------------


class ExpandedKey:
    """A decoded expanded private key, with what every signature reuses: Â and the NTTs of s1,
    s2 and t0. ``public_key`` is ``pkEncode(rho, t1)``, recomputed from the private key."""

    __slots__ = ("params", "rho", "key", "tr", "a_hat", "s1_hat", "s2_hat", "t0_hat", "public_key")

    def __init__(
        self,
        params: Parameters,
        rho: bytes,
        key: bytes,
        tr: bytes,
        a_hat: list[list[list[int]]],
        s1_hat: list[list[int]],
        s2_hat: list[list[int]],
        t0_hat: list[list[int]],
        public_key: bytes,
    ) -> None:
        self.params, self.rho, self.key, self.tr = params, rho, key, tr
        self.a_hat, self.s1_hat, self.s2_hat, self.t0_hat = a_hat, s1_hat, s2_hat, t0_hat
        self.public_key = public_key

    def __repr__(self) -> str:
        return f"ExpandedKey({self.params.name}, <redacted>)"


def decode_private_key(
    params: Parameters, sk: bytes
) -> tuple[bytes, bytes, bytes, list[list[int]], list[list[int]], list[list[int]]]:
    """skDecode (Algorithm 25): (rho, K, tr, s1, s2, t0). :class:`ValueError` for a wrong
    size or an s1/s2 coefficient outside [-eta, eta]."""
    if len(sk) != params.private_key_size:
        raise ValueError(f"{params.name} expanded key of {len(sk)} bytes")
    rho, key, tr = sk[:32], sk[32:64], sk[64:128]
    eta_size = 32 * params.eta_bits
    pos = 128
    s1_bytes = _split(sk[pos:], params.l, eta_size)
    pos += params.l * eta_size
    s2_bytes = _split(sk[pos:], params.k, eta_size)
    pos += params.k * eta_size
    t0_bytes = _split(sk[pos:], params.k, 32 * D)
    eta = params.eta
    s1 = [bit_unpack(b, eta, eta) for b in s1_bytes]
    s2 = [bit_unpack(b, eta, eta) for b in s2_bytes]
    if _norm_at_least(s1 + s2, eta + 1):
        raise ValueError("s1 or s2 out of range")
    half = 1 << (D - 1)
    t0 = [bit_unpack(b, half - 1, half) for b in t0_bytes]
    return rho, key, tr, s1, s2, t0


def public_key_bytes(rho: bytes, t1: list[list[int]]) -> bytes:
    """pkEncode (Algorithm 22)."""
    return rho + b"".join(simple_bit_pack(p, _T1_BITS) for p in t1)


def prepare(parameter_set: str, sk: bytes) -> ExpandedKey:
    """Decode ``sk`` once for signing; :class:`ValueError` (no key material in the message)
    when it is not a consistent key: t = A·s1 + s2 must give back its t0 and, through its public
    key, its tr = H(pk, 64)."""
    params = PARAMETERS[parameter_set]
    rho, key, tr, s1, s2, t0 = decode_private_key(params, sk)
    a_hat = expand_a(rho, params.k, params.l)
    s1_hat = [ntt(p) for p in s1]
    t = [
        [a + b for a, b in zip(ntt_inverse(p), s, strict=True)]
        for p, s in zip(_matrix_times(a_hat, s1_hat), s2, strict=True)
    ]
    rounded = [[power2round(c) for c in p] for p in t]
    t1 = [[r1 for r1, _ in p] for p in rounded]
    public = public_key_bytes(rho, t1)
    if hashlib.shake_256(public).digest(64) != tr:
        raise ValueError("tr is not the hash of the public key s1 and s2 give")
    if [[r0 for _, r0 in p] for p in rounded] != t0:
        raise ValueError("t0 is not the one s1 and s2 give")
    return ExpandedKey(
        params,
        rho,
        key,
        tr,
        a_hat,
        s1_hat,
        [ntt(p) for p in s2],
        [ntt(p) for p in t0],
        public,
    )


# --- signing (Algorithms 2 and 7) ---------------------------------------------------------------


def decompose_poly(poly: list[int], gamma2: int) -> tuple[list[int], list[int]]:
    """:func:`decompose` of each coefficient (in [0, q)) of ``poly``, without a call each:
    r1 is the a with r - a·2·gamma2 in (-gamma2, gamma2], wrapped to 0 at (q - 1)/(2·gamma2)."""
    two, top = 2 * gamma2, (Q - 1) // (2 * gamma2)
    raw = [(r + gamma2 - 1) // two for r in poly]
    return (
        [a % top for a in raw],
        [r - a * two - (a == top) for r, a in zip(poly, raw, strict=True)],
    )


def sign_internal(key: ExpandedKey, message: bytes, rnd: bytes) -> bytes:
    """ML-DSA.Sign_internal (Algorithm 7) over the formatted message M'."""
    p = key.params
    gamma2 = p.gamma2
    mu = hashlib.shake_256(key.tr + message).digest(64)
    rho2 = hashlib.shake_256(key.key + rnd + mu).digest(64)
    kappa = 0
    while True:
        y = expand_mask(rho2, kappa, p)
        kappa += p.l
        w = [ntt_inverse(v) for v in _matrix_times(key.a_hat, [ntt(v) for v in y])]
        w1 = [decompose_poly(v, gamma2)[0] for v in w]
        c_tilde = hashlib.shake_256(
            mu + b"".join(simple_bit_pack(v, p.w1_bits) for v in w1)
        ).digest(p.lam // 4)
        c_hat = ntt(sample_in_ball(c_tilde, p.tau))
        z = [
            _center([a + b for a, b in zip(yv, ntt_inverse(_multiply(c_hat, s)), strict=True)])
            for yv, s in zip(y, key.s1_hat, strict=True)
        ]
        if _norm_at_least(z, p.gamma1 - p.beta):
            continue
        r = [  # w - c·s2, mod q
            [(a - b) % Q for a, b in zip(wv, ntt_inverse(_multiply(c_hat, s)), strict=True)]
            for wv, s in zip(w, key.s2_hat, strict=True)
        ]
        r1, r0 = zip(*(decompose_poly(v, gamma2) for v in r), strict=True)
        if _norm_at_least(list(r0), gamma2 - p.beta):
            continue
        ct0 = [_center(ntt_inverse(_multiply(c_hat, t))) for t in key.t0_hat]
        if _norm_at_least(ct0, gamma2):
            continue
        # MakeHint(-ct0, w - cs2 + ct0): do the high bits of w - cs2 + ct0 differ from r1's?
        h = [
            [
                a != b
                for a, b in zip(
                    r1v,
                    decompose_poly([(a + b) % Q for a, b in zip(rv, cv, strict=True)], gamma2)[0],
                    strict=True,
                )
            ]
            for r1v, rv, cv in zip(r1, r, ct0, strict=True)
        ]
        if sum(map(sum, h)) > p.omega:
            continue
        packed_z = b"".join(bit_pack(v, p.gamma1 - 1, p.gamma1) for v in z)
        return c_tilde + packed_z + _hint_bit_pack(h, p.omega)


def sign(key: ExpandedKey, message: bytes, *, rnd: bytes | None = None) -> bytes:
    """Pure ML-DSA over ``message`` with an empty context (Algorithm 2). Hedged with 32 fresh
    random bytes; ``rnd=bytes(32)`` gives the deterministic variant."""
    if rnd is None:
        rnd = os.urandom(32)
    if len(rnd) != 32:
        raise ValueError("rnd must be 32 bytes")
    return sign_internal(key, b"\x00\x00" + message, rnd)
