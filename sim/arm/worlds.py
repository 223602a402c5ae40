"""Many MuJoCo worlds stepped together: one ``MjModel`` + ``MjData`` per env, threads over ``MjData``.

Each control step makes one ``mj_step(model, data, nstep=substeps)`` call per env, so the physics substeps
run in C with the GIL released (MuJoCo's bindings release it); envs are split into ``num_threads`` chunks run
by a thread pool. Results do not depend on the thread count (each world is stepped by exactly one call).
Each env owns a copy of the model so that domain randomisation (masses, friction, gains) is per env.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np

_BAD_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL)
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


class BatchedWorlds:
    """``num_envs`` independent copies of ``model`` with batched numpy views of their state."""

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
        self.unstable = np.zeros(num_envs, dtype=bool)
        bounds = np.linspace(0, num_envs, self.num_threads + 1).astype(int)
        self._chunks = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self._pool = ThreadPoolExecutor(self.num_threads) if self.num_threads > 1 else None
        self._ctrl = np.zeros((num_envs, model.nu))
        self._nstep = 1
        self.refresh()

    def _step_chunk(self, envs: range) -> None:
        for i in envs:
            m, d = self.models[i], self.datas[i]
            d.ctrl[:] = self._ctrl[i]
            before = sum(d.warning[w].number for w in _BAD_WARNINGS)
            mujoco.mj_step(m, d, nstep=self._nstep)
            self.unstable[i] = sum(d.warning[w].number for w in _BAD_WARNINGS) != before
            self.qpos[i] = d.qpos
            self.qvel[i] = d.qvel

    def step(self, ctrl: np.ndarray, nstep: int) -> None:
        """Hold ``ctrl [N, nu]`` for ``nstep`` physics steps in every world (ctrl must already be finite)."""
        self._ctrl[:] = ctrl
        self._nstep = int(nstep)
        if self._pool is None:
            self._step_chunk(self._chunks[0])
        else:
            for f in [self._pool.submit(self._step_chunk, c) for c in self._chunks]:
                f.result()

    def forward(self, envs) -> None:
        """Recompute derived quantities (positions, contacts) of ``envs`` after their state was set."""
        for i in envs:
            mujoco.mj_forward(self.models[i], self.datas[i])
        self.refresh(envs)

    def refresh(self, envs=None) -> None:
        for i in range(self.num_envs) if envs is None else envs:
            self.qpos[i] = self.datas[i].qpos
            self.qvel[i] = self.datas[i].qvel

    def contact_pairs(self, i: int) -> np.ndarray:
        """Geom id pairs ``[ncon, 2]`` in contact in env ``i`` (from the last physics substep)."""
        d = self.datas[i]
        return d.contact.geom[: d.ncon]

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
