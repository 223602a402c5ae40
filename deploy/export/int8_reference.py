"""Int8 quantisation of an exported MLP and a numpy reference of the exact arithmetic of the generated C.

Scheme (W8A16, integer accumulation; the C side is ``firmware/rlp/rlp_s16.h``):

* weights: per output row ``s_w[r] = max|W[r]| / 127``, ``q_w = round(W / s_w)`` in ``[-127, 127]``;
* activations entering a layer: one power-of-two scale ``2^-k`` per layer input (``k`` in 1..16) and
  ``q = trunc(clip(x * 2^k, -32768, 32767))``, NaN -> 0 (``VCVT.S16.F32 #k`` on the Cortex-M4F). The first
  layer's ``k`` is the largest with ``32767 * 2^-k`` covering ``max(8, 4 * max|calibration obs|, the components'
  declared low/high, 35 rad/s for an unbounded angular_velocity (the +-2000 deg/s gyro))``: for the quadrotor
  ``k = 9``, range +-64 with 2^-9 (2 mm, 2 mm/s, 0.002 rad/s) resolution. Inputs of layers after a table
  activation use ``k = 15``; after relu/elu/identity ``k`` comes from 4x the calibrated activation range;
* int32 accumulators start at ``round(bias / (s_w 2^-k))`` and add ``q_w q`` exactly (checked not to overflow);
* tanh / fast_tanh hidden layers use a 4096-entry int16 table:
  ``idx = clip(((acc * M + 2^31) >> 32) >> shift, -2048, 2047)``, ``q_next = lut[idx]`` (scale 2^-15);
* other layers dequantise in float32: ``y = float32(acc) * m`` with ``m = float32(s_w 2^-k)``, then the
  activation or the output op in float32 (``rlp_expf``/``rlp_tanhf`` are mirrored here bit for bit).

16-bit activations cost nothing in the SMLAD inner loop (it multiplies int16 pairs anyway) and make the
activation rounding error negligible next to the int8 weight error.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.export.mlp_reader import MLPSpec, apply_activation

LUT_BITS = 12
LUT_FBITS = 15
LUT_RANGE = {"fast_tanh": 3.0, "tanh": 4.0}
INPUT_RANGE_FLOOR = 8.0
# physical ranges of components that policy.json leaves unbounded: a +-2000 deg/s gyro (Crazyflie, 35 rad/s)
SENSOR_RANGES = {"angular_velocity": 35.0}
RANGE_MARGIN = 4.0
PARAMS_FILE = "int8_params.npz"
F32 = np.float32


class QuantizationError(ValueError):
    """The network cannot be quantised within the int32 accumulator / table limits."""


# ----------------------------------------------------------------------------- float32 mirrors of rlp_math.c
_LOG2E, _LN2_HI, _LN2_LO = (np.uint32(v).view(F32) for v in (0x3FB8AA3B, 0x3F317200, 0x35BFBE8E))
_EXP_POLY = np.array([1.98412698e-4, 1.38888889e-3, 8.33333377e-3, 4.16666679e-2, 1.66666672e-1, 0.5, 1.0, 1.0],
                     dtype=F32)


def expf(x: np.ndarray) -> np.ndarray:
    """Bit-exact numpy mirror of ``rlp_expf`` (float32 in, float32 out)."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(invalid="ignore", over="ignore"):
        xc = np.minimum(x, F32(88.0))
        t = xc * _LOG2E
        k = np.where(t >= 0, t + F32(0.5), t - F32(0.5))
        k = np.nan_to_num(k, nan=0.0).clip(-200, 200).astype(np.int32)
        kf = k.astype(F32)
        r = xc - kf * _LN2_HI
        r = r - kf * _LN2_LO
        p = np.full_like(r, _EXP_POLY[0])
        for c in _EXP_POLY[1:]:
            p = p * r + c
        scale = (np.clip(k + 127, 1, 254).astype(np.uint32) << np.uint32(23)).view(F32)
        out = p * scale
    out = np.where(x < F32(-87.0), F32(0.0), out)
    return np.where(np.isnan(x), x, out).astype(F32)


def tanhf(x: np.ndarray) -> np.ndarray:
    """Bit-exact numpy mirror of ``rlp_tanhf``."""
    x = np.asarray(x, dtype=F32)
    a = np.abs(x)
    with np.errstate(over="ignore", invalid="ignore"):
        e = expf(np.minimum(a, F32(9.0)) + np.minimum(a, F32(9.0)))
        mid = F32(1.0) - F32(2.0) / (e + F32(1.0))
    t = np.where(a > F32(9.0), F32(1.0), np.where(a < F32(2.44140625e-4), a, mid))
    t = np.where(x < 0, -t, t)
    return np.where(np.isnan(x), x, t).astype(F32)


def activate_f32(z: np.ndarray, act: str, elu_alpha: float = 1.0, clip: tuple[float, float] = (-1, 1)) -> np.ndarray:
    """Bit-exact numpy mirror of ``rlp_activate`` for the float-domain activations and output ops."""
    z = np.asarray(z, dtype=F32)
    if act == "relu":
        return np.where(z > 0, z, F32(0.0)).astype(F32)
    if act == "elu":
        with np.errstate(invalid="ignore"):
            neg = F32(elu_alpha) * (expf(z) - F32(1.0))
        return np.where(z >= 0, z, neg).astype(F32)
    if act == "tanh":
        return tanhf(z)
    if act == "clip":
        lo, hi = F32(clip[0]), F32(clip[1])
        v = np.where(z < lo, lo, z)
        return np.where(v > hi, hi, v).astype(F32)
    if act == "identity":
        return z
    raise ValueError(f"no float32 mirror for activation {act!r}")


def quant16(x: np.ndarray, fbits: int) -> np.ndarray:
    """``VCVT.S16.F32 #fbits``: trunc(saturate(x * 2^fbits)), NaN -> 0, as int64."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.asarray(x, dtype=F32) * F32(2.0**fbits)
    t = np.where(np.isnan(t), F32(0.0), t)
    return np.clip(t, -32768.0, 32767.0).astype(np.int64)


# ----------------------------------------------------------------------------- parameters
@dataclass
class Int8Layer:
    """One quantised dense layer. ``kind``: ``lut`` (table activation), ``raw`` (float activation), ``out``."""

    wq: np.ndarray  # int8 [out, in]
    acc0: np.ndarray  # int32 [out]
    in_fbits: int
    kind: str
    act: str
    m: np.ndarray  # float32 [out] dequantisation multipliers s_w * 2^-in_fbits
    mult: np.ndarray | None = None  # int32 [out], lut layers
    shift: int = 0
    out_fbits: int = LUT_FBITS  # scale of the next layer's input (lut and raw hidden layers)
    elu_alpha: float = 1.0


@dataclass
class Int8Params:
    """Everything the int8 C code and :class:`Int8Policy` need (saved as ``int8_params.npz``)."""

    layers: list[Int8Layer]
    output: str = "identity"
    clip: tuple[float, float] = (-1.0, 1.0)
    luts: dict[str, np.ndarray] = field(default_factory=dict)  # activation -> int16 [2^LUT_BITS]
    onnx_sha256: str = ""  # hash of the policy.onnx these were quantised from ("" = unknown)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {"meta_output": np.array(self.output), "meta_clip": np.array(self.clip, F32),
                                  "meta_onnx_sha256": np.array(self.onnx_sha256)}
        for name, lut in self.luts.items():
            arrays[f"lut_{name}"] = lut
        for i, layer in enumerate(self.layers):
            for key in ("wq", "acc0", "m"):
                arrays[f"l{i}_{key}"] = getattr(layer, key)
            if layer.mult is not None:
                arrays[f"l{i}_mult"] = layer.mult
            arrays[f"l{i}_meta"] = np.array([layer.in_fbits, layer.shift, layer.out_fbits], np.int64)
            arrays[f"l{i}_kind"] = np.array([layer.kind, layer.act])
            arrays[f"l{i}_alpha"] = np.array(layer.elu_alpha, np.float64)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Int8Params:
        z = np.load(path, allow_pickle=False)
        layers, i = [], 0
        while f"l{i}_wq" in z:
            in_fbits, shift, out_fbits = (int(v) for v in z[f"l{i}_meta"])
            kind, act = (str(v) for v in z[f"l{i}_kind"])
            layers.append(Int8Layer(z[f"l{i}_wq"], z[f"l{i}_acc0"], in_fbits, kind, act, z[f"l{i}_m"],
                                    z[f"l{i}_mult"] if f"l{i}_mult" in z else None, shift, out_fbits,
                                    float(z[f"l{i}_alpha"])))
            i += 1
        luts = {k[4:]: z[k] for k in z.files if k.startswith("lut_")}
        clip = tuple(float(v) for v in z["meta_clip"])
        sha = str(z["meta_onnx_sha256"]) if "meta_onnx_sha256" in z.files else ""
        return cls(layers, str(z["meta_output"]), (clip[0], clip[1]), luts, sha)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (keys cached int8 parameters to the ``policy.onnx`` they came from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fbits_for_range(r: float) -> int:
    r = max(float(r), 1e-9)
    return int(min(16, max(1, math.floor(math.log2(32767.0 / r)))))


def make_lut(act: str) -> np.ndarray:
    """int16 table of ``act`` at ``z_j = j * delta`` for ``j`` in ``[-2048, 2047]``, scaled by 2^15."""
    half = 1 << (LUT_BITS - 1)
    delta = LUT_RANGE[act] / half
    z = np.arange(-half, half, dtype=np.float64) * delta
    y = apply_activation(z, act)
    return np.clip(np.rint(y * 2.0**LUT_FBITS), -32768, 32767).astype(np.int16)


def input_range(calibration: np.ndarray, observation: list[dict[str, Any]] | None = None) -> float:
    """Range the first layer's int16 input must cover (see the module docstring)."""
    r = max(INPUT_RANGE_FLOOR, RANGE_MARGIN * float(np.nanmax(np.abs(calibration), initial=0.0)))
    for comp in observation or []:
        bounds = [abs(float(comp[k])) for k in ("low", "high") if isinstance(comp.get(k), (int, float))]
        r = max(r, *bounds, SENSOR_RANGES.get(comp["name"], 0.0) if not bounds else 0.0)
    return r


def quantize_mlp(spec: MLPSpec, calibration: np.ndarray, in_range: float) -> Int8Params:
    """Quantise ``spec``; ``calibration`` (``[k, in]``) sets the ranges of relu/elu hidden activations."""
    params = Int8Params(layers=[], output=spec.output, clip=spec.clip)
    fbits = _fbits_for_range(in_range)
    x = np.asarray(calibration, dtype=np.float64)
    for i, layer in enumerate(spec.layers):
        w = layer.weight.astype(np.float64)
        last = i == len(spec.layers) - 1
        s_w = np.abs(w).max(axis=1) / 127.0
        s_w[s_w == 0] = 1.0
        wq = np.clip(np.rint(w / s_w[:, None]), -127, 127).astype(np.int8)
        m = (s_w * 2.0**-fbits).astype(F32)
        acc0 = np.rint(layer.bias.astype(np.float64) / m.astype(np.float64))
        bound = np.abs(acc0) + np.abs(wq.astype(np.int64)).sum(axis=1) * 32768
        if bound.max() >= 2**31:
            raise QuantizationError(f"int8 export: layer {i} could overflow its int32 accumulator "
                                    f"({int(bound.max())} >= 2^31); too many inputs or too large a bias")
        kind = "out" if last else ("lut" if layer.activation in LUT_RANGE else "raw")
        q = Int8Layer(wq, acc0.astype(np.int32), fbits, kind, layer.activation, m, elu_alpha=layer.elu_alpha)
        z = x @ w.T + layer.bias.astype(np.float64)
        x = apply_activation(z, layer.activation, layer.elu_alpha)
        if kind == "lut":
            delta = LUT_RANGE[layer.activation] / (1 << (LUT_BITS - 1))
            k = m.astype(np.float64) / delta
            kmax = float(np.abs(k).max())
            shift = 31 if kmax == 0 else int(math.floor(-math.log2(kmax))) - 3
            if shift < 0:
                raise QuantizationError(f"int8 export: layer {i}'s table index multiplier is too large "
                                        f"(input range {2.0**-fbits * 32767:.3g} too wide)")
            q.shift = min(shift, 31)
            q.mult = np.rint(k * 2.0 ** (32 + q.shift)).astype(np.int64).astype(np.int32)
            params.luts.setdefault(layer.activation, make_lut(layer.activation))
            q.out_fbits = LUT_FBITS
        elif kind == "raw":
            q.out_fbits = _fbits_for_range(RANGE_MARGIN * float(np.abs(x).max(initial=0.0)))
        fbits = q.out_fbits
        params.layers.append(q)
    return params


# ----------------------------------------------------------------------------- reference forward pass
def forward_int(params: Int8Params, obs: np.ndarray) -> np.ndarray:
    """The generated int8 C, in numpy: ``obs [k, in] -> action [k, out]`` (float32)."""
    x = np.atleast_2d(np.asarray(obs, dtype=F32))
    q = quant16(x, params.layers[0].in_fbits)
    for layer in params.layers:
        acc = q @ layer.wq.astype(np.int64).T + layer.acc0.astype(np.int64)
        if np.abs(acc).max(initial=0) >= 2**31:  # cannot happen (checked at quantisation), kept as a guard
            raise QuantizationError("int32 accumulator overflow")
        if layer.kind == "lut":
            assert layer.mult is not None
            half = 1 << (LUT_BITS - 1)
            idx = ((acc * layer.mult.astype(np.int64) + (1 << 31)) >> 32) >> layer.shift
            q = params.luts[layer.act][np.clip(idx, -half, half - 1) + half].astype(np.int64)
            continue
        z = acc.astype(F32) * layer.m
        if layer.kind == "raw":
            q = quant16(activate_f32(z, layer.act, layer.elu_alpha), layer.out_fbits)
            continue
        return activate_f32(z, params.output, clip=params.clip)
    raise AssertionError("the last layer has kind 'out'")


class Int8Policy:
    """Batched int8 policy: ``Int8Policy(source)(obs[k, n]) -> action[k, m]`` (float32, numpy only).

    ``source`` is an :class:`Int8Params`, an ``int8_params.npz`` file, the directory ``export_c`` wrote it to,
    or an export directory (uses ``<dir>/c_int8/int8_params.npz`` if it was quantised from the current
    ``policy.onnx``, by SHA-256, else quantises ``policy.onnx`` with the default calibration, which is what
    ``export_c(dir, quantize="int8")`` does). :attr:`origin` says which.
    """

    def __init__(self, source: str | Path | Int8Params, calibration: np.ndarray | None = None) -> None:
        self.origin = "given parameters"
        if isinstance(source, Int8Params):
            self.params = source
            return
        path = Path(source)
        onnx = path / "policy.onnx"
        sha = file_sha256(onnx) if onnx.is_file() else ""
        for candidate in (path, path / PARAMS_FILE, path / "c_int8" / PARAMS_FILE):
            if candidate.is_file() and calibration is None:
                params = Int8Params.load(candidate)
                if sha and params.onnx_sha256 != sha:  # a re-export since the C export: never use stale weights
                    self.origin = f"rebuilt from policy.onnx ({candidate} belongs to another policy.onnx)"
                    break
                self.params, self.origin = params, str(candidate)
                return
        else:
            self.origin = "quantised from policy.onnx"
        from deploy.export.c_export import load_export, quantization_inputs  # local: avoids an import cycle

        spec, doc = load_export(path)
        calib, rng = quantization_inputs(doc, spec, calibration)
        self.params = quantize_mlp(spec, calib, rng)
        self.params.onnx_sha256 = sha

    @property
    def obs_dim(self) -> int:
        return int(self.params.layers[0].wq.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.params.layers[-1].wq.shape[0])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=F32)
        single = obs.ndim == 1
        out = forward_int(self.params, obs.reshape(1, -1) if single else obs)
        return out[0] if single else out
