"""Torch-free runtime of chunked (sampled) policies: observation history, chunk queue, replanning, deadline.

:class:`ChunkedPolicyRunner` is a :class:`deploy.runtime.PolicyRunner` (same input checks, clamping, action
mapping, rate limiting and safe command) whose network is an exported sampler (``kind: "chunked"`` in
``policy.json``): ``obs`` ``[1, observation_steps, obs_dim]`` + ``noise`` ``[1, horizon, size]`` ->
``action`` ``[1, horizon, size]``. Actions belong to control steps: a chunk computed from the observation of
step s holds the actions of steps s .. s + horizon - 1, and step t executes action t - s of the newest chunk.

* Synchronous (default; what simulation evaluation uses): a new chunk is sampled in the step where the current
  one has run ``execute`` actions, and its first action runs in that step. A query that takes longer than
  ``deadline_s`` (default one control period) holds the safe command in that step and reports it; the chunk
  then continues in the next step (its stale first action skipped).
* Asynchronous: the next chunk is sampled in a worker thread (onnxruntime releases the GIL) from the step
  where ``replan_steps`` actions of the current chunk remain, and is used as soon as it is ready, from the
  action of the current step on. If the current chunk runs out first, the runner holds the safe command and
  reports a missed deadline until the new chunk arrives.
* Temporal ensembling (``temporal_ensemble=m``, ACT): the executed action is the average of every kept
  chunk's action for this step, weighted exp(-m * i) with i = 0 for the oldest chunk.

The observation history starts filled with the first observation after activation or a fault, as the
training windows were padded. A fault (safe command) drops history and chunks; a late chunk does not.

A composition whose network reads a wrist force/torque sensor (``composition.wrench``: the residual of ResiP, the
edit policy and Q ensemble of EXPO) takes it one way, whichever the composition: the caller registers each reading
with ``accept("wrench", stamp)`` (the runner needs a ``"wrench"`` source, so a missing or stale sensor holds the
safe command) and writes force x y z, torque x y z, raw, in the sensor frame and units ``composition.wrench``
names, into :attr:`ChunkedPolicyRunner.wrench`. A reading that is not finite or outside ``valid_low``/
``valid_high`` holds the safe command for that step (as a late chunk: history and queue are kept).
"""

from __future__ import annotations

import importlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from deploy import contract
from deploy.onnx_io import load_onnx
from deploy.runtime import ModelError, PolicyRunner


class ChunkedPolicyRunner(PolicyRunner):
    """Run an exported chunked policy. Extra arguments (the rest as :class:`PolicyRunner`):

    Args:
        asynchronous: sample the next chunk in a worker thread (see the module docstring).
        replan_steps: asynchronous mode: request the next chunk when this many actions of the current remain.
        temporal_ensemble: ACT's weighting coefficient m; ``None`` executes the newest chunk only.
        deadline_s: synchronous mode: longest query time before the step holds (``None``: one control period,
            ``inf``: never).
        noise_seed: seed of the sampler noise (the runtime owns the randomness).
        clock: time source of the deadline (seconds).
    """

    COMPOSITION: str | None = None
    """``composition.kind`` a subclass runs on top of the base sampler (None: a plain chunked policy)."""

    def __init__(self, export_dir: str | Path, *, asynchronous: bool = False, replan_steps: int = 2,
                 temporal_ensemble: float | None = None, deadline_s: float | None = None, noise_seed: int = 0,
                 clock: Callable[[], float] = time.perf_counter, **kwargs: Any) -> None:
        try:
            spec = contract.load(export_dir)
        except (OSError, contract.ContractError) as exc:
            raise ModelError(str(exc)) from None
        kind = spec.get("kind", "mlp")
        if self.COMPOSITION is None and kind != "chunked":
            what = ""
            if kind == "composed":
                what = f" (composition {spec['composition']['kind']!r}: load it with load_runner)"
            raise ModelError(f"{export_dir}: policy.json kind is {kind!r}, not 'chunked'{what}")
        if self.COMPOSITION is not None and not (kind == "composed"
                                                 and spec["composition"]["kind"] == self.COMPOSITION):
            raise ModelError(f"{export_dir}: not a {self.COMPOSITION!r} composition (kind {kind!r})")
        ch = spec["chunk"]
        self.obs_steps, self.chunk_execute = int(ch["observation_steps"]), int(ch["execute"])
        h, a = int(ch["horizon"]), int(spec["action"]["size"])
        if not 0 <= replan_steps < self.chunk_execute:
            raise ModelError(f"replan_steps must be within 0..{self.chunk_execute - 1} (execute - 1)")
        self.asynchronous, self.replan_steps = asynchronous, int(replan_steps)
        self.temporal_ensemble = temporal_ensemble
        self.deadline_s = 1.0 / float(spec["control_rate_hz"]) if deadline_s is None else float(deadline_s)
        self._clock = clock
        self._rng = np.random.default_rng(noise_seed)
        self._hist = np.zeros((1, self.obs_steps, contract.obs_dim(spec)), dtype=np.float32)
        self._noise_shape = (1, h, a)
        self._ensemble = np.zeros(a, dtype=np.float32)
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self._pending: tuple[int, int, Future] | None = None  # (start step, generation, future)
        self._pool: ThreadPoolExecutor | None = None
        self._generation = 0
        self._t = 0
        self._hist_empty = True
        self.chunks = self.late_steps = 0
        self.last_chunk_ms = self.max_chunk_ms = 0.0
        self.wrench: np.ndarray | None = None
        """``[1, 6]`` the latest wrist wrench (compositions with ``composition.wrench``; NaN until written)."""
        super().__init__(export_dir, **kwargs)
        self.execute = self.chunk_execute
        if self.wrench is not None and "wrench" not in self.sources:
            raise ModelError(f"{export_dir}: this composition reads a wrist force/torque sensor; give the runner a "
                             "'wrench' source (sources={..., 'wrench': timeout_s})")

    # ------------------------------------------------------------------ loading
    def _load_session(self, spec: dict[str, Any]) -> None:
        self.session = load_onnx(self.export_dir)
        path = self.export_dir / "policy.onnx"
        ins = {i.name: i.shape for i in self.session.get_inputs()}
        outs = self.session.get_outputs()
        want = {"obs": [self.obs_steps, contract.obs_dim(spec)], "noise": list(self._noise_shape[1:])}
        if sorted(ins) != ["noise", "obs"] or len(outs) != 1:
            raise ModelError(f"{path}: a chunked policy takes inputs 'obs' and 'noise' and returns one output, got "
                             f"{sorted(ins)} -> {len(outs)} outputs")
        for name, shape in want.items():
            if list(ins[name][1:]) != shape:
                raise ModelError(f"{path}: input {name!r} has shape {ins[name]}, policy.json says [batch, "
                                 f"{', '.join(map(str, shape))}]")
        if list(outs[0].shape[1:]) != list(self._noise_shape[1:]):
            raise ModelError(f"{path}: output has shape {outs[0].shape}, policy.json says [batch, "
                             f"{self._noise_shape[1]}, {self._noise_shape[2]}]")
        self._input_name, self._output_names = "obs", [outs[0].name]
        wr = (spec.get("composition") or {}).get("wrench")
        if wr is not None:
            size = wr.get("size") if isinstance(wr, dict) else None
            lo, hi = (np.asarray(wr.get(k, []), np.float32) for k in ("valid_low", "valid_high")) if size else ((), ())
            if size != 6 or np.shape(lo) != (6,) or np.shape(hi) != (6,):
                raise ModelError(f"{self.export_dir}: composition.wrench needs size 6 and 6-entry valid_low/high, "
                                 f"got {wr}")
            self.wrench = np.full((1, 6), np.nan, np.float32)
            self._wrench_lo, self._wrench_hi = lo, hi

    def wrench_batch(self, wrench: np.ndarray | None, rows: int) -> np.ndarray:
        """``wrench`` as the ``[rows, 6]`` float32 batch a composition network takes, or a one-line
        :class:`ModelError` (none given, another shape)."""
        if wrench is None:
            raise ModelError(f"{self.export_dir}: this composition reads a wrench input [{rows}, 6]; none was given")
        out = np.ascontiguousarray(wrench, np.float32)
        if out.shape != (rows, 6):
            raise ModelError(f"{self.export_dir}: the wrench input must be [{rows}, 6] (force x y z, torque x y z), "
                             f"got {list(out.shape)}")
        return out

    def verify_test_vector(self) -> float:
        tv = self.spec["test_vector"]
        got = self.sample(np.asarray(tv["example_input"], np.float32), np.asarray(tv["example_noise"], np.float32))
        return self.compare_test_vector(tv, got)

    def verify_composition(self, keys: set[str], run: Callable[[dict[str, np.ndarray]], np.ndarray],
                           what: str) -> float:
        """Check ``policy.json``'s ``composition.test_vector`` (a residual or selector on top of the sampler):
        ``run`` maps its arrays (``keys``, + ``example_wrench`` when the composition reads the wrist wrench) to the
        output that must match ``example_output``; a one-line error names a missing key or the mismatch."""
        tv = self.spec["composition"].get("test_vector")
        keys = keys | {"example_output"} | ({"example_wrench"} if self.wrench is not None else set())
        if not isinstance(tv, dict) or not keys <= set(tv):
            raise ModelError(f"{self.export_dir}: composition.test_vector needs {', '.join(sorted(keys))}")
        return self.compare_test_vector(tv, run({k: np.asarray(tv[k], np.float32) for k in keys}),
                                        f"{what} test vector")

    def sample(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """One sampler query: ``[k, observation_steps, obs_dim]`` + noise -> ``[k, horizon, size]``."""
        return self.session.run(self._output_names, {"obs": np.ascontiguousarray(obs, np.float32),
                                                     "noise": np.ascontiguousarray(noise, np.float32)})[0]

    def forward_batch(self, obs: np.ndarray) -> np.ndarray:
        """Raw chunks for ``[k, observation_steps, obs_dim]`` with fresh noise from the runner's generator."""
        noise = self._rng.standard_normal((len(obs), *self._noise_shape[1:]), dtype=np.float32)
        return self.sample(obs, noise)

    # ------------------------------------------------------------------ state
    def _reset_history(self) -> None:
        super()._reset_history()
        self._hist_empty = True
        self._chunks.clear()
        self._pending = None
        self._generation += 1  # a result still running in the worker belongs to the old run: dropped
        self._t = 0

    def close(self) -> None:
        """Stop the worker thread (asynchronous mode)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ------------------------------------------------------------------ the chunk queue
    def _query(self, hist: np.ndarray, wrench: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """A new chunk for history ``hist`` (and the wrench reading of the same step, for a composition that reads
        one; the base sampler does not); ``(chunk, seconds)``."""
        t0 = self._clock()
        chunk = self.sample(hist, self._rng.standard_normal(self._noise_shape, dtype=np.float32))[0]
        return chunk, self._clock() - t0

    def _adopt(self, start: int, chunk: np.ndarray, seconds: float) -> None:
        self.chunks += 1
        self.last_chunk_ms = seconds * 1e3
        self.max_chunk_ms = max(self.max_chunk_ms, self.last_chunk_ms)
        self._chunks.append((start, chunk))
        if self.temporal_ensemble is None:
            while len(self._chunks) > 1:
                self._chunks.popleft()
        else:  # keep every chunk that still has an action for this step or later
            while self._t - 1 - self._chunks[0][0] >= len(self._chunks[0][1]):
                self._chunks.popleft()

    def _late(self, reason: str) -> None:
        self.late_steps += 1
        self.last_reason = reason

    def _next_action(self, now: float) -> np.ndarray | None:
        w = self.wrench
        if w is not None and not ((w >= self._wrench_lo).all() and (w <= self._wrench_hi).all()):  # NaN fails too
            self.last_reason = f"wrench reading not finite or outside its plausible range: {w[0].tolist()}"
            return None
        obs = self.obs[0]
        if self._hist_empty:
            self._hist[0] = obs
            self._hist_empty = False
        else:
            self._hist[0, :-1] = self._hist[0, 1:]
            self._hist[0, -1] = obs
        t = self._t
        self._t += 1
        if self._pending is not None and self._pending[2].done():
            start, gen, fut = self._pending
            self._pending = None
            if gen == self._generation:
                try:
                    chunk, seconds = fut.result()
                except Exception as exc:  # a failed query: reported, the next step asks again
                    self._late(f"action chunk query failed ({type(exc).__name__}: {str(exc)[:120]})")
                    return None
                self._adopt(start, chunk, seconds)
        k = t - self._chunks[-1][0] if self._chunks else None
        if not self.asynchronous or k is None:
            if k is None or k >= self.execute:
                chunk, seconds = self._query(self._hist, self.wrench)
                self._adopt(t, chunk, seconds)
                if seconds > self.deadline_s:
                    self._late(f"action chunk late ({seconds * 1e3:.1f} ms > deadline {self.deadline_s * 1e3:.1f} ms)")
                    return None
        else:
            if self._pending is None and k >= self.execute - self.replan_steps:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-sampler")
                wrench = None if self.wrench is None else self.wrench.copy()  # the reading of the query's step
                self._pending = (t, self._generation, self._pool.submit(self._query, self._hist.copy(), wrench))
            if k >= self.execute:
                self._late(f"next action chunk not ready: deadline missed ({k - self.execute + 1} step(s) "
                           f"after the queue ran dry)")
                return None
        return self._action_at(t)

    def _action_at(self, t: int) -> np.ndarray:
        if self.temporal_ensemble is None:
            start, chunk = self._chunks[-1]
            return chunk[t - start]
        acc = self._ensemble
        acc.fill(0.0)
        total = 0.0
        for i, (start, chunk) in enumerate(c for c in self._chunks if 0 <= t - c[0] < len(c[1])):
            w = math.exp(-self.temporal_ensemble * i)
            acc += w * chunk[t - start]
            total += w
        acc /= total
        return acc

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update({"chunks": self.chunks, "late_steps": self.late_steps, "last_chunk_ms": self.last_chunk_ms,
                    "max_chunk_ms": self.max_chunk_ms})
        if self.wrench is not None:  # the reading the composition reads next (NaN until one arrived)
            out["wrench"] = self.wrench[0].tolist()
        return out


COMPOSITIONS: dict[str, str] = {"residual": "deploy.residual_runtime:ResidualPolicyRunner",
                                "candidates": "deploy.candidates_runtime:CandidatesPolicyRunner"}
"""``composition.kind`` -> ``module:class`` of its runner (a :class:`ChunkedPolicyRunner` subclass)."""


def load_runner(export_dir: str | Path, **kwargs: Any) -> PolicyRunner:
    """The runner for whatever ``export_dir`` holds: :class:`ChunkedPolicyRunner` for ``kind: "chunked"``, the
    runner of :data:`COMPOSITIONS` for ``kind: "composed"``, :class:`~deploy.recurrent_runtime.RecurrentPolicyRunner`
    for ``kind: "recurrent"``, else :class:`PolicyRunner`."""
    try:
        spec = contract.load(export_dir)
    except (OSError, contract.ContractError) as exc:
        raise ModelError(str(exc)) from None
    if contract.is_composed(spec):
        kind = spec["composition"]["kind"]
        if kind not in COMPOSITIONS:
            raise ModelError(f"{export_dir}: unknown composition kind {kind!r}; this runtime knows "
                             f"{', '.join(sorted(COMPOSITIONS))}")
        module, _, name = COMPOSITIONS[kind].partition(":")
        return getattr(importlib.import_module(module), name)(export_dir, **kwargs)
    if contract.is_recurrent(spec):
        from deploy.recurrent_runtime import RecurrentPolicyRunner

        return RecurrentPolicyRunner(export_dir, **kwargs)
    return (ChunkedPolicyRunner if contract.is_chunked(spec) else PolicyRunner)(export_dir, **kwargs)
