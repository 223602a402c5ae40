"""Counter-based random numbers for the fused simulator (numba, no shared state between envs).

Every random number is a pure function of ``(seed, env, event counter, draw index)``: env ``e`` has a 64-bit
key ``mix64(mix64(seed) + e * GAMMA)``; event ``c`` of that env (one observation-noise draw, one reset) starts
the SplitMix64 stream ``z = mix64(key + c * GAMMA)``, whose ``j``-th draw is ``mix64(z + j * GAMMA)``. Results
therefore do not depend on the number of threads or on which other envs finished.

Gaussians come from Marsaglia and Tsang's ziggurat (256 layers, 23-bit magnitude, separate sign bit, the same
scheme as NumPy's ``standard_normal(dtype=float32)``): exact apart from the finite resolution of its uniform
inputs, like Box-Muller, and about ten times cheaper because 99 % of the draws need no ``log``/``exp``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_MASK8, _MASK23, _ONE = np.uint64(0xFF), np.uint64(0x7FFFFF), np.uint64(1)
_SH8, _SH9, _SH11, _SH32, _SH40 = np.uint64(8), np.uint64(9), np.uint64(11), np.uint64(32), np.uint64(40)
#: First draw index of an event's ziggurat fall-back stream (fixed-position draws use smaller indices).
FALLBACK_BASE = 1 << 16


def _ziggurat_tables(n: int = 256, r: float = 3.6541528853610088, v: float = 0.00492867323399,
                     bits: int = 23) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer tables ``(k, w, f)`` of the normal ziggurat (Marsaglia & Tsang 2000, ``zigset``)."""
    m1 = float(2**bits)
    k = np.zeros(n, np.float64)
    w = np.zeros(n, np.float64)
    f = np.zeros(n, np.float64)
    dn = tn = r
    q = v / math.exp(-0.5 * dn * dn)
    k[0], k[1] = math.floor(dn / q * m1), 0.0
    w[0], w[n - 1] = q / m1, dn / m1
    f[0], f[n - 1] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(n - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = math.floor(dn / tn * m1)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m1
    return k.astype(np.uint32), w.astype(np.float32), f


ZIG_K, ZIG_W, ZIG_F = _ziggurat_tables()
ZIG_R = 3.6541528853610088


@njit(inline="always", cache=True, error_model="numpy")
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 output function (a bijective 64-bit hash)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True, error_model="numpy")
def env_key(seed_key: np.uint64, env: int) -> np.uint64:
    """Key of env ``env`` under the seed hash ``seed_key``."""
    return mix64(seed_key + np.uint64(env) * GAMMA)


@njit(inline="always", cache=True, error_model="numpy")
def event_stream(key: np.uint64, counter: np.uint64) -> np.uint64:
    """Start of the random stream of one event (counter value) of one env."""
    return mix64(key + counter * GAMMA)


@njit(inline="always", cache=True, error_model="numpy")
def draw(z: np.uint64, j: int) -> np.uint64:
    """The ``j``-th 64-bit draw of the stream ``z``."""
    return mix64(z + np.uint64(j) * GAMMA)


@njit(inline="always", cache=True, error_model="numpy")
def to_unit(r: np.uint64) -> float:
    """Uniform float64 in [0, 1) from the top 53 bits of ``r``."""
    return float(r >> _SH11) * (1.0 / 9007199254740992.0)


@njit(cache=True, error_model="numpy")
def _ziggurat_fallback(z: np.uint64, j: int, r32: np.uint64) -> tuple[float, int]:
    """Slow path of the ziggurat for the rejected 32-bit draw ``r32``; more draws come from ``z`` at ``j``."""
    while True:
        idx = int(r32 & _MASK8)
        rabs = r32 >> _SH9 & _MASK23
        x = float(rabs) * float(ZIG_W[idx])
        neg = (r32 >> _SH8) & _ONE
        if idx == 0:  # tail beyond ZIG_R (Marsaglia 1964)
            while True:
                xx = -math.log1p(-to_unit(draw(z, j))) / ZIG_R
                yy = -math.log1p(-to_unit(draw(z, j + 1)))
                j += 2
                if yy + yy > xx * xx:
                    x = ZIG_R + xx
                    return (-x if neg else x), j
        u = to_unit(draw(z, j))
        j += 1
        if (ZIG_F[idx - 1] - ZIG_F[idx]) * u + ZIG_F[idx] < math.exp(-0.5 * x * x):
            return (-x if neg else x), j
        r32 = draw(z, j) & np.uint64(0xFFFFFFFF)
        j += 1
        idx = int(r32 & _MASK8)
        rabs = r32 >> _SH9 & _MASK23
        if rabs < ZIG_K[idx]:
            x = float(rabs) * float(ZIG_W[idx])
            return (-x if (r32 >> _SH8) & _ONE else x), j


@njit(inline="always", cache=True, error_model="numpy")
def normal32(r32: np.uint64, z: np.uint64, j: int) -> tuple[np.float32, int]:
    """Standard normal from the low 32 bits ``r32``; fall-back draws come from stream ``z`` at index ``j``.

    Returns the sample and the next free fall-back index.
    """
    idx = int(r32 & _MASK8)
    rabs = r32 >> _SH9 & _MASK23
    if rabs < ZIG_K[idx]:
        x = np.float32(rabs) * ZIG_W[idx]
        return (-x if (r32 >> _SH8) & _ONE else x), j
    x64, j = _ziggurat_fallback(z, j, r32)
    return np.float32(x64), j


@njit(inline="always", cache=True, error_model="numpy")
def normal_pair(z: np.uint64, i: int, j: int) -> tuple[np.float32, np.float32, int]:
    """Two standard normals from draw ``i`` of stream ``z`` (one per 32-bit half); fall-backs at ``j``."""
    r = draw(z, i)
    a, j = normal32(r & np.uint64(0xFFFFFFFF), z, j)
    b, j = normal32(r >> _SH32, z, j)
    return a, b, j


@njit(cache=True, error_model="numpy")
def sample_normals(seed: int, n: int) -> np.ndarray:
    """``n`` (even) standard normals, 512 per event stream (for statistical tests of the generator)."""
    key = mix64(np.uint64(seed))
    out = np.empty(n, np.float32)
    for block in range(0, n // 2, 256):
        z = event_stream(key, np.uint64(block))
        j = FALLBACK_BASE
        for i in range(min(256, n // 2 - block)):
            a, b, j = normal_pair(z, i, j)
            out[2 * (block + i)] = a
            out[2 * (block + i) + 1] = b
    return out


@njit(cache=True, error_model="numpy")
def make_keys(seed: int, n: int) -> np.ndarray:
    """Per-env 64-bit keys for ``seed`` (any int; taken modulo 2**64)."""
    seed_key = mix64(np.uint64(seed) + GAMMA)
    keys = np.empty(n, np.uint64)
    for e in range(n):
        keys[e] = env_key(seed_key, e)
    return keys
