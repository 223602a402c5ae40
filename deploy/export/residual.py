"""Export a residual composition: the base's chunked sampler plus the per-step residual actor.

The export directory holds ``policy.onnx`` (the base sampler, exactly as :mod:`deploy.export.chunked` writes
it), ``residual.onnx`` (inputs ``obs`` ``[batch, obs_dim]`` and ``base_action`` ``[batch, size]`` in raw units,
output ``action`` ``[batch, size]``: base action plus the mean residual, scaled and clipped in the base's
normalised action space, all folded into the graph; a history residual also takes ``history``
``[batch, H, obs_dim + size]``: the last H raw (observation, executed action) rows, oldest first, see
:mod:`robot_rl.residual.history`; a residual that reads a wrist force/torque sensor also takes ``wrench``
``[batch, 6]``: force x y z (N), torque x y z (N m) in the sensor frame, ``composition.wrench`` says which) and
``policy.json`` with ``kind: "composed"`` and ``composition: {"kind":
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

    def forward(self, obs: torch.Tensor, base_action: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        named = dict(zip(residual_inputs(self.actor)[2:], extra, strict=True))
        return self.actor.deterministic(obs, base_action, named.get("history"), named.get("wrench"))


def residual_inputs(actor: nn.Module) -> list[str]:
    """Input names of the residual graph: ``obs``, ``base_action`` (then ``history`` for a history residual and
    ``wrench`` for one that reads the wrist force/torque sensor)."""
    return ["obs", "base_action"] + (["history"] if actor.history else []) + (["wrench"] if actor.wrench_dim else [])


def residual_onnx(actor: nn.Module) -> onnx.ModelProto:
    """Trace ``actor.deterministic(obs, base_action[, history][, wrench])`` (a
    :class:`robot_rl.residual.resip.ResidualActor`)."""
    module = _Deterministic(actor.eval()).eval()
    args = (torch.zeros(1, actor.obs_dim), torch.zeros(1, actor.action_dim))
    if actor.history:
        args += (torch.zeros(1, actor.history, actor.obs_dim + actor.action_dim),)
    if actor.wrench_dim:
        args += (torch.zeros(1, actor.wrench_dim),)
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
                           samples: int = 64, wrench: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the composition for ``policy`` (frozen base) and ``actor``; returns ``policy.json``. ``wrench``: the
    sensor's description (``composition.wrench``), required when the actor reads one.

    Verification: the residual graph against torch on random observations in the normaliser's range with
    random base actions, and the whole composition (sampler -> first action -> residual) against torch on
    on-distribution histories with the same noise; an error above 1e-5 raises :class:`ExportError`.
    """
    out = Path(out_dir)
    if bool(actor.wrench_dim) != (wrench is not None):
        raise ExportError("a residual that reads a wrench needs its sensor description (wrench=...), others none")
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

    def feed(obs: np.ndarray, base_action: np.ndarray, history: np.ndarray | None,
             wr: np.ndarray | None) -> dict[str, np.ndarray]:
        given = {"obs": obs, "base_action": base_action, "history": history, "wrench": wr}
        return {k: given[k] for k in residual_inputs(actor)}

    def torch_ref(obs: np.ndarray, base_action: torch.Tensor, history: np.ndarray | None,
                  wr: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            return actor.deterministic(torch.as_tensor(obs), base_action, None if history is None else
                                       torch.as_tensor(history), None if wr is None else torch.as_tensor(wr)).numpy()

    def random_wrench() -> np.ndarray | None:  # around the training statistics, wider than they are
        if not actor.wrench_dim:
            return None
        m, s = actor.wrench_norm.mean.numpy(), actor.wrench_norm.std.numpy()
        return (m + s * rng.normal(0.0, 1.5, (samples, actor.wrench_dim))).astype(np.float32)

    obs = (mid + span * rng.uniform(-1.2, 1.2, (samples, d))).astype(np.float32)
    act = random_actions(samples)
    window = None
    if n_hist:  # past observations near the current one (as in an episode) and random past actions
        near = obs[:, None, :] + span * rng.normal(0.0, 0.05, (samples, n_hist, d))
        window = np.concatenate((near, random_actions(samples, n_hist)), -1).astype(np.float32)
    wr = random_wrench()
    ref = torch_ref(obs, torch.as_tensor(act), window, wr)
    err_random = float(np.abs(res.run(["action"], feed(obs, act, window, wr))[0] - ref).max())
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
    wr_chain = random_wrench()
    want = torch_ref(hist[:, -1], base_t, past, wr_chain)
    base_o = base.run(["action"], {"obs": hist, "noise": noise})[0][:, 0]
    got = res.run(["action"], feed(hist[:, -1], base_o, past, wr_chain))[0]
    err_chain = float(np.abs(got - want).max())
    if not max(err_random, err_chain) <= MAX_ABS_ERROR:
        raise ExportError(f"residual composition differs from torch: max abs error {max(err_random, err_chain):.3g} "
                          f"(residual {err_random:.3g}, sampler + residual {err_chain:.3g}) > {MAX_ABS_ERROR}")
    k = 4
    tv = {"example_obs": obs[:k].tolist(), "example_base_action": act[:k].tolist()}
    if n_hist:
        tv["example_history"] = window[:k].tolist()
    if wr is not None:
        tv["example_wrench"] = wr[:k].tolist()
    first, first_wr = (None if x is None else x[:k] for x in (window, wr))
    tv["example_output"] = res.run(["action"], feed(obs[:k], act[:k], first, first_wr))[0].tolist()
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
    if wrench is not None:
        doc["composition"]["wrench"] = {"size": actor.wrench_dim, **wrench}
    contract.validate(doc)
    atomic_write_bytes(out / "policy.onnx", base_onnx)
    atomic_write_bytes(out / RESIDUAL_FILE, model.SerializeToString())
    atomic_write_json(out / "policy.json", doc)  # last: names the files above
    return doc
