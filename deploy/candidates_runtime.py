"""Torch-free runtime of a candidates composition (:mod:`deploy.export.candidates`): the base samples several
candidates and a second network picks one.

:class:`CandidatesPolicyRunner` is a :class:`deploy.chunked_runtime.ChunkedPolicyRunner` (same history, chunk
schedule, input checks, clamping, action mapping, rate limiting and safe command) for exports with
``kind: "composed"`` and ``composition.kind: "candidates"``:

* ``score: "chunk"`` (re-ranking): each chunk query samples ``k`` chunks (candidate 0 with the noise the base
  alone would draw, the other k - 1 from a second generator) and queues the one whose executed part
  ``value.onnx`` scores highest.
* ``score: "action"`` (EXPO): each chunk query samples ``k`` chunks (noise as above) and ``select.onnx`` picks
  among their first actions and the edits of them; the chunk of the winner (``index mod k``) is queued and its
  winning action runs now. On the chunk's other steps ``select.onnx`` picks between the chunk's action of the
  step and its edit (the action repeated ``k`` times as candidates). Asynchronous mode chooses the chunk on the
  history its query was made from and runs the step's selection on the current one.

An EXPO selector that reads a wrist force/torque sensor (``composition.wrench``) also takes ``wrench`` ``[batch,
6]`` (raw N, N m; its fixed scale is folded into the graph), fed from :attr:`ChunkedPolicyRunner.wrench` exactly as
a residual's (:mod:`deploy.chunked_runtime`): the chunk choice reads the reading of the step its query was made in,
each step's selection the current one.

Scores that tie go to the lowest index (numpy's argmax), so a constant value runs the base.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from deploy.chunked_runtime import ChunkedPolicyRunner
from deploy.inputs import ModelError
from deploy.onnx_io import onnx_session


class CandidatesPolicyRunner(ChunkedPolicyRunner):
    """Run a candidates composition (arguments as :class:`ChunkedPolicyRunner`)."""

    COMPOSITION = "candidates"

    def __init__(self, export_dir: str | Path, **kwargs: Any) -> None:
        self.last_select_ms = self.max_select_ms = 0.0
        self.other_chunks = 0  # chunks chosen that are not the base's own sample (candidate 0)
        self._boundary: tuple[int, np.ndarray] | None = None  # (step, action) chosen with the latest chunk
        # the extra candidates draw from their own stream: the base's noise stays what the base alone draws
        self._cand_rng = np.random.default_rng([int(kwargs.get("noise_seed", 0)), 1])
        super().__init__(export_dir, **kwargs)

    def _load_session(self, spec: dict[str, Any]) -> None:
        super()._load_session(spec)
        comp = spec["composition"]
        self.score_kind, self.k = comp.get("score"), int(comp.get("k", 0))
        if self.score_kind not in ("chunk", "action") or self.k < 1:
            raise ModelError(f"{self.export_dir}: composition needs score 'chunk' or 'action' and k >= 1, got "
                             f"{self.score_kind!r}, {comp.get('k')!r}")
        path = self.export_dir / comp["network"]
        if not path.is_file():
            raise ModelError(f"{path}: the network named by policy.json is missing")
        try:
            self.selector = onnx_session(path)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ModelError(f"{path}: cannot load ({type(exc).__name__}: {str(exc)[:200]})") from None
        want = ["chunk", "obs"] if self.score_kind == "chunk" else ["candidates", "obs"]
        if self.wrench is not None:
            if self.score_kind != "action":
                raise ModelError(f"{self.export_dir}: composition.wrench is implemented for score 'action' (EXPO) "
                                 f"only, got score {self.score_kind!r}")
            want.append("wrench")
        ins = {i.name: i.shape for i in self.selector.get_inputs()}
        if sorted(ins) != sorted(want) or ("wrench" in ins and list(ins["wrench"][1:]) != [6]):
            why = " (policy.json composition.wrench and the network must agree)" if "wrench" in [*ins, *want] else ""
            raise ModelError(f"{path}: a {self.score_kind!r} network takes inputs {sorted(want)}{why}, got {ins}")
        outs = [o.name for o in self.selector.get_outputs()]
        if self.score_kind == "action" and outs != ["action", "index"]:
            raise ModelError(f"{path}: an EXPO selector returns 'action' and 'index' (chunk-level selection), got "
                             f"{outs}; re-export the run with this version (`robot-rl export RUN`)")
        self._sel_out = outs[:1]
        self._cand = np.zeros((1, self.k, int(spec["action"]["size"])), dtype=np.float32)

    def _selector_feed(self, obs: np.ndarray, second: np.ndarray, wrench: np.ndarray | None) -> dict[str, np.ndarray]:
        feed = {"obs": np.ascontiguousarray(obs, np.float32),
                "chunk" if self.score_kind == "chunk" else "candidates": np.ascontiguousarray(second, np.float32)}
        if self.wrench is not None:
            feed["wrench"] = self.wrench_batch(wrench, len(feed["obs"]))
        return feed

    def run_selector(self, obs: np.ndarray, second: np.ndarray, wrench: np.ndarray | None = None) -> np.ndarray:
        """The composition network on a batch: histories and chunks (``score: chunk``) or candidates (+ the
        wrenches ``[batch, 6]`` for a selector that reads one)."""
        return self.selector.run(self._sel_out, self._selector_feed(obs, second, wrench))[0]

    def verify_test_vector(self) -> float:
        key = "example_chunk" if self.score_kind == "chunk" else "example_candidates"
        err = super().verify_test_vector()
        return max(err, self.verify_composition(
            {"example_obs", key}, lambda tv: self.run_selector(tv["example_obs"], tv[key], tv.get("example_wrench")),
            "composition"))

    def _reset_history(self) -> None:
        super()._reset_history()
        self._boundary = None

    def _extra_chunks(self, hist: np.ndarray, count: int) -> np.ndarray:
        noise = self._cand_rng.standard_normal((count, *self._noise_shape[1:]), dtype=np.float32)
        return self.sample(np.repeat(hist, count, axis=0), noise)

    def _query(self, hist: np.ndarray, wrench: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        if self.score_kind == "chunk" and self.k == 1:
            return super()._query(hist)
        t0 = self._clock()
        first = self.sample(hist, self._rng.standard_normal(self._noise_shape, dtype=np.float32))
        chunks = first if self.k == 1 else np.concatenate((first, self._extra_chunks(hist, self.k - 1)))
        if self.score_kind == "chunk":
            score = self.run_selector(np.repeat(hist, self.k, axis=0), chunks[:, : self.chunk_execute])
            best = int(np.argmax(score))
        else:
            action, index = self.selector.run(["action", "index"],
                                              self._selector_feed(hist, chunks[None, :, 0], wrench))
            self._boundary = (self._t - 1, action[0])  # the step this query is made in (synchronous mode)
            best = int(index[0]) % self.k
        self.other_chunks += best != 0
        return chunks[best], self._clock() - t0

    def _next_action(self, now: float) -> np.ndarray | None:
        base = super()._next_action(now)
        if base is None or self.score_kind != "action":
            return base
        t = self._t - 1
        if not self.asynchronous and self._boundary is not None and self._boundary[0] == t:
            return self._boundary[1]  # chosen with the chunk, on this step's history
        t0 = time.perf_counter()
        self._cand[0, :] = base
        out = self.run_selector(self._hist, self._cand, self.wrench)[0]
        self.last_select_ms = (time.perf_counter() - t0) * 1e3
        self.max_select_ms = max(self.max_select_ms, self.last_select_ms)
        return out

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update({"last_select_ms": self.last_select_ms, "max_select_ms": self.max_select_ms,
                    "other_chunks": self.other_chunks})
        return out
