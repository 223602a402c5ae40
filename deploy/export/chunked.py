"""Export a chunked (diffusion) policy: ``policy.onnx`` holds the whole sampler, verified against torch.

The graph is :meth:`robot_rl.policies.diffusion.DiffusionPolicy.sample` traced with its sampler loop (DDIM, or
Euler steps of a flow-matching policy) unrolled:
inputs ``obs`` ``[batch, observation_steps, obs_dim]`` (raw units: the min-max normalisation is in the graph)
and ``noise`` ``[batch, horizon, act_dim]`` (standard normal, so the caller owns randomness), output
``action`` ``[batch, horizon, act_dim]`` in raw action units. ``policy.json`` gets ``kind: "chunked"``, the
``chunk`` section and a test vector with its noise (see :mod:`deploy.contract`).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

import robot_rl
from deploy import contract
from deploy.export.policy import MAX_ABS_ERROR, ExportError
from deploy.onnx_io import onnx_session
from robot_rl.io import atomic_write_bytes, atomic_write_json
from robot_rl.policies.diffusion import DiffusionPolicy

OPSET = 17


class Sampler(nn.Module):
    """``(obs, noise) -> action chunk`` with a fixed number of sampler steps (the exported computation)."""

    def __init__(self, policy: DiffusionPolicy, steps: int) -> None:
        super().__init__()
        self.policy, self.steps = policy, steps
        self.denoiser = policy.eval_denoiser()  # a submodule, so its weights become shared initializers

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.policy.sample(obs, noise, self.steps, denoiser=self.denoiser)


def sampler_onnx(policy: DiffusionPolicy, steps: int) -> onnx.ModelProto:
    """Trace the sampler (DDIM or flow Euler steps; EMA weights where kept) into an ONNX model, dynamic batch."""
    sampler = Sampler(policy.eval(), steps).eval()
    obs = torch.zeros(1, policy.n_obs_steps, policy.obs_dim)
    noise = torch.zeros(1, policy.horizon, policy.act_dim)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(sampler, (obs, noise), buf, dynamo=False, opset_version=OPSET,
                          input_names=["obs", "noise"], output_names=["action"],
                          dynamic_axes={"obs": {0: "batch"}, "noise": {0: "batch"}, "action": {0: "batch"}})
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "robot-rl"
    _share_initializers(model)
    onnx.checker.check_model(model)
    return model


def _share_initializers(model: onnx.ModelProto) -> None:
    """Keep one copy of byte-identical initializers: constant folding gives every unrolled sampler step its
    own copy of the (transposed) weights, which would multiply the file size by the number of steps."""
    graph, first, rename = model.graph, {}, {}
    keep = []
    for init in graph.initializer:
        key = (init.data_type, tuple(init.dims), init.raw_data or onnx.numpy_helper.to_array(init).tobytes())
        if key in first:
            rename[init.name] = first[key]
        else:
            first[key] = init.name
            keep.append(init)
    if not rename:
        return
    del graph.initializer[:]
    graph.initializer.extend(keep)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def export_chunked_policy(out_dir: str | Path, policy: DiffusionPolicy, spec: dict[str, Any],
                          on_distribution_obs: np.ndarray, metadata: dict[str, Any], steps: int | None = None,
                          seed: int = 0, samples: int = 64) -> dict[str, Any]:
    """Write ``policy.onnx`` + ``policy.json`` for ``policy`` sampled with ``steps`` sampler steps.

    ``spec``: the task's per-step ``observation`` components, ``action`` and ``control_rate_hz``.
    ``on_distribution_obs`` ``[k, obs_dim]`` are observations from the data; verification runs ``samples``
    random histories in the normaliser's range and up to ``samples`` on-distribution ones, each with its own
    noise, through torch and onnxruntime; an error above 1e-5 raises :class:`ExportError` and writes nothing.
    """
    steps = steps or policy.cfg.num_inference_steps
    to, d, h, a = policy.n_obs_steps, policy.obs_dim, policy.horizon, policy.act_dim
    if contract.obs_dim(spec) != d:
        raise ExportError(f"observation components sum to {contract.obs_dim(spec)} but the policy takes {d}")
    if int(spec["action"]["size"]) != a:
        raise ExportError(f"action size {spec['action']['size']} but the policy outputs {a}")
    on_dist = np.asarray(on_distribution_obs, dtype=np.float32)
    if on_dist.ndim != 2 or on_dist.shape[1] != d or len(on_dist) < to:
        raise ExportError(f"on-distribution observations must be [k >= {to}, {d}], got {list(on_dist.shape)}")
    model = sampler_onnx(policy, steps)
    session = onnx_session(model)
    rng = np.random.default_rng(seed)
    mid, span = policy.obs_norm.mid.numpy(), policy.obs_norm.span.numpy()
    random_obs = (mid + span * rng.uniform(-1.2, 1.2, (samples, to, d))).astype(np.float32)
    starts = rng.integers(0, len(on_dist) - to + 1, samples)
    dist_obs = np.stack([on_dist[s:s + to] for s in starts])

    def check(obs: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        noise = rng.standard_normal((len(obs), h, a)).astype(np.float32)
        with torch.no_grad():
            ref = policy.sample(torch.as_tensor(obs), torch.as_tensor(noise), steps).numpy()
        out = session.run(["action"], {"obs": obs, "noise": noise})[0]
        return float(np.abs(out - ref).max()), noise, out

    err_random, _, _ = check(random_obs)
    err_dist, noise, out = check(dist_obs)
    if not (err_random <= MAX_ABS_ERROR and err_dist <= MAX_ABS_ERROR):
        raise ExportError(f"ONNX sampler differs from torch: max abs error {max(err_random, err_dist):.3g} "
                          f"(random {err_random:.3g}, on-distribution {err_dist:.3g}) > {MAX_ABS_ERROR}")
    k = min(4, samples)
    cfg = policy.cfg
    doc = {
        "format": contract.FORMAT,
        "format_version": contract.FORMAT_VERSION,
        **metadata,
        "kind": "chunked",
        "observation": spec["observation"],
        "action": spec["action"],
        "control_rate_hz": spec["control_rate_hz"],
        "chunk": {"observation_steps": to, "horizon": h, "execute": policy.n_action_steps,
                  "sampler": policy.sampler_name, "steps": steps, "noise": "standard_normal",
                  "objective": cfg.objective,
                  "prediction_type": cfg.prediction_type,
                  "train_timesteps": cfg.num_train_timesteps, "beta_schedule": cfg.beta_schedule},
        "network": {"denoiser": cfg.denoiser, "down_dims": list(cfg.down_dims), "mlp_hidden": list(cfg.mlp_hidden),
                    "parameters": sum(p.numel() for p in policy.eval_denoiser().parameters()),
                    "weights": "ema" if policy.ema is not None else "trained",
                    "normalization": "min-max to [-1, 1], folded into the graph"},
        "package_version": robot_rl.__version__,
        "torch_version": torch.__version__,
        "onnx_opset": OPSET,
        "verification": {"max_abs_error_random": err_random, "max_abs_error_on_distribution": err_dist,
                         "samples": [samples, samples]},
        "test_vector": {"example_input": dist_obs[:k].tolist(), "example_noise": noise[:k].tolist(),
                        "example_output": out[:k].tolist(), "atol": MAX_ABS_ERROR},
    }
    contract.validate(doc)
    out_path = Path(out_dir)
    atomic_write_bytes(out_path / "policy.onnx", model.SerializeToString())
    atomic_write_json(out_path / "policy.json", doc)
    return doc
