"""Many MuJoCo worlds stepped together: one ``MjModel`` + ``MjData`` per env, threads over ``MjData``.

Each control step makes one ``mj_step(model, data, nstep=substeps)`` call per env, so the physics substeps
run in C with the GIL released (MuJoCo's bindings release it). Envs are split into ``num_threads`` contiguous
chunks, one per thread (the calling thread takes the last chunk, a pool of ``num_threads - 1`` workers the
others); each first runs the caller's ``prepare(lo, hi, chunk)`` for its rows (the env's IK, a numba kernel that
releases the GIL too), then steps its worlds, copies their state into the batched arrays and runs the caller's
``finish(lo, hi, chunk)`` (the task's observations and reward, again a GIL-free kernel). The only Python per env
is that loop (set ``ctrl``, step, copy four small arrays), and it runs inside the threads. Results do not depend
on the thread count: each world is stepped by exactly one call, and ``prepare`` / ``finish`` compute every row
independently of the others.

Each env owns a copy of the model so that domain randomisation (masses, friction, gains) is per env.
Contacts reach the batch through MuJoCo ``contact`` sensors (``sensordata``), so nobody scans contact lists
in Python. A world whose physics went unstable is reset by MuJoCo (``mj_resetData``, with a warning); that
shows as its clock falling behind, which flags it in ``unstable``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


class BatchedWorlds:
    """``num_envs`` independent copies of ``model`` with batched numpy copies of their state."""

    def __init__(self, model: mujoco.MjModel, num_envs: int, num_threads: int = 1) -> None:
        if num_envs < 1 or num_threads < 1:
            raise ValueError(f"need num_envs >= 1 and num_threads >= 1, got {num_envs} and {num_threads}")
        self.base_model = model
        self.num_envs = num_envs
        self.num_threads = min(num_threads, num_envs)
        self.models = [copy.copy(model) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.qpos = np.zeros((num_envs, model.nq))
        self.qvel = np.zeros((num_envs, model.nv))
        self.sensordata = np.zeros((num_envs, model.nsensordata))
        self.ctrl = np.zeros((num_envs, model.nu))
        """Controls applied by the next :meth:`step` (``prepare`` may fill its rows)."""
        self.unstable = np.zeros(num_envs, dtype=bool)
        self._views = [(m, d, d.ctrl, d.qpos, d.qvel, d.sensordata) for m, d in zip(self.models, self.datas,
                                                                                    strict=True)]
        bounds = np.linspace(0, num_envs, self.num_threads + 1).astype(int)
        self.chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        """Row ranges ``(lo, hi)`` handled by each worker."""
        self._pool = ThreadPoolExecutor(self.num_threads - 1) if self.num_threads > 1 else None
        self._nstep = 1
        self._prepare: Callable[[int, int, int], None] | None = None
        self._finish: Callable[[int, int, int], None] | None = None
        self.refresh()

    def _run_chunk(self, k: int) -> None:
        lo, hi = self.chunks[k]
        if self._prepare is not None:
            self._prepare(lo, hi, k)
        nstep, ctrl, qpos, qvel, sens, unstable = self._nstep, self.ctrl, self.qpos, self.qvel, self.sensordata, \
            self.unstable
        late = (nstep - 0.5) * self.base_model.opt.timestep
        step, views = mujoco.mj_step, self._views
        for i in range(lo, hi):
            m, d, d_ctrl, d_qpos, d_qvel, d_sens = views[i]
            d_ctrl[:] = ctrl[i]
            t = d.time
            step(m, d, nstep)
            unstable[i] = d.time < t + late
            qpos[i] = d_qpos
            qvel[i] = d_qvel
            sens[i] = d_sens
        if self._finish is not None:
            self._finish(lo, hi, k)

    def step(self, nstep: int, prepare: Callable[[int, int, int], None] | None = None,
             finish: Callable[[int, int, int], None] | None = None) -> None:
        """Per chunk: ``prepare(lo, hi, chunk)``, hold ``self.ctrl`` for ``nstep`` physics steps, ``finish(...)``.

        ``ctrl`` must be finite; ``prepare`` and ``finish`` must only touch rows ``lo..hi`` (they run in
        several threads at once, on different chunks).
        """
        self._nstep = int(nstep)
        self._prepare, self._finish = prepare, finish
        try:
            if self._pool is None:
                self._run_chunk(0)
            else:
                last = len(self.chunks) - 1
                futures = [self._pool.submit(self._run_chunk, k) for k in range(last)]
                try:
                    self._run_chunk(last)
                finally:
                    for f in futures:
                        f.result()
        finally:
            self._prepare = self._finish = None

    def forward(self, envs) -> None:
        """Recompute derived quantities (positions, contacts, sensors) of ``envs`` after their state was set."""
        for i in envs:
            mujoco.mj_forward(self.models[i], self.datas[i])
        self.refresh(envs)

    def refresh(self, envs=None) -> None:
        """Copy the state of ``envs`` (default all) from their ``MjData`` into the batched arrays."""
        for i in range(self.num_envs) if envs is None else envs:
            d = self.datas[i]
            self.qpos[i], self.qvel[i], self.sensordata[i] = d.qpos, d.qvel, d.sensordata

    def get_state(self) -> np.ndarray:
        """Full integration state ``[N, nstate]`` (time, qpos, qvel, act, ctrl, warm start, mocap, ...)."""
        size = mujoco.mj_stateSize(self.base_model, STATE_SPEC)
        out = np.zeros((self.num_envs, size))
        for i in range(self.num_envs):
            mujoco.mj_getState(self.models[i], self.datas[i], out[i], STATE_SPEC)
        return out

    def set_state(self, state: np.ndarray) -> None:
        for i in range(self.num_envs):
            mujoco.mj_setState(self.models[i], self.datas[i], np.asarray(state[i], dtype=np.float64), STATE_SPEC)
        self.forward(range(self.num_envs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
