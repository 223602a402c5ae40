"""Acting with an :class:`~robot_rl.models.mlp.MLP` in one numba call (the off-policy collection step).

An off-policy run with one env (the L2F paper's TD3) evaluates the actor on a single row every env step. In
torch that is a dozen ops (three ``linear``, two activations, the output squash, the exploration noise scale,
add and clamp), each costing microseconds of dispatch for a few thousand multiply-adds. :class:`NumbaActor` runs
the whole forward pass plus the exploration noise in one compiled call on numpy views of the module's own weights
(no copy: optimizer steps, Polyak averaging and checkpoint loads all write in place and are seen at once); the
products are torch's own GEMM called from the kernel (:mod:`robot_rl.models._blas`).

Values equal ``mlp(x)`` up to float rounding (tanh: numpy's against torch's vectorised one). The noise is drawn
by the caller with torch (``torch.randn(..., generator=...)``), so the random stream is the plain path's, draw for draw.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from robot_rl.models import _blas
from robot_rl.models._blas import mm
from robot_rl.models._fast_tanh_kernels import fast_tanh_value_slope
from robot_rl.models.mlp import MLP

ACTIVATION_CODES = {"fast_tanh": 0, "tanh": 1, "relu": 2}
OUTPUT_CODES = {"identity": 0, "tanh": 1, "clip": 2}
SQUASHED_GAUSSIAN = 3
"""The output code of SAC's actor (its MLP outputs ``[mean, raw log-std]``): ``tanh(mean + noise exp(clamp(raw,
LOG_STD_MIN, LOG_STD_MAX)))`` exploring, ``tanh(mean)`` not (``SquashedGaussianActor.sample``'s order)."""
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""The clamp of a squashed Gaussian actor's log-std (SAC's)."""
_ONE, _ZERO = np.float32(1.0), np.float32(0.0)
_LO, _HI = np.float32(LOG_STD_MIN), np.float32(LOG_STD_MAX)


@njit(cache=True, error_model="numpy", inline="always")
def activate_slope(z, code):
    """A hidden activation of a float32 scalar and its derivative, as autograd computes them (fast tanh 0 in
    ``FastTanh``'s operation order, tanh 1 with slope ``1 - t^2``, relu 2 with slope ``z > 0``)."""
    if code == 0:
        return fast_tanh_value_slope(z)
    if code == 1:
        t = np.tanh(z)
        return t, _ONE - t * t
    return max(z, _ZERO), _ONE if z > _ZERO else _ZERO


@njit(cache=True, error_model="numpy", inline="always")
def activate(z, code):
    """One hidden activation of a float32 scalar (:func:`activate_slope`'s value; the slope is compiled out)."""
    return activate_slope(z, code)[0]


@njit(cache=True, error_model="numpy")
def _act(x, weights, biases, act_code, out_code, noise, scale, explore, out, s):
    """``out[r] = clamp(squash(mlp(x[r])) + noise[r] * scale)`` (no noise without ``explore``), or with
    :data:`SQUASHED_GAUSSIAN` SAC's sample from the first ``out.shape[1]`` outputs (means) and the rest (log-stds;
    ``scale`` unused); each layer's product is torch's own GEMM (``nn.Linear``'s), the bias is added after it as
    ``addmm`` does."""
    h = x
    last = len(weights) - 1
    for i in range(last + 1):
        w, b = weights[i], biases[i]
        z = np.empty((h.shape[0], w.shape[0]), np.float32)
        mm(h, False, w, True, z, _ZERO, s)
        for r in range(z.shape[0]):
            for j in range(z.shape[1]):
                v = z[r, j] + b[j]
                z[r, j] = v if i == last else activate(v, act_code)
        h = z
    for r in range(h.shape[0]):
        for j in range(out.shape[1]):
            a = h[r, j]
            if out_code == SQUASHED_GAUSSIAN:
                if explore:
                    a = a + noise[r, j] * np.exp(min(max(h[r, out.shape[1] + j], _LO), _HI))
                out[r, j] = np.tanh(a)
                continue
            if out_code == 1:
                a = np.tanh(a)
            elif out_code == 2:
                a = min(max(a, -_ONE), _ONE)
            if explore:
                a = min(max(a + noise[r, j] * scale, -_ONE), _ONE)
            out[r, j] = a


class NumbaActor:
    """The kernel bound to one MLP: numpy views of its weights, refreshed when a parameter's storage moves (the
    parameter objects are listed once: replacing a parameter object, not its data, is not seen)."""

    def __init__(self, mlp: MLP) -> None:
        if mlp.activation_name not in ACTIVATION_CODES:
            raise ValueError(f"numba acting supports {sorted(ACTIVATION_CODES)}, not {mlp.activation_name!r}")
        self.mlp = mlp
        self._out_dim = mlp.linears[-1].out_features
        self.codes = (ACTIVATION_CODES[mlp.activation_name], OUTPUT_CODES[mlp.output])
        self._ptrs: tuple[int, ...] = ()
        self._params: list[torch.Tensor] | None = None
        self._views: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]] = ((), ())
        self._scratch = _blas.scratch()

    @staticmethod
    def applies(mlp: MLP, x: torch.Tensor) -> bool:
        """Whether the kernel takes this module and input (float32 on the CPU, a supported activation)."""
        w = mlp.linears[0].weight
        return (mlp.activation_name in ACTIVATION_CODES and w.device.type == "cpu" and w.dtype == torch.float32
                and NumbaActor.takes(x))

    @staticmethod
    def takes(x: torch.Tensor) -> bool:
        """Whether ``x`` suits the kernel (``[rows, in]`` float32 on the CPU); the weights are checked when their
        views are taken (:meth:`ready`)."""
        return x.dtype == torch.float32 and x.dim() == 2 and x.is_cpu

    def ready(self) -> bool:
        """Whether the module's weights are CPU float32 now (views taken or refreshed as needed) and torch's BLAS
        is reachable from numba (:data:`robot_rl.models._blas.AVAILABLE`)."""
        if not _blas.AVAILABLE:
            return False
        try:
            self._weights()
        except (TypeError, RuntimeError):  # moved to an accelerator or another dtype: the torch path acts
            self._ptrs = ()
            return False
        return all(w.dtype == np.float32 for w in self._views[0])

    def _weights(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        params = self._params
        if params is None:  # the module's parameter objects, listed once (module attribute access is slow)
            params = self._params = [t for layer in self.mlp.linears for t in (layer.weight, layer.bias)]
        ptrs = tuple(p.data_ptr() for p in params)
        if ptrs != self._ptrs:
            self._views = (tuple(p.detach().contiguous().numpy() for p in params[0::2]),
                           tuple(p.detach().numpy() for p in params[1::2]))
            self._ptrs = ptrs if all(p.is_contiguous() for p in params) else ()
        return self._views

    def __call__(self, x: torch.Tensor, noise: torch.Tensor | None = None, scale: float = 0.0) -> torch.Tensor:
        """``clamp(mlp(x) + noise * scale, -1, 1)`` (just ``mlp(x)`` when ``noise`` is None)."""
        weights, biases = self._weights()
        out = torch.empty(x.shape[0], self._out_dim)
        xn = x.detach().contiguous().numpy()
        explore = noise is not None
        nn_ = noise.numpy() if explore else np.zeros((1, 1), np.float32)
        _act(xn, weights, biases, self.codes[0], self.codes[1], nn_, np.float32(scale), explore, out.numpy(),
             self._scratch)
        return out


__all__ = ["ACTIVATION_CODES", "LOG_STD_MAX", "LOG_STD_MIN", "OUTPUT_CODES", "SQUASHED_GAUSSIAN", "NumbaActor",
           "activate", "activate_slope"]
