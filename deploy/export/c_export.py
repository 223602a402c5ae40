"""C99 export of an exported MLP or recurrent (GRU) policy (``policy.onnx`` + ``policy.json``) for microcontrollers.

``export_c(export_dir)`` writes ``policy.h`` + ``policy.c`` that plug into the inference library in
``firmware/rlp`` (copy or add ``firmware/rlp/*.c`` to the build). Weights are exact float32 values (C99
hexadecimal floating constants) in ``static const`` arrays, i.e. flash; there is no heap and no libm call; the
forward pass uses fixed static scratch buffers; the test vector of ``policy.json`` is embedded with a
self-test function. ``quantize="int8"`` writes the int8 variant of an MLP (see ``deploy/export/int8_reference.py``);
a ``kind: "recurrent"`` export is written in float32 with its state (``deploy/export/c_recurrent.py``).

Command line: ``python -m deploy.export.c_export EXPORT_DIR [--out DIR] [--quantize int8]
[--calibration OBS.npy]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deploy import contract
from deploy.export import c_emit, c_recurrent
from deploy.export.c_emit import ACT_ENUM, CExportError
from deploy.export.int8_reference import (
    LUT_BITS,
    PARAMS_FILE,
    Int8Params,
    Int8Policy,
    QuantizationError,
    file_sha256,
    input_range,
    quantize_mlp,
)
from deploy.export.mlp_reader import MLPSpec, UnsupportedGraphError, read_mlp

__all__ = ["CExportError", "UnsupportedGraphError", "export_c", "load_export", "quantization_inputs"]


def load_export(export_dir: str | Path) -> tuple[MLPSpec, dict[str, Any]]:
    """Read ``policy.json`` (validated) and ``policy.onnx`` (as dense layers) and check they agree."""
    export_dir = Path(export_dir)
    doc = contract.load(export_dir)
    if contract.is_recurrent(doc):
        raise CExportError("C export: a recurrent policy has no dense-layer chain; export_c writes it through "
                           "deploy/export/c_recurrent.py")
    if not (export_dir / "policy.onnx").is_file():
        raise FileNotFoundError(f"no policy.onnx in {export_dir}")
    spec = read_mlp(export_dir / "policy.onnx")
    if spec.in_dim != contract.obs_dim(doc) or spec.out_dim != int(doc["action"]["size"]):
        raise CExportError(f"C export: policy.onnx is {spec.in_dim} -> {spec.out_dim} but policy.json describes "
                           f"{contract.obs_dim(doc)} -> {doc['action']['size']}")
    return spec, doc


def quantization_inputs(doc: dict[str, Any], spec: MLPSpec,
                        calibration: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Calibration observations (test vectors plus ``calibration``) and the first layer's input range."""
    calib = np.asarray(doc["test_vector"]["example_input"], dtype=np.float32)
    if calibration is not None:
        extra = np.asarray(calibration, dtype=np.float32)
        if extra.ndim != 2 or extra.shape[1] != spec.in_dim:
            raise CExportError(f"C export: calibration observations must be [k, {spec.in_dim}], "
                               f"got {list(extra.shape)}")
        calib = np.concatenate([calib, extra])
    return calib, input_range(calib, doc["observation"])


def _s16_stream(wq: np.ndarray, acc0: np.ndarray, mult: np.ndarray | None) -> tuple[np.ndarray, int, int]:
    """uint32 stream of the int kernels (layout in rlp_s16.h); returns (stream, n_chunk, rem)."""
    n_out, n_in = wq.shape
    nb, n_pairs = c_emit.blocks(n_out), (n_in + 1) // 2
    w = np.zeros((nb * 4, 2 * n_pairs), np.int64)
    w[:n_out, :n_in] = wq
    pairs = ((w[:, 0::2] & 0xFFFF) | ((w[:, 1::2] & 0xFFFF) << 16)).astype(np.uint32)  # [rows, n_pairs]
    a0 = np.zeros(nb * 4, np.int64)
    a0[:n_out] = acc0
    mu = np.zeros(nb * 4, np.int64)
    if mult is not None:
        mu[:n_out] = mult
    n_chunk, rem = n_pairs // 4, n_pairs % 4
    words: list[np.ndarray] = []
    for i in range(nb):
        rows = pairs[4 * i:4 * i + 4]
        words.append((a0[4 * i:4 * i + 4] & 0xFFFFFFFF).astype(np.uint32))
        words.append(rows[:, :rem].reshape(-1))
        chunks = rows[:, rem:].reshape(4, n_chunk, 4).transpose(1, 0, 2)  # chunk, row, pair
        words.append(chunks.reshape(-1))
        if mult is not None:
            words.append((mu[4 * i:4 * i + 4] & 0xFFFFFFFF).astype(np.uint32))
    return np.concatenate(words).astype(np.uint32), n_chunk, rem


def _describe(spec: MLPSpec) -> str:
    acts = [layer.activation for layer in spec.layers[:-1]]
    dims = [spec.in_dim] + [int(layer.weight.shape[0]) for layer in spec.layers]
    return "-".join(map(str, dims)) + f", hidden {'/'.join(dict.fromkeys(acts)) or 'none'}, output {spec.output}"


def _float_source(spec: MLPSpec) -> tuple[str, int]:
    """Body of the float ``policy.c`` (weights + forward); returns (text, weight bytes)."""
    width = max(c_emit.blocks(int(layer.weight.shape[0])) * 4 for layer in spec.layers)
    parts, calls, nbytes = [], [], 0
    src = "obs"
    for i, layer in enumerate(spec.layers):
        n_out, n_in = layer.weight.shape
        stream = c_emit.f32_stream(layer.weight, layer.bias)
        nbytes += stream.nbytes
        parts.append(c_emit.float_array(f"RLP_L{i}", stream, f"layer {i}: {n_in} -> {n_out}, {layer.activation}"))
        dst = "rlp_buf_a" if i % 2 == 0 else "rlp_buf_b"
        calls.append(f"    rlp_f32_dense(RLP_L{i}, {src}, {dst}, {c_emit.blocks(n_out)}u, {n_in}u);")
        act = layer.activation if i < len(spec.layers) - 1 else spec.output
        if act != "identity":
            lo, hi = spec.clip if act == "clip" else (0.0, 0.0)
            calls.append(f"    rlp_activate({dst}, {n_out}u, {ACT_ENUM[act]}, {c_emit.fhex(layer.elu_alpha)}, "
                         f"{c_emit.fhex(lo)}, {c_emit.fhex(hi)});")
        src = dst
    calls.append(f"    for (i = 0; i < {spec.out_dim}u; i++) {{\n        action[i] = {src}[i];\n    }}")
    body = "".join(parts) + f"""
static float rlp_buf_a[{width}], rlp_buf_b[{width}];

void rlp_policy_forward(const float *obs, float *action)
{{
    uint32_t i;
""" + "\n".join(calls) + "\n}\n"
    return body, nbytes


def _int8_source(params: Int8Params) -> tuple[str, int]:
    """Body of the int8 ``policy.c``; returns (text, weight bytes incl. tables)."""
    parts, defs, calls, nbytes = [], [], [], 0
    half = 1 << (LUT_BITS - 1)
    for name, lut in params.luts.items():
        parts.append(c_emit.i16_array(f"RLP_LUT_{name.upper()}", lut, f"{name} table, z_j = j * delta, j in "
                                                                          f"[-{half}, {half}), value * 2^15"))
        nbytes += lut.nbytes
    first = params.layers[0]
    n_in0 = int(first.wq.shape[1])
    pair_words = [(n_in0 + 1) // 2]
    acc_words = [4]
    defs.append(f"RLP_S16_QUANT(rlp_quant_in, {n_in0}, {first.in_fbits})")
    calls.append("    rlp_quant_in(obs, rlp_x_a);")
    src, dst = "rlp_x_a", "rlp_x_b"
    for i, layer in enumerate(params.layers):
        n_out, n_in = layer.wq.shape
        nb = c_emit.blocks(n_out)
        stream, n_chunk, rem = _s16_stream(layer.wq, layer.acc0, layer.mult if layer.kind == "lut" else None)
        nbytes += stream.nbytes
        parts.append(c_emit.u32_array(f"RLP_L{i}", stream, f"layer {i}: {n_in} -> {n_out}, {layer.kind} {layer.act}, "
                                                            f"input scale 2^-{layer.in_fbits}"))
        if layer.kind == "lut":
            defs.append(f"RLP_S16_DENSE_LUT(rlp_layer{i}, {n_chunk}, {rem}, {LUT_BITS}, {layer.shift})")
            calls.append(f"    rlp_layer{i}(RLP_L{i}, {src}, {dst}, {nb}u, &RLP_LUT_{layer.act.upper()}[{half}]);")
            pair_words.append(2 * nb)
            src, dst = dst, src
            continue
        parts.append(c_emit.float_array(f"RLP_M{i}", layer.m, f"layer {i} dequantisation multipliers"))
        nbytes += layer.m.nbytes
        defs.append(f"RLP_S16_DENSE_RAW(rlp_layer{i}, {n_chunk}, {rem})")
        calls.append(f"    rlp_layer{i}(RLP_L{i}, {src}, rlp_acc, {nb}u);")
        acc_words.append(4 * nb)
        if layer.kind == "raw":
            n_pad = 2 * ((n_out + 1) // 2)
            pair_words.append(n_pad // 2)
            calls.append(f"    rlp_s16_requant(rlp_acc, RLP_M{i}, {n_out}u, {n_pad}u, {ACT_ENUM[layer.act]}, "
                         f"{c_emit.fhex(layer.elu_alpha)}, {layer.out_fbits}u, {dst});")
            src, dst = dst, src
        else:
            lo, hi = params.clip if params.output == "clip" else (0.0, 0.0)
            calls.append(f"    rlp_s16_dequant(rlp_acc, RLP_M{i}, {n_out}u, action);")
            if params.output != "identity":
                calls.append(f"    rlp_activate(action, {n_out}u, {ACT_ENUM[params.output]}, 0.0f, "
                             f"{c_emit.fhex(lo)}, {c_emit.fhex(hi)});")
    body = "".join(parts) + "\n" + "\n".join(defs) + f"""

static int32_t rlp_x_a[{max(pair_words)}], rlp_x_b[{max(pair_words)}], rlp_acc[{max(acc_words)}];

void rlp_policy_forward(const float *obs, float *action)
{{
""" + "\n".join(calls) + "\n}\n"
    return body, nbytes


def export_c(export_dir: str | Path, out_dir: str | Path | None = None, quantize: str | None = None,
             calibration: np.ndarray | None = None) -> dict[str, Any]:
    """Write ``policy.h`` and ``policy.c`` for the exported policy in ``export_dir``.

    ``out_dir`` defaults to ``<export_dir>/c`` (float32) or ``<export_dir>/c_int8`` (``quantize="int8"``).
    ``calibration`` (``[k, obs_dim]`` observations) refines the int8 input range and activation scales.
    Raises :class:`UnsupportedGraphError` (one line naming the op) for graphs outside the supported set.
    Returns a summary: files, layer sizes, MACs, weight bytes and, for int8, the action error vs float.
    """
    if quantize not in (None, "int8"):
        raise CExportError(f"C export: unknown quantization {quantize!r}; use None or 'int8'")
    export_dir = Path(export_dir)
    if contract.is_recurrent(contract.load(export_dir)):
        if quantize is not None:
            raise CExportError("C export: a recurrent (GRU) policy has a float32 C export only; int8 is for MLPs")
        return _export_recurrent(export_dir, Path(out_dir) if out_dir is not None else export_dir / "c")
    spec, doc = load_export(export_dir)
    out = Path(out_dir) if out_dir is not None else export_dir / ("c_int8" if quantize else "c")
    tv = doc["test_vector"]
    test_in = np.asarray(tv["example_input"], dtype=np.float32)
    summary: dict[str, Any] = {"out_dir": str(out), "quantize": quantize or "float32", "macs": spec.macs,
                               "layers": [[int(x.weight.shape[1]), int(x.weight.shape[0]), x.activation]
                                          for x in spec.layers], "output": spec.output}
    if quantize == "int8":
        calib, rng = quantization_inputs(doc, spec, calibration)
        try:
            params = quantize_mlp(spec, calib, rng)
        except QuantizationError as exc:
            raise CExportError(str(exc)) from None
        params.onnx_sha256 = file_sha256(export_dir / "policy.onnx")  # eval --source int8 checks it
        policy = Int8Policy(params)
        test_out = policy(test_in)
        body, nbytes = _int8_source(params)
        ref = spec.forward(calib)
        err = float(np.abs(policy(calib).astype(np.float64) - ref).max())
        summary.update(max_action_error_vs_float=err, calibration_samples=len(calib), input_range=rng,
                       input_fbits=params.layers[0].in_fbits)
        includes = '#include "policy.h"\n#include "rlp_s16.h"\n'
    else:
        test_out = np.asarray(tv["example_output"], dtype=np.float32)
        body, nbytes = _float_source(spec)
        includes = '#include "policy.h"\n'
    files = _write_sources(out, export_dir, doc, _describe(spec), includes, body, spec.in_dim, spec.out_dim,
                           spec.macs, test_in, test_out, quantize == "int8")
    if quantize == "int8":
        params.save(out / PARAMS_FILE)
        report = {k: v for k, v in summary.items() if k != "out_dir"}
        (out / "quantization.json").write_text(json.dumps(report, indent=2) + "\n")
        files += [str(out / PARAMS_FILE), str(out / "quantization.json")]
    summary.update(files=files, weight_bytes=nbytes, test_vectors=len(test_in))
    return summary


def _write_sources(out: Path, export_dir: Path, doc: dict[str, Any], network: str, includes: str, body: str,
                   in_dim: int, out_dim: int, macs: int, test_in: np.ndarray, test_out: np.ndarray, int8: bool,
                   state_size: int = 0) -> list[str]:
    """Write ``policy.h`` and ``policy.c`` (head comment, includes, ``body``, test vectors, descriptor)."""
    tv = doc["test_vector"]
    name = f"{doc.get('robot', '')} {doc.get('task', '')} {doc.get('package_version', '')}".strip()
    source = (f"/*\n * policy.c - generated by robot-rl's C exporter from {export_dir.name}/policy.onnx; do not edit.\n"
              f" * Network: {network}; {macs} multiply-accumulates per forward pass.\n */\n"
              + includes + "\n" + body
              + c_emit.footer(doc, c_emit.components(doc["observation"]), in_dim, out_dim, macs, test_in, test_out,
                              float(tv.get("atol", 1e-5)), name, state_size=state_size))
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy.h").write_text(c_emit.header(doc, in_dim, out_dim, len(test_in), int8, network, macs,
                                                state_size=state_size))
    (out / "policy.c").write_text(source)
    return [str(out / "policy.h"), str(out / "policy.c")]


def _export_recurrent(export_dir: Path, out: Path) -> dict[str, Any]:
    """``export_c`` for ``kind: "recurrent"`` (float32; see ``deploy/export/c_recurrent.py``)."""
    doc = contract.load(export_dir)
    if not (export_dir / "policy.onnx").is_file():
        raise FileNotFoundError(f"no policy.onnx in {export_dir}")
    spec = c_recurrent.read_gru(export_dir / "policy.onnx", doc)
    tv = doc["test_vector"]
    test_in = np.asarray(tv["example_input"], dtype=np.float32)
    test_out = np.asarray(tv["example_output"], dtype=np.float32)
    body, nbytes = c_recurrent.float_source(spec)
    s = spec.state_size
    files = _write_sources(out, export_dir, doc, c_recurrent.describe(spec), '#include "policy.h"\n', body,
                           spec.in_dim, spec.out_dim, spec.macs, test_in, test_out, False, state_size=s)
    return {"out_dir": str(out), "quantize": "float32", "macs": spec.macs, "state_size": s,
            "layers": [[spec.in_dim, spec.hidden, spec.activation], ["gru", spec.hidden, s],
                       [spec.hidden + s, spec.out_dim, "tanh"]], "output": "tanh",
            "files": files, "weight_bytes": nbytes,
            "test_vectors": len(test_in)}


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.export.c_export EXPORT_DIR [--out DIR] [--quantize int8] [--calibration OBS.npy]``."""
    ap = argparse.ArgumentParser(prog="python -m deploy.export.c_export", description=__doc__.split("\n")[0])
    ap.add_argument("export_dir", type=Path, help="directory holding policy.onnx and policy.json")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default EXPORT_DIR/c or c_int8)")
    ap.add_argument("--quantize", choices=["int8"], default=None, help="write the int8 variant")
    ap.add_argument("--calibration", type=Path, default=None, help=".npy file of [k, obs_dim] observations (int8)")
    args = ap.parse_args(argv)
    try:
        calib = np.load(args.calibration) if args.calibration else None
        res = export_c(args.export_dir, args.out, args.quantize, calib)
    except (CExportError, UnsupportedGraphError, contract.ContractError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(res['files'])} ({res['macs']} MACs, {res['weight_bytes']} bytes of weights)")
    if "max_action_error_vs_float" in res:
        print(f"int8: max action error vs float {res['max_action_error_vs_float']:.3g} "
              f"over {res['calibration_samples']} observations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
