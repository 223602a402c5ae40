"""A fused CPU implementation of the L2F hover task: one numba kernel pass per env and step.

:class:`FusedQuadrotorHoverEnv` is a drop-in replacement for :class:`~sim.quadrotor.task.QuadrotorHoverEnv` on
the CPU (same constructor, attributes, observation layout, reward, termination and auto-reset) that runs
RK4, reward, termination, observations and resets of each env in one pass of a multi-threaded numba kernel
(``_fused_kernels.py``). The state lives in numpy float32 buffers; ``state``, ``force``, ``torque``,
``target`` and ``steps`` are torch tensors viewing them (no copies), so writing into them changes the env.

Differences from the torch reference, all within the batched-env contract:

* random numbers come from a per-env counter-based generator (``_fused_rng.py``), so a seed gives a different
  (but equally distributed) stream than torch's, and results do not depend on the number of threads;
* ``info["final_obs"]`` equals ``obs`` exactly for envs that did not finish (the reference redraws their
  actor noise when another env resets). It is materialised lazily, on first access, from ``obs`` and the
  stored rows of the finished envs: read it before modifying ``obs`` in place;
* per-env vehicles (``vehicles.enabled``, ``_vehicle_kernels.py``: the torch env's vehicle model, latency and
  noise scale included) are drawn from that per-env stream too, so the same seed flies other vehicles than the
  torch env's; held-out vehicles with a generator of their own (``vehicles.seed``) stay with the torch env, as
  do the domain randomisation's observation latency (``randomization.obs_latency_steps``) and CUDA devices
  (ValueError; :func:`sim.quadrotor.factory.make_hover_env` falls back to the torch env for them). With vehicles,
  ``vehicles()`` gives every env's vehicle and ``pt`` only the frame's parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import numba
import numpy as np
import torch

from sim.core import BatchedEnv, CompiledStep, Obs
from sim.quadrotor import _fused_kernels as K
from sim.quadrotor import _vehicle_kernels as V
from sim.quadrotor._fused_rng import make_keys
from sim.quadrotor._fused_step import compiled_step
from sim.quadrotor.config import QuadrotorTaskConfig, RewardWeights, critic_history_actions, init_min_w, start_rpm_mode
from sim.quadrotor.dynamics import STATE_DIM
from sim.quadrotor.params import QuadrotorParams
from sim.quadrotor.task import REWARD_TERMS, check_action, hover_export_spec, resolve_frame, reward_from_terms
from sim.quadrotor.vehicle_replay import VehicleReplay, draw_constants
from sim.quadrotor.vehicles import VEHICLE_KEYS


def fused_unsupported_reason(cfg: QuadrotorTaskConfig) -> str | None:
    """Why ``cfg`` cannot run on :class:`FusedQuadrotorHoverEnv` (one line), or ``None`` if it can."""
    if torch.device(cfg.device).type != "cpu":
        return f"FusedQuadrotorHoverEnv runs on the CPU only, got device={cfg.device!r} (use QuadrotorHoverEnv)"
    if cfg.vehicles.enabled and cfg.vehicles.seed is not None:
        return ("FusedQuadrotorHoverEnv draws vehicles from the env's own stream; held-out vehicles "
                "(vehicles.seed) come from torch's generator (use QuadrotorHoverEnv)")
    if cfg.vehicles.enabled and cfg.randomization.enabled:
        return "vehicles: needs randomization off (the vehicle distribution draws mass, inertia, thrust, motors)"
    if tuple(cfg.randomization.obs_latency_steps) != (0, 0):
        return ("FusedQuadrotorHoverEnv does not support randomization.obs_latency_steps="
                f"{tuple(cfg.randomization.obs_latency_steps)} (use QuadrotorHoverEnv)")
    if cfg.action_level != "motor_rpm" or not cfg.obs_angular_velocity:
        return (f"FusedQuadrotorHoverEnv supports action_level='motor_rpm' with the angular velocity observed only, "
                f"got {cfg.action_level!r} / obs_angular_velocity={cfg.obs_angular_velocity} (use QuadrotorHoverEnv)")
    if cfg.action_history < 0 or cfg.num_envs < 1:
        return f"need num_envs >= 1 and action_history >= 0, got {cfg.num_envs} and {cfg.action_history}"
    return None


class FinalObs(Mapping):
    """``info["final_obs"]`` of a step in which some envs finished, built on first access of each group.

    Group ``g`` is ``obs[g]`` with the rows ``done_idx`` replaced by the stored pre-reset observations.
    """

    def __init__(self, obs: Obs, done_idx: torch.Tensor, rows: Obs) -> None:
        self._obs, self._idx, self._rows, self._cache = obs, done_idx, rows, {}

    def __getitem__(self, group: str) -> torch.Tensor:
        if group not in self._cache:
            full = self._obs[group].clone()
            full[self._idx] = self._rows[group]
            self._cache[group] = full
        return self._cache[group]

    def __iter__(self) -> Iterator[str]:
        return iter(self._obs)

    def __len__(self) -> int:
        return len(self._obs)


class FusedQuadrotorHoverEnv(BatchedEnv):
    """The hover task of :class:`~sim.quadrotor.task.QuadrotorHoverEnv`, fused into numba kernels (CPU only).

    Observation groups, reward, termination, truncation and auto-reset are those of the torch env; see the
    module docstring for the few differences. Threads: ``numba.set_num_threads`` (chunks of 512 envs run in
    parallel; fewer than 1024 envs always run on one thread). On a machine shared with other busy jobs one
    thread is often fastest, since every parallel step waits for its slowest thread.
    """

    def __init__(self, cfg: QuadrotorTaskConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg = replace(cfg) if cfg is not None else QuadrotorTaskConfig()
        reason = fused_unsupported_reason(cfg)
        if reason is not None:
            raise ValueError(reason)
        self.params = p = resolve_frame(cfg.frame)
        self.num_envs = n = cfg.num_envs
        self.device = torch.device("cpu")
        self.dt = cfg.dt
        self.max_episode_steps = cfg.episode_length
        self.action_dim = 4
        self.hover_action = p.hover_action
        self._dr, self._veh = cfg.randomization, cfg.vehicles
        lmax = int(self._veh.latency_steps[1]) if self._veh.enabled else 0
        self.obs_dims = {"policy": 18 + 4 * cfg.action_history,
                         "critic": 28 + (4 if self._dr.enabled else 0) + (V.N_VEH if self._veh.enabled else 0)
                         + ((4 * critic_history_actions(cfg) + (lmax > 0)) if cfg.critic_actor_inputs else 0)}
        base = (p.mass, *p.inertia, p.thrust_coefficient, p.motor_time_constant)
        geo = np.zeros(K.GEO_SIZE, np.float32)
        geo[K.GEO_RX:K.GEO_RX + 4] = [r[0] for r in p.rotor_positions]
        geo[K.GEO_RY:K.GEO_RY + 4] = [r[1] for r in p.rotor_positions]
        geo[K.GEO_YAW:K.GEO_YAW + 4] = [s * p.torque_coefficient for s in p.yaw_signs]
        geo[K.GEO_G:K.GEO_G + 3] = p.gravity
        geo[[K.GEO_RPM_MIN, K.GEO_RPM_MAX, K.GEO_DT, K.GEO_H6]] = p.rpm_min, p.rpm_max, cfg.dt, cfg.dt / 6.0
        geo[K.GEO_HALF_SPAN] = 0.5 * (p.rpm_max - p.rpm_min)
        geo[K.GEO_BASE:K.GEO_BASE + 6] = base
        task = np.zeros(K.T_SIZE, np.float64)
        task[[K.T_POS_LIMIT, K.T_MAX_STEPS, K.T_HOVER, K.T_NOISE, K.T_GUIDE]] = (
            cfg.position_limit, cfg.episode_length, self.hover_action, float(cfg.noise), cfg.init_guidance)
        task[[K.T_INIT_P, K.T_MIN_W, K.T_INIT_V, K.T_INIT_W, K.T_INIT_RPM, K.T_FSTD, K.T_TSTD]] = (
            cfg.init_max_position, init_min_w(cfg), cfg.init_max_linear_velocity,
            cfg.init_max_angular_velocity,
            0.5 * (p.rpm_min + p.rpm_max) if cfg.init_rpm_relative else cfg.init_rpm,  # action 0's speed
            cfg.disturbance_force_std_g, cfg.disturbance_torque_std)
        ranges = (self._dr.mass, self._dr.inertia, self._dr.thrust_coefficient, self._dr.motor_time_constant)
        task[K.T_DR], task[K.T_HIST] = float(self._dr.enabled), cfg.action_history
        # the frame's hover speed from its (randomised) mass and thrust; a vehicle's start is set by its own kernel
        task[K.T_INIT_HOVER] = float(start_rpm_mode(cfg) == 2 and not cfg.vehicles.enabled)
        # 0: the critic reads no actor inputs; else 1 + its columns of the actor's history (the most recent ones)
        task[K.T_CRITIC_HIST] = float(1 + 4 * critic_history_actions(cfg)) if cfg.critic_actor_inputs else 0.0
        task[K.T_DR_LO:K.T_DR_LO + 4] = [r[0] for r in ranges]
        task[K.T_DR_HI:K.T_DR_HI + 4] = [r[1] for r in ranges]
        self._geo, self._task = geo, task
        sig = (cfg.obs_noise_position, cfg.obs_noise_rotation, cfg.obs_noise_linear_velocity,
               cfg.obs_noise_angular_velocity)
        counts = (3, 9, 3, 3)  # position, rotation matrix, linear velocity, angular velocity
        self._sig = np.repeat(np.array(sig if cfg.noise else (0.0,) * 4, np.float32), counts)  # x + 0 == x
        self._state = np.zeros((n, STATE_DIM), np.float32)
        self._force = np.zeros((n, 3), np.float32)
        self._torque = np.zeros((n, 3), np.float32)
        self._target = np.zeros((n, 3), np.float32)
        self._steps = np.zeros(n, np.int64)
        self._prm = np.tile(np.asarray(base, np.float32), (n, 1))
        self._factors = np.ones((n, 4), np.float32)
        # ring of the last H actions (one 4-column slot per step, at least one slot so that writes need no branch)
        self._ring = np.zeros((n, 4 * max(cfg.action_history, 1)), np.float32)
        self._head_arr = np.zeros(1, np.int64)  # ring slot of the newest action (the oldest is the next one)
        self._ctr = np.zeros(n, np.uint64)
        self._envs = np.arange(n, dtype=np.int64)
        self._keys = np.zeros(n, np.uint64)
        self._weights = np.zeros(7, np.float32)
        if self._veh.enabled:
            self._veh.check()
            self._init_vehicles(p, n, lmax)
        self._views = {k: torch.from_numpy(getattr(self, "_" + k))
                       for k in ("state", "force", "torque", "target", "steps", "factors")}
        prm = torch.from_numpy(self._prm)
        self.pt = p.tensors(1)._replace(mass=prm[:, 0:1], inertia=prm[:, 1:4], thrust_coefficient=prm[:, 4:5],
                                        motor_time_constant=prm[:, 5:6])
        self.set_reward_weights(cfg.reward)
        self._rekey(seed)
        self._reset_all()

    @property
    def _head(self) -> int:
        return int(self._head_arr[0])

    @_head.setter
    def _head(self, value: int) -> None:
        self._head_arr[0] = value

    # ----------------------------------------------------------------- tensors viewing the numpy buffers
    def _get(name: str):  # noqa: N805 - property factory used in the class body
        def get(self: FusedQuadrotorHoverEnv) -> torch.Tensor:
            return self._views[name]

        def put(self: FusedQuadrotorHoverEnv, value: torch.Tensor) -> None:
            self._views[name].copy_(torch.as_tensor(value))

        return property(get, put, doc=f"``{name}`` of every env (a torch view of the env's numpy buffer).")

    state = _get("state")
    force = _get("force")
    torque = _get("torque")
    target = _get("target")
    steps = _get("steps")
    factors = _get("factors")
    del _get

    @property
    def history(self) -> torch.Tensor:
        """The last ``action_history`` actions of every env, oldest first (a copy, ``[N, 4 * H]``)."""
        ring = self._ring[:, :4 * self.cfg.action_history]
        start = (self._head + 1) * 4 % max(ring.shape[1], 1)
        return torch.from_numpy(np.concatenate((ring[:, start:], ring[:, :start]), axis=1))

    # ----------------------------------------------------------------- public API
    reward_term_names = REWARD_TERMS

    def reward_from_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Rewards of stored reward terms under the current weights (for replay-buffer recomputation)."""
        return reward_from_terms(terms, self.reward_weights)

    def export_spec(self) -> dict[str, Any]:
        """The actor observation and action contract of this task (identical to the torch env's)."""
        return hover_export_spec(self.cfg, self.params)

    _BUFFERS = ("state", "force", "torque", "target", "steps", "prm", "factors", "ring", "keys", "ctr")
    _VEHICLE_BUFFERS = ("veh_values", "vprm", "delay")

    def _buffer_names(self) -> tuple[str, ...]:
        return self._BUFFERS + (self._VEHICLE_BUFFERS if self._veh.enabled else ())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every buffer and random-stream counter, so a checkpoint continues bit-exactly."""
        out = {f"env.{k}": torch.from_numpy(getattr(self, "_" + k).copy()) for k in self._buffer_names()}
        out["env.head"] = torch.tensor(self._head)
        if self._veh.enabled:
            out["env.delay_head"] = torch.tensor(self._dhead)
            out.update(self.replay.state_dict() if self._veh.replay_fraction > 0 else {})
        w = self.reward_weights
        out["env.reward_weights"] = torch.tensor(w.as_list() + [w.scale, w.constant], dtype=torch.float64)
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in self._buffer_names():
            getattr(self, "_" + k)[...] = state[f"env.{k}"].numpy()
        self._head = int(state["env.head"])
        if self._veh.enabled:
            self._dhead = int(state["env.delay_head"])
            if self._veh.replay_fraction > 0:
                self.replay.load_state_dict(state)
        w = state["env.reward_weights"].tolist()
        self.set_reward_weights(RewardWeights(*w[:5], scale=w[5], constant=w[6]))

    def set_reward_weights(self, weights: RewardWeights) -> None:
        """Change the reward weights from the next step on (used by curricula)."""
        self.reward_weights = replace(weights)
        self._weights[:] = weights.as_list() + [weights.scale, weights.constant]  # in place: compiled_step reads it

    def reset(self, seed: int | None = None) -> Obs:
        """Reset every env; a seed restarts every env's random stream (same seed, same episodes)."""
        if seed is not None:
            self._rekey(seed)
        return self._reset_all()

    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every env one step; finished envs are reset (see ``sim.core`` for the contract)."""
        a = action if isinstance(action, torch.Tensor) else torch.as_tensor(action)
        check_action(a, self.num_envs)
        if a.requires_grad:
            a = a.detach()
        if a.dtype != torch.float32 or a.device.type != "cpu" or not a.is_contiguous():
            a = a.to("cpu", torch.float32).contiguous()
        policy, critic, reward, terms, flags, done_idx, final_rows = self._launch(a.numpy())
        obs = {"policy": torch.from_numpy(policy), "critic": torch.from_numpy(critic)}
        terminated, truncated, done = torch.from_numpy(flags).unbind(0)
        final: Mapping[str, torch.Tensor] = obs
        if len(done_idx):
            rows = torch.from_numpy(final_rows)
            final = FinalObs(obs, torch.from_numpy(done_idx), {"policy": rows[:, :policy.shape[1]],
                                                               "critic": rows[:, policy.shape[1]:]})
        info: dict[str, Any] = {"final_obs": final, "done_mask": done, "reward_terms": torch.from_numpy(terms),
                                "time_outs": truncated}
        return obs, torch.from_numpy(reward), terminated, truncated, info

    def compiled_step(self) -> CompiledStep:
        """The step as one serial numba kernel (:func:`sim.quadrotor._fused_step.compiled_step`) on this env's own
        buffers; per-env vehicles have none (``step`` only)."""
        if self._veh.enabled:
            raise self.unsupported("a compiled step (compiled_step) over per-env vehicles")
        return CompiledStep(compiled_step, (self._bufs(), self._head_arr, self._envs, self._geo, self._task,
                                            self._sig, self._weights))

    def vehicles(self) -> dict[str, torch.Tensor]:
        """The current vehicle of every env ``{name: [N]}`` (names ``VEHICLE_KEYS``; vehicles enabled only)."""
        return dict(zip(VEHICLE_KEYS, torch.from_numpy(self._veh_values.copy()).unbind(-1), strict=True))

    def set_vehicles(self, values: torch.Tensor) -> None:
        """Fly the vehicles ``values`` ``[N, 13]`` (columns ``VEHICLE_KEYS``) from the current state on, until
        each env's next reset; every env's observation delay line restarts at its current observation."""
        if not self._veh.enabled or tuple(values.shape) != self._veh_values.shape:
            raise ValueError(f"set_vehicles: needs vehicles enabled and values of shape {self._veh_values.shape}")
        self._veh_values[...] = values.detach().to("cpu", torch.float32).numpy()
        V.refresh_kernel_v(self._bufs(), self._vbufs(), self._vd)

    # ----------------------------------------------------------------- internals
    def _init_vehicles(self, p: QuadrotorParams, n: int, lmax: int) -> None:
        """Buffers and constants of the per-env vehicles (``_vehicle_kernels``)."""
        vd = draw_constants(self._veh, n)
        vd[[V.VD_KF, V.VD_WH, V.VD_G]] = p.thrust_coefficient, p.hover_rpm, float(np.linalg.norm(p.gravity))
        vd[V.VD_J:V.VD_J + 3] = p.inertia
        vd[V.VD_RX:V.VD_RX + 4] = [r[0] for r in p.rotor_positions]
        vd[V.VD_RY:V.VD_RY + 4] = [r[1] for r in p.rotor_positions]
        vd[V.VD_SIGN:V.VD_SIGN + 4] = p.yaw_signs
        vd[V.VD_REL_RPM] = float(start_rpm_mode(self.cfg))  # 0 fixed, 1 action 0's speed, 2 hover speed
        self._vd = vd
        self._veh_values = np.zeros((n, V.N_VEH), np.float32)
        self._vprm = np.zeros((n, V.VP_SIZE), np.float32)
        self._delay = np.zeros((n, 18 * (lmax + 1)), np.float32)  # clean observations, one slot per step
        self._dhead = 0
        self.replay = VehicleReplay(self._veh, n, 0)  # unused while replay_fraction is 0

    def _rekey(self, seed: int) -> None:
        s = int(seed) & (2**64 - 1)
        self._keys[:] = make_keys(s - 2**64 if s >= 2**63 else s, self.num_envs)
        self._ctr[:] = 0
        if self._veh.enabled:
            self.replay.rekey(seed)

    def _launch(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Advance the history ring and run the step kernel on float32 ``action`` ``[N, 4]``; its raw outputs."""
        self._head = (self._head + 1) % (self._ring.shape[1] // 4)
        if self._veh.enabled:
            self._dhead = (self._dhead + 1) % (self._delay.shape[1] // 18)
            return V.step_kernel_v(action, self._bufs(), self._vbufs(), self.replay.bufs(), self._head,
                                   self._dhead, self._envs, self._geo, self._task, self._sig, self._weights, self._vd)
        args = (action, self._bufs(), self._head, self._envs, self._geo, self._task, self._sig, self._weights)
        if self.num_envs < 2 * K.CHUNK and (threads := numba.get_num_threads()) > 1:
            numba.set_num_threads(1)  # a single chunk: do not wake the other threads
            try:
                return K.step_kernel(*args)
            finally:
                numba.set_num_threads(threads)
        return K.step_kernel(*args)

    def _bufs(self) -> tuple[np.ndarray, ...]:
        return (self._state, self._force, self._torque, self._target, self._steps, self._prm, self._factors,
                self._ring, self._keys, self._ctr)

    def _vbufs(self) -> tuple[np.ndarray, ...]:
        return self._veh_values, self._vprm, self._delay

    def _reset_all(self) -> Obs:
        if self._veh.enabled:
            policy, critic = V.reset_kernel_v(self._envs, self._bufs(), self._vbufs(), self.replay.bufs(),
                                              self._head, self._dhead, self._geo, self._task, self._sig, self._vd)
            return {"policy": torch.from_numpy(policy), "critic": torch.from_numpy(critic)}
        policy, critic = K.reset_kernel(self._envs, self._bufs(), self._head, self._geo, self._task, self._sig)
        return {"policy": torch.from_numpy(policy), "critic": torch.from_numpy(critic)}


__all__ = ["FinalObs", "FusedQuadrotorHoverEnv", "fused_unsupported_reason"]
