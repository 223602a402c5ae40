"""Torch-free runtime of a residual composition: the base chunk every ``execute`` steps, the residual every step.

:class:`ResidualPolicyRunner` is a :class:`deploy.chunked_runtime.ChunkedPolicyRunner` (same history, chunk
schedule, input checks, clamping, action mapping, rate limiting and safe command) for exports with
``kind: "composed"`` and ``composition.kind: "residual"`` (:mod:`deploy.export.residual`): each control step
takes the base's action for this step from its chunk queue and runs ``composition.network`` on the current
observation (after clamping into the training box) and that base action; its output is the policy action.
A late base chunk holds the safe command as for the base alone (the residual never runs without a base action).
"""

from __future__ import annotations

import math
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
        if sorted(ins) != ["base_action", "obs"] or list(ins["obs"][1:]) != [d] or list(ins["base_action"][1:]) != [a]:
            raise ModelError(f"{path}: a residual network takes 'obs' [batch, {d}] and 'base_action' [batch, {a}], "
                             f"got {ins}")
        self._res_out = [self.residual.get_outputs()[0].name]
        self._base_row = np.zeros((1, a), dtype=np.float32)

    def compose(self, obs: np.ndarray, base_action: np.ndarray) -> np.ndarray:
        """Residual network on a batch: ``[k, obs_dim]`` + raw base actions ``[k, size]`` -> actions ``[k, size]``."""
        return self.residual.run(self._res_out, {"obs": np.ascontiguousarray(obs, np.float32),
                                                 "base_action": np.ascontiguousarray(base_action, np.float32)})[0]

    def verify_test_vector(self) -> float:
        err = super().verify_test_vector()
        tv = self.spec["composition"].get("test_vector")
        if not isinstance(tv, dict) or not {"example_obs", "example_base_action", "example_output"} <= set(tv):
            raise ModelError(f"{self.export_dir}: composition.test_vector needs example_obs, example_base_action "
                             "and example_output")
        want = np.asarray(tv["example_output"], np.float32)
        got = self.compose(np.asarray(tv["example_obs"], np.float32), np.asarray(tv["example_base_action"], np.float32))
        res_err = float(np.abs(got - want).max()) if got.shape == want.shape else math.inf
        if not res_err <= float(tv.get("atol", 1e-5)):
            raise ModelError(f"{self.export_dir}: residual test vector mismatch (max abs error {res_err:.3g})")
        return max(err, res_err)

    def _next_action(self, now: float) -> np.ndarray | None:
        base = super()._next_action(now)
        if base is None:
            return None
        self._base_row[0] = base
        t0 = time.perf_counter()
        out = self.residual.run(self._res_out, {"obs": self.obs, "base_action": self._base_row})[0][0]
        self.last_residual_ms = (time.perf_counter() - t0) * 1e3
        self.max_residual_ms = max(self.max_residual_ms, self.last_residual_ms)
        return out

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update({"last_residual_ms": self.last_residual_ms, "max_residual_ms": self.max_residual_ms})
        return out
