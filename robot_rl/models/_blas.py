"""torch's own single-precision GEMM (MKL's ``sgemm_`` in ``libtorch_cpu``), callable from numba kernels.

The explicit TD3 update (:mod:`robot_rl.algorithms._td3_kernels`) runs a whole critic or actor step in one
compiled call; its matrix products must stay BLAS-fast (a numba loop GEMM reached ~13 GFLOP/s here against MKL's
~65-150) and cost no torch dispatch. torch's CPU wheels link MKL statically and export its Fortran ``sgemm_``; the
symbol is registered with LLVM by name, so the kernels calling it stay cacheable. The same routine torch's
``mm``/``bmm`` call: the products are torch's, bit for bit (tested). Where the symbol is absent (a torch built
without MKL) :data:`AVAILABLE` is False and the explicit update does not apply (the fused TD3 then runs its
autograd nodes; ``td3_explicit.applies``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llvmlite.binding as ll
import numpy as np
import torch
from numba import njit, types


def _find_sgemm() -> int | None:
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return ctypes.cast(lib.sgemm_, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


_ADDRESS = _find_sgemm()
AVAILABLE = _ADDRESS is not None
if AVAILABLE:
    ll.add_symbol("sgemm_", _ADDRESS)
_vp = types.voidptr
_sgemm = types.ExternalFunction("sgemm_", types.void(*([_vp] * 13)))
_N, _T = np.uint8(78), np.uint8(84)  # 'N', 'T'


def scratch() -> np.ndarray:
    """The by-reference argument block :func:`mm` fills (one per caller; not shared between threads)."""
    return np.zeros(9, np.int32)


@njit(cache=True)
def mm(a, ta, b, tb, c, beta, s):
    """``c <- op(a) @ op(b) + beta c`` on row-major float32 2-D arrays whose rows may be strided (unit stride
    within a row): ``op(x)`` is ``x.T`` when ``ta``/``tb``. ``s``: a :func:`scratch` block. Row-major ``C = A B``
    is column-major ``C^T = B^T A^T``, so the operands go to ``sgemm_`` swapped."""
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    if m == 0 or n == 0:
        return
    s[0], s[1], s[2] = n, m, k
    s[3] = max(b.strides[0] // 4, b.shape[1], 1)
    s[4] = max(a.strides[0] // 4, a.shape[1], 1)
    s[5] = max(c.strides[0] // 4, c.shape[1], 1)
    f = s[6:8].view(np.float32)
    f[0], f[1] = 1.0, beta
    flags = s[8:9].view(np.uint8)
    flags[0] = _T if tb else _N
    flags[1] = _T if ta else _N
    p = s.ctypes.data
    _sgemm(p + 32, p + 33, p, p + 4, p + 8, p + 24, b.ctypes.data, p + 12, a.ctypes.data, p + 16, p + 28,
           c.ctypes.data, p + 20)
