"""Torch-free runtime of a residual composition: the base chunk every ``execute`` steps, the residual every step.

:class:`ResidualPolicyRunner` is a :class:`deploy.chunked_runtime.ChunkedPolicyRunner` (same history, chunk
schedule, input checks, clamping, action mapping, rate limiting and safe command) for exports with
``kind: "composed"`` and ``composition.kind: "residual"`` (:mod:`deploy.export.residual`): each control step
takes the base's action for this step from its chunk queue and runs ``composition.network`` on the current
observation (after clamping into the training box) and that base action; its output is the policy action.
A late base chunk holds the safe command as for the base alone (the residual never runs without a base action).

A history residual (``composition.history``) also takes ``history`` ``[1, H, obs_dim + size]``: the runner keeps
the last H rows of (clamped observation, action the residual returned), oldest first; activation and every
fault restart it with H rows of the first observation and a zero action (an episode start in training). A step
held for a late chunk adds no row.

A residual that reads a wrist force/torque sensor (``composition.wrench``) also takes ``wrench`` ``[1, 6]``, fed
from :attr:`ChunkedPolicyRunner.wrench` (how the caller writes it and what a bad reading does: the module
docstring of :mod:`deploy.chunked_runtime`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from deploy import contract
from deploy.chunked_runtime import ChunkedPolicyRunner
from deploy.inputs import ModelError
from deploy.onnx_io import onnx_session


class ResidualPolicyRunner(ChunkedPolicyRunner):
    """Run a residual composition (arguments as :class:`ChunkedPolicyRunner`)."""

    COMPOSITION = "residual"

    def __init__(self, export_dir: str | Path, **kwargs: Any) -> None:
        self.last_residual_ms = self.max_residual_ms = 0.0
        self.history_steps = 0
        self._window: np.ndarray | None = None
        self._window_empty = True
        super().__init__(export_dir, **kwargs)

    def _load_session(self, spec: dict[str, Any]) -> None:
        super()._load_session(spec)
        comp = spec["composition"]
        path = self.export_dir / comp["network"]
        if not path.is_file():
            raise ModelError(f"{path}: the residual network named by policy.json is missing")
        try:
            self.residual = onnx_session(path)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ModelError(f"{path}: cannot load ({type(exc).__name__}: {str(exc)[:200]})") from None
        ins = {i.name: i.shape for i in self.residual.get_inputs()}
        d, a = contract.obs_dim(spec), int(spec["action"]["size"])
        want = {"obs": [d], "base_action": [a]}
        hist = comp.get("history")
        if hist is not None:
            steps = hist.get("steps") if isinstance(hist, dict) else None
            if not isinstance(steps, int) or steps < 1 or hist.get("width") != d + a:
                raise ModelError(f"{self.export_dir}: composition.history needs steps >= 1 and width {d + a} "
                                 f"(obs_dim + size), got {hist}")
            self.history_steps = steps
            want["history"] = [steps, d + a]
            self._window = np.zeros((1, steps, d + a), dtype=np.float32)
        if self.wrench is not None:
            want["wrench"] = [6]
        self._feed_extra = {} if self.wrench is None else {"wrench": self.wrench}
        if sorted(ins) != sorted(want) or any(list(ins[k][1:]) != v for k, v in want.items()):
            raise ModelError(f"{path}: this residual network takes "
                             + ", ".join(f"{k!r} [batch, {', '.join(map(str, v))}]" for k, v in want.items())
                             + f"; got {ins}")
        self._res_out = [self.residual.get_outputs()[0].name]
        self._base_row = np.zeros((1, a), dtype=np.float32)

    def _reset_history(self) -> None:
        super()._reset_history()
        self._window_empty = True

    def compose(self, obs: np.ndarray, base_action: np.ndarray, history: np.ndarray | None = None,
                wrench: np.ndarray | None = None) -> np.ndarray:
        """Residual network on a batch: ``[k, obs_dim]`` + raw base actions ``[k, size]`` (+ windows ``[k, H,
        obs_dim + size]`` for a history residual, + wrenches ``[k, 6]`` for a wrench residual) -> actions
        ``[k, size]``."""
        feed = {"obs": np.ascontiguousarray(obs, np.float32),
                "base_action": np.ascontiguousarray(base_action, np.float32)}
        if self.history_steps:
            if history is None:
                raise ModelError(f"{self.export_dir}: this residual reads a history input; none was given")
            feed["history"] = np.ascontiguousarray(history, np.float32)
        if self.wrench is not None:
            feed["wrench"] = self.wrench_batch(wrench, len(feed["obs"]))
        return self.residual.run(self._res_out, feed)[0]

    def verify_test_vector(self) -> float:
        keys = {"example_obs", "example_base_action"} | ({"example_history"} if self.history_steps else set())
        err = super().verify_test_vector()
        return max(err, self.verify_composition(keys, lambda tv: self.compose(
            tv["example_obs"], tv["example_base_action"], tv.get("example_history"), tv.get("example_wrench")),
            "residual"))

    def _next_action(self, now: float) -> np.ndarray | None:
        base = super()._next_action(now)
        if base is None:
            return None
        self._base_row[0] = base
        window, d = self._window, self.obs.shape[1]
        if window is not None and self._window_empty:
            window[0, :, :d] = self.obs[0]
            window[0, :, d:] = 0.0
            self._window_empty = False
        feed = {"obs": self.obs, "base_action": self._base_row, **self._feed_extra}
        if window is not None:
            feed["history"] = window
        t0 = time.perf_counter()
        out = self.residual.run(self._res_out, feed)[0][0]
        self.last_residual_ms = (time.perf_counter() - t0) * 1e3
        self.max_residual_ms = max(self.max_residual_ms, self.last_residual_ms)
        if window is not None:
            window[0, :-1] = window[0, 1:].copy()
            window[0, -1, :d] = self.obs[0]
            window[0, -1, d:] = out
        return out

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update({"last_residual_ms": self.last_residual_ms, "max_residual_ms": self.max_residual_ms})
        return out
