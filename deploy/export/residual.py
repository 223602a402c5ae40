"""Export a residual composition: the base's chunked sampler plus the per-step residual actor.

The export directory holds ``policy.onnx`` (the base sampler, exactly as :mod:`deploy.export.chunked` writes
it), ``residual.onnx`` (inputs ``obs`` ``[batch, obs_dim]`` and ``base_action`` ``[batch, size]`` in raw units,
output ``action`` ``[batch, size]``: base action plus the mean residual, scaled and clipped in the base's
normalised action space, all folded into the graph; a history residual also takes ``history``
``[batch, H, obs_dim + size]``: the last H raw (observation, executed action) rows, oldest first, see
:mod:`robot_rl.residual.history`) and ``policy.json`` with ``kind: "composed"`` and ``composition: {"kind":
"residual", "network": "residual.onnx", "scale", "history" (history residuals), ...}`` plus the residual's
own test vector. The runtime (:mod:`deploy.residual_runtime`) runs the base every ``chunk.execute`` steps and the
residual every step.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from deploy import contract
from deploy.export.chunked import OPSET, export_chunked_policy
from deploy.export.policy import MAX_ABS_ERROR, ExportError
from deploy.onnx_io import onnx_session
from robot_rl.io import atomic_write_bytes, atomic_write_json
from robot_rl.policies.diffusion import DiffusionPolicy

RESIDUAL_FILE = "residual.onnx"


class _Deterministic(nn.Module):
    def __init__(self, actor: nn.Module) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor, base_action: torch.Tensor, *history: torch.Tensor) -> torch.Tensor:
        return self.actor.deterministic(obs, base_action, *history)


def residual_inputs(actor: nn.Module) -> list[str]:
    """Input names of the residual graph: ``obs``, ``base_action`` (and ``history`` for a history residual)."""
    return ["obs", "base_action"] + (["history"] if actor.history else [])


def residual_onnx(actor: nn.Module) -> onnx.ModelProto:
    """Trace ``actor.deterministic(obs, base_action[, history])`` (a
    :class:`robot_rl.residual.resip.ResidualActor`)."""
    module = _Deterministic(actor.eval()).eval()
    args = (torch.zeros(1, actor.obs_dim), torch.zeros(1, actor.action_dim))
    if actor.history:
        args += (torch.zeros(1, actor.history, actor.obs_dim + actor.action_dim),)
    names = residual_inputs(actor)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=["action"],
                          dynamic_axes={n: {0: "batch"} for n in names + ["action"]})
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "robot-rl"
    onnx.checker.check_model(model)
    return model


def export_residual_policy(out_dir: str | Path, policy: DiffusionPolicy, actor: nn.Module, spec: dict[str, Any],
                           on_distribution_obs: np.ndarray, metadata: dict[str, Any], seed: int = 0,
                           samples: int = 64) -> dict[str, Any]:
    """Write the composition for ``policy`` (frozen base) and ``actor``; returns ``policy.json``.

    Verification: the residual graph against torch on random observations in the normaliser's range with
    random base actions, and the whole composition (sampler -> first action -> residual) against torch on
    on-distribution histories with the same noise; an error above 1e-5 raises :class:`ExportError`.
    """
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="base-", dir=out.parent if out.parent.exists() else None) as tmp:
        doc = export_chunked_policy(tmp, policy, spec, on_distribution_obs, metadata, seed=seed, samples=samples)
        base_onnx = (Path(tmp) / "policy.onnx").read_bytes()
    model = residual_onnx(actor)
    res = onnx_session(model)
    base = onnx_session(onnx.load_from_string(base_onnx))
    rng = np.random.default_rng(seed + 1)
    d, a, h, to, n_hist = policy.obs_dim, policy.act_dim, policy.horizon, policy.n_obs_steps, actor.history
    mid, span = policy.obs_norm.mid.numpy(), policy.obs_norm.span.numpy()
    amid, aspan = policy.act_norm.mid.numpy(), policy.act_norm.span.numpy()

    def random_actions(*shape: int) -> np.ndarray:
        return (amid + aspan * rng.uniform(-1.1, 1.1, (*shape, a))).astype(np.float32)

    def feed(obs: np.ndarray, base_action: np.ndarray, history: np.ndarray | None) -> dict[str, np.ndarray]:
        return dict(zip(residual_inputs(actor), (obs, base_action, history)[:2 + bool(n_hist)], strict=True))

    def torch_ref(obs: np.ndarray, base_action: torch.Tensor, history: np.ndarray | None) -> np.ndarray:
        extra = (torch.as_tensor(history),) if n_hist else ()
        with torch.no_grad():
            return actor.deterministic(torch.as_tensor(obs), base_action, *extra).numpy()

    obs = (mid + span * rng.uniform(-1.2, 1.2, (samples, d))).astype(np.float32)
    act = random_actions(samples)
    window = None
    if n_hist:  # past observations near the current one (as in an episode) and random past actions
        near = obs[:, None, :] + span * rng.normal(0.0, 0.05, (samples, n_hist, d))
        window = np.concatenate((near, random_actions(samples, n_hist)), -1).astype(np.float32)
    ref = torch_ref(obs, torch.as_tensor(act), window)
    err_random = float(np.abs(res.run(["action"], feed(obs, act, window))[0] - ref).max())
    on_dist = np.asarray(on_distribution_obs, dtype=np.float32)
    starts = rng.integers(max(0, n_hist - to + 1), len(on_dist) - to + 1, samples)
    hist = np.stack([on_dist[s:s + to] for s in starts])
    past = None
    if n_hist:  # the on-distribution rows before each current observation, with random executed actions
        rows = np.stack([on_dist[s + to - 1 - n_hist:s + to - 1] for s in starts])
        past = np.concatenate((rows, random_actions(samples, n_hist)), -1).astype(np.float32)
    noise = rng.standard_normal((samples, h, a)).astype(np.float32)
    with torch.no_grad():
        base_t = policy.sample(torch.as_tensor(hist), torch.as_tensor(noise))[:, 0]
    want = torch_ref(hist[:, -1], base_t, past)
    base_o = base.run(["action"], {"obs": hist, "noise": noise})[0][:, 0]
    got = res.run(["action"], feed(hist[:, -1], base_o, past))[0]
    err_chain = float(np.abs(got - want).max())
    if not max(err_random, err_chain) <= MAX_ABS_ERROR:
        raise ExportError(f"residual composition differs from torch: max abs error {max(err_random, err_chain):.3g} "
                          f"(residual {err_random:.3g}, sampler + residual {err_chain:.3g}) > {MAX_ABS_ERROR}")
    k = 4
    tv = {"example_obs": obs[:k].tolist(), "example_base_action": act[:k].tolist()}
    if n_hist:
        tv["example_history"] = window[:k].tolist()
    first = None if window is None else window[:k]
    tv["example_output"] = res.run(["action"], feed(obs[:k], act[:k], first))[0].tolist()
    tv["atol"] = MAX_ABS_ERROR
    doc["kind"] = "composed"
    doc["composition"] = {
        "kind": "residual", "network": RESIDUAL_FILE, "inputs": residual_inputs(actor), "scale": actor.scale,
        "space": "base action normalised to [-1, 1] (min-max over the demonstrations), clipped to [-1, 1]",
        "action_mid": amid.tolist(), "action_span": aspan.tolist(),
        "hidden": [m.out_features for m in actor.net if isinstance(m, nn.Linear)][:-1],
        "parameters": sum(p.numel() for p in actor.net.parameters()),
        "verification": {"max_abs_error": max(err_random, err_chain), "max_abs_error_residual": err_random,
                         "max_abs_error_sampler_residual": err_chain, "samples": [samples, samples]},
        "test_vector": tv,
    }
    if n_hist:
        doc["composition"]["history"] = {
            "steps": n_hist, "width": d + a, "order": "oldest first", "actions_read": actor.history_actions,
            "row": "the raw observation the policy acted on in that step (obs_dim), then the raw action the "
                   "residual network returned in that step (size)",
            "start": "after activation or a fault every row holds the first observation and a zero action"}
    contract.validate(doc)
    atomic_write_bytes(out / "policy.onnx", base_onnx)
    atomic_write_bytes(out / RESIDUAL_FILE, model.SerializeToString())
    atomic_write_json(out / "policy.json", doc)  # last: names the files above
    return doc
