"""Export a trained deterministic policy to ``policy.onnx`` + ``policy.json`` and verify the export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

import robot_rl
from deploy import contract
from deploy.export.onnx_graph import OPSET, build_onnx
from deploy.onnx_io import onnx_session
from robot_rl.io import atomic_write_bytes, atomic_write_json
from robot_rl.models.mlp import PolicyGraph

MAX_ABS_ERROR = 1e-5


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch policy."""


def verify(session: ort.InferenceSession, torch_policy: Callable[[torch.Tensor], torch.Tensor],
           obs: np.ndarray) -> float:
    """Max abs difference between torch and onnxruntime on ``obs``."""
    with torch.no_grad():
        ref = torch_policy(torch.as_tensor(obs, dtype=torch.float32)).cpu().numpy()
    out = session.run(["action"], {"obs": obs.astype(np.float32)})[0]
    return float(np.abs(out - ref).max())


def export_policy(out_dir: str | Path, graph: PolicyGraph, torch_policy: Callable[[torch.Tensor], torch.Tensor],
                  spec: dict[str, Any], on_distribution_obs: np.ndarray, metadata: dict[str, Any],
                  seed: int = 0) -> dict[str, Any]:
    """Write ``policy.onnx`` and ``policy.json`` into ``out_dir`` after checking the graph against torch.

    ``spec`` carries the task's ``observation`` components, ``action`` mapping and ``control_rate_hz``;
    ``metadata`` adds robot/task/training provenance. Verification runs 1,000 random observations and up to
    1,000 on-distribution ones (``on_distribution_obs``); any error above 1e-5 raises :class:`ExportError`
    and nothing is written. Returns the written ``policy.json`` content plus the measured errors.
    """
    model = build_onnx(graph)
    session = onnx_session(model)
    dim = graph.weights[0].shape[1]
    if contract.obs_dim(spec) != dim:
        raise ExportError(f"observation components sum to {contract.obs_dim(spec)} but the network takes {dim}")
    out_dim = graph.weights[-1].shape[0]
    if contract.output_dim(spec) != out_dim:
        raise ExportError(f"the action (size x chunk horizon) is {contract.output_dim(spec)} wide but the network "
                          f"outputs {out_dim}")
    rng = np.random.default_rng(seed)
    random_obs = rng.normal(0.0, 1.0, (1000, dim)).astype(np.float32)
    on_dist = np.asarray(on_distribution_obs, dtype=np.float32)[:1000]
    if on_dist.ndim != 2 or on_dist.shape[1] != dim or len(on_dist) == 0:
        raise ExportError(f"on-distribution observations must be [k, {dim}], got {list(on_dist.shape)}")
    err_random = verify(session, torch_policy, random_obs)
    err_dist = verify(session, torch_policy, on_dist)
    if not (err_random <= MAX_ABS_ERROR and err_dist <= MAX_ABS_ERROR):
        raise ExportError(f"ONNX export differs from torch: max abs error {max(err_random, err_dist):.3g} "
                          f"(random {err_random:.3g}, on-distribution {err_dist:.3g}) > {MAX_ABS_ERROR}")
    example_in = on_dist[: min(8, len(on_dist))]
    example_out = session.run(["action"], {"obs": example_in})[0]
    layers = [graph.weights[0].shape[1]] + [w.shape[0] for w in graph.weights]
    doc = {
        "format": contract.FORMAT,
        "format_version": contract.FORMAT_VERSION,
        **metadata,
        "observation": spec["observation"],
        "action": spec["action"],
        "control_rate_hz": spec["control_rate_hz"],
        "network": {"layers": layers, "activation": graph.activation, "output": graph.output,
                    "normalization": "folded into the first layer" if graph.obs_mean is not None else "none"},
        "package_version": robot_rl.__version__,
        "torch_version": torch.__version__,
        "onnx_opset": OPSET,
        "verification": {"max_abs_error_random": err_random, "max_abs_error_on_distribution": err_dist,
                         "samples": [len(random_obs), len(on_dist)]},
        "test_vector": {"example_input": example_in.tolist(), "example_output": example_out.tolist(),
                        "atol": 1e-5},
    }
    contract.validate(doc)
    out = Path(out_dir)
    atomic_write_bytes(out / "policy.onnx", model.SerializeToString())
    atomic_write_json(out / "policy.json", doc)
    return doc
