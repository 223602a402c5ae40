"""Export a candidates composition: the base's chunked sampler plus the network that picks among its samples.

Two forms, one ``composition.kind``: ``"candidates"``:

* ``score: "chunk"`` (value-guided re-ranking, :mod:`robot_rl.residual.rerank`): where a chunk is due the runtime
  samples ``k`` chunks and ``network`` (``value.onnx``: inputs ``obs`` ``[batch, observation_steps, obs_dim]`` and
  ``chunk`` ``[batch, execute, size]`` raw, output ``score`` ``[batch]``) scores their executed parts; the best
  one is queued. ``edit: false``.
* ``score: "action"`` (EXPO, :mod:`robot_rl.residual.expo`): where a chunk is due the runtime samples ``k`` chunks
  and the candidates are their first actions; the chosen chunk then runs for ``execute`` steps, and on its other
  steps the candidates are its action of the step, repeated ``k`` times. ``network`` (``select.onnx``: inputs
  ``obs`` ``[batch, observation_steps, obs_dim]`` and ``candidates`` ``[batch, k, size]`` raw, outputs ``action``
  ``[batch, size]`` raw and ``index`` ``[batch]`` int64) adds their mean edits and returns the argmax-Q one and its
  index among the ``2k`` (``index mod k``: the chunk to run). ``edit: true``. An EXPO run that reads the wrist
  force/torque sensor (``--wrench``) also takes ``wrench`` ``[batch, 6]``: force x y z (N), torque x y z (N m), raw,
  as a ResiP residual's; ``composition.wrench`` describes the sensor and the fixed ``scale`` the graph divides by
  (:data:`robot_rl.residual.expo_inputs.WRENCH_SPAN`, read from the networks' buffers).

Candidate 0 always uses the noise the base alone would use, and ties go to the lowest index, so a constant
score runs the base. Normalisation, edits and the argmax are folded into the graphs. Verification: the whole
composition (sampler -> candidates -> network) against torch on the same noise; above 1e-5 nothing is written.
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
from robot_rl.residual.expo import margin_score
from robot_rl.residual.expo_inputs import WRENCH_DIM, agent_obs
from robot_rl.residual.q_ensemble import ensemble_score


class ChunkScorer(nn.Module):
    """Raw history + raw executed chunk -> score (a :class:`robot_rl.residual.value.ChunkValue`)."""

    def __init__(self, value: nn.Module, policy: Any) -> None:
        super().__init__()
        self.value, self.act_norm = value, policy.act_norm

    def forward(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        return self.value.score(obs.flatten(1), self.act_norm.normalize(chunk).flatten(1))


class ActionSelector(nn.Module):
    """Raw history (+ raw wrench ``[B, 6]`` for an agent that reads one) + raw candidates ``[B, k, A]`` -> the
    argmax-Q action among them and their mean edits (raw) and its index ``[B]`` among the 2k;
    :meth:`robot_rl.residual.expo.EXPOAgent.select` with ``stochastic=False``, in raw units."""

    def __init__(self, agent: nn.Module, policy: Any) -> None:
        super().__init__()
        self.edit, self.q, self.act_norm = agent.edit, agent.critic.q, policy.act_norm
        self.pessimism = float(agent.cfg.pessimism)
        self.margin = float(agent.cfg.select_margin)
        extra = int(agent.obs_dim) - policy.n_obs_steps * policy.obs_dim
        if extra not in (0, WRENCH_DIM):
            raise ExportError(f"the agent reads {agent.obs_dim} observation values; the base's history has "
                              f"{policy.n_obs_steps * policy.obs_dim} (+ {WRENCH_DIM} with the wrench)")
        self.wrench_dim = extra

    def wrench_scale(self) -> list[float]:
        """The scale each wrench component is divided by inside the graph (the Q ensemble's buffers; the edit
        policy's must agree)."""
        span = self.q.obs_span[-self.wrench_dim:]
        mid = self.q.obs_mid[-self.wrench_dim:]
        if not (torch.equal(span, self.edit.obs_span[-self.wrench_dim:]) and not mid.any()
                and not self.edit.obs_mid[-self.wrench_dim:].any()):
            raise ExportError("the Q ensemble and the edit policy scale the wrench differently (or offset it)")
        return span.tolist()

    def input_names(self) -> list[str]:
        """Names of the graph's inputs: ``obs``, ``candidates`` (then ``wrench``)."""
        return ["obs", "candidates"] + (["wrench"] if self.wrench_dim else [])

    def scores(self, obs: torch.Tensor, candidates: torch.Tensor,
               wrench: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``2k`` candidates (the base's, then their edits; normalised) ``[B, 2k, A]`` and their scores
        ``[B, 2k]``."""
        if (wrench is not None) != bool(self.wrench_dim):
            raise ExportError("the agent reads the wrench: give it [B, 6]" if self.wrench_dim else
                              "this agent does not read a wrench")
        b, k, a = candidates.shape
        flat_obs = agent_obs(obs, wrench)  # what training fed Q and the edit policy
        base = self.act_norm.normalize(candidates)
        rep = flat_obs.repeat_interleave(k, dim=0)
        edited = self.edit(rep, base.reshape(b * k, a)).reshape(b, k, a)
        cands = torch.cat((base, edited), dim=1)
        q = self.q(flat_obs.repeat_interleave(2 * k, dim=0), cands.reshape(b * 2 * k, a))
        score = ensemble_score(q, self.pessimism).reshape(b, 2 * k)
        if self.margin > 0:
            score = margin_score(q.reshape(-1, b, 2 * k), score, self.margin)
        return cands, score

    def forward(self, obs: torch.Tensor, candidates: torch.Tensor,
                wrench: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cands, score = self.scores(obs, candidates, wrench)
        b, a = cands.shape[0], cands.shape[2]
        idx = score.argmax(dim=1)
        best = torch.gather(cands, 1, idx.reshape(b, 1, 1).expand(b, 1, a)).squeeze(1)
        return self.act_norm.unnormalize(best), idx


def _onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], out: list[str]) -> onnx.ModelProto:
    buf = io.BytesIO()
    axes = {n: {0: "batch"} for n in [*names, *out]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), inputs, buf, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=out, dynamic_axes=axes)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "robot-rl"
    onnx.checker.check_model(model)
    return model


def export_candidates_policy(out_dir: str | Path, policy: Any, net: nn.Module, score: str, k: int,
                             spec: dict[str, Any], on_distribution_obs: np.ndarray, metadata: dict[str, Any],
                             seed: int = 0, samples: int = 32, wrench: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the composition of ``policy`` (frozen base) and ``net`` (a :class:`ChunkScorer` for ``score``
    ``"chunk"``, an :class:`ActionSelector` for ``"action"``) choosing among ``k`` candidates; returns
    ``policy.json``. ``wrench``: the sensor's description (:func:`sim.arm.wrench.wrench_contract`), required when
    the selector reads one (its verification then draws wrenches over +-1.2 of the graph's scale)."""
    if score not in ("chunk", "action") or k < 1:
        raise ExportError(f"score must be 'chunk' or 'action' and k >= 1 (got {score!r}, {k})")
    wdim = int(getattr(net, "wrench_dim", 0))
    if bool(wdim) != (wrench is not None):
        raise ExportError("a selector that reads a wrench needs its sensor description (wrench=...), others none")
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="base-", dir=out.parent if out.parent.exists() else None) as tmp:
        doc = export_chunked_policy(tmp, policy, spec, on_distribution_obs, metadata, seed=seed)
        base_onnx = (Path(tmp) / "policy.onnx").read_bytes()
    to, d, h, a, n = policy.n_obs_steps, policy.obs_dim, policy.horizon, policy.act_dim, policy.n_action_steps
    if score == "chunk":
        names, outs, example = ["obs", "chunk"], ["score"], (torch.zeros(1, to, d), torch.zeros(1, n, a))
    else:
        names, outs = net.input_names(), ["action", "index"]
        example = (torch.zeros(1, to, d), torch.zeros(1, k, a)) + ((torch.zeros(1, wdim),) if wdim else ())
    model = _onnx(net, example, names, outs)
    sess, base = onnx_session(model), onnx_session(onnx.load_from_string(base_onnx))
    rng = np.random.default_rng(seed + 1)
    on_dist = np.asarray(on_distribution_obs, dtype=np.float32)
    starts = rng.integers(0, len(on_dist) - to + 1, samples)
    hist = np.stack([on_dist[s:s + to] for s in starts])
    noise = rng.standard_normal((samples, k, h, a)).astype(np.float32)
    scale = net.wrench_scale() if wdim else []
    wr = (np.asarray(scale) * rng.uniform(-1.2, 1.2, (samples, wdim))).astype(np.float32) if wdim else None
    wr_t = None if wr is None else torch.as_tensor(wr)
    rep = np.repeat(hist, k, axis=0)
    chunks_o = base.run(["action"], {"obs": rep, "noise": noise.reshape(-1, h, a)})[0].reshape(samples, k, h, a)
    rows = np.arange(samples)
    with torch.no_grad():
        chunks_t = policy.sample(torch.as_tensor(rep), torch.as_tensor(noise.reshape(-1, h, a))).view(samples, k, h, a)
        if score == "chunk":
            want_s = net(torch.as_tensor(rep), chunks_t[:, :, :n].reshape(-1, n, a)).view(samples, k).numpy()
        else:
            cands_t, want_s = net.scores(torch.as_tensor(hist), chunks_t[:, :, 0], wr_t)
            want_s = want_s.numpy()
    if score == "chunk":
        s = sess.run(["score"], {"obs": rep, "chunk": np.ascontiguousarray(chunks_o[:, :, :n].reshape(-1, n, a))})[0]
        idx = s.reshape(samples, k).argmax(1)
        got, want = chunks_o[rows, idx], chunks_t[rows, idx].numpy()
        score_err = float(np.abs(s.reshape(samples, k) - want_s).max())
        tv_in = {"example_obs": rep[:4].tolist(), "example_chunk": chunks_o[:, :, :n].reshape(-1, n, a)[:4].tolist()}
        tv_out = s[:4]
    else:
        feed = {"obs": hist, "candidates": np.ascontiguousarray(chunks_o[:, :, 0])}
        if wr is not None:
            feed["wrench"] = wr
        got, idx = sess.run(["action", "index"], feed)
        with torch.no_grad():
            want = policy.act_norm.unnormalize(cands_t[rows, idx]).numpy()
        score_err = 0.0
        tv_in = {"example_obs": hist[:4].tolist(), "example_candidates": chunks_o[:4, :, 0].tolist()}
        if wr is not None:
            tv_in["example_wrench"] = wr[:4].tolist()
        tv_out = got[:4]
    # the argmax may differ from torch's only between candidates whose scores tie within the export's tolerance
    # (onnxruntime's and torch's kernels round differently); the action is then checked at ONNX's pick
    lost = want_s.max(1) - want_s[rows, idx]
    if not (lost <= MAX_ABS_ERROR).all():
        raise ExportError(f"{'value' if score == 'chunk' else 'select'}.onnx picks other candidates than torch on "
                          f"{int((lost > MAX_ABS_ERROR).sum())} of {samples} samples (score lost up to "
                          f"{float(lost.max()):.3g})")
    err = max(float(np.abs(got - want).max()), score_err)
    network = "value.onnx" if score == "chunk" else "select.onnx"
    doc["kind"] = "composed"
    doc["composition"] = {"kind": "candidates", "network": network, "score": score, "k": int(k),
                          "edit": score == "action", "inputs": names, "outputs": outs,
                          "verification": {"max_abs_error": err, "samples": samples},
                          "test_vector": {**tv_in, "example_output": tv_out.tolist(), "atol": MAX_ABS_ERROR}}
    if wrench is not None:
        doc["composition"]["wrench"] = {
            "size": wdim, **wrench, "scale": scale,
            "scaling": "the graph takes the raw reading (units above) and divides it by scale (fixed, not running "
                       "statistics: robot_rl.residual.expo_inputs.WRENCH_SPAN)"}
    contract.validate(doc)
    atomic_write_bytes(out / "policy.onnx", base_onnx)
    atomic_write_bytes(out / network, model.SerializeToString())
    atomic_write_json(out / "policy.json", doc)  # last: names the files above
    return doc
