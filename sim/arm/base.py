"""Shared machinery of the batched Panda tasks: actions, latency, domain randomisation, auto-reset, tensors.

A task subclass provides the scene (:meth:`ArmEnv._scene`), the start pose and object placement
(:meth:`ArmEnv._home_q`, :meth:`ArmEnv._place`), the observation components and
:meth:`ArmEnv._evaluate` (reward, success, failure). Everything else (the contract of :mod:`sim.core`) is here.
The scene is MJCF; the physics comes from a backend (:mod:`sim.arm.physics`: MuJoCo, the reference, or PyBullet),
which is all a task touches of the simulator (names of bodies and geoms, never engine ids).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
import torch
from numba import njit

from sim.arm.config import ArmTaskBase
from sim.arm.ee_control import EeDeltaController, EeDeltaLimits
from sim.arm.ik import ik_workspace
from sim.arm.kinematics import FINGER_MAX, JOINT_NAMES, Q_LOWER, Q_UPPER, QD_LIMIT, tcp_pose
from sim.arm.mjcf import panda_mjcf
from sim.arm.physics import make_physics
from sim.arm.wrench import WristWrench
from sim.core import BatchedEnv, Obs

STAT_KEYS = ("action_clipped", "ik_unreached", "rate_limited", "physics_unstable")


@njit(cache=True, nogil=True)
def _clip_rows(a: np.ndarray, low: float, high: float, out: np.ndarray) -> tuple[int, int]:
    """``out = clip(a, low, high)``; returns (rows with a non-finite entry, rows changed by the clip)."""
    bad = changed = 0
    for i in range(a.shape[0]):
        row_bad = row_changed = False
        for k in range(a.shape[1]):
            v = a[i, k]
            row_bad |= not np.isfinite(v)
            c = min(max(v, low), high)
            row_changed |= c != v
            out[i, k] = c
        bad += row_bad
        changed += row_changed
    return bad, changed


class ArmEnv(BatchedEnv):
    """Base class of the Panda tasks (see the module docstring)."""

    task_name = "panda"
    has_yaw_action = False
    has_gripper_action = False
    #: Finger opening (m, per finger) held when the task has no gripper action.
    fixed_finger = 0.0
    workspace_low = (0.25, -0.45, 0.0)
    workspace_high = (0.8, 0.45, 0.6)
    #: MJCF bodies whose mass and geoms whose sliding friction the domain randomisation scales (set in ``_setup``).
    _dr_bodies: tuple[str, ...] | list[str] = ()
    _dr_geoms: tuple[str, ...] | list[str] = ()

    def __init__(self, cfg: ArmTaskBase, backend: str = "mujoco") -> None:
        self.cfg = cfg
        sim = cfg.sim
        substeps = sim.control_dt / sim.physics_dt
        if sim.physics_dt <= 0 or abs(substeps - round(substeps)) > 1e-6 or round(substeps) < 1:
            raise ValueError(f"control_dt {sim.control_dt} must be a positive multiple of physics_dt {sim.physics_dt}")
        self.substeps = round(substeps)
        self.num_envs = cfg.num_envs
        self.device = torch.device(cfg.device)
        self.dt = sim.control_dt
        self.max_episode_steps = max(1, round(cfg.episode_seconds / self.dt))
        world_extra, hand_extra = self._scene()
        self._contact_index = {pair: k for k, pair in enumerate(self._contact_pairs())}
        if cfg.ft_sensor.enabled and backend != "mujoco":
            raise ValueError(f"the wrist force/torque sensor (ft_sensor) is simulated in MuJoCo only, not {backend}")
        model = mujoco.MjModel.from_xml_string(panda_mjcf(sim.physics_dt, world_extra, hand_extra, self.task_name,
                                                          tuple(self._contact_index), cfg.ft_sensor.enabled))
        self.model = model
        self._setup(model)
        self.backend = backend
        self.physics = make_physics(backend, model, cfg.num_envs, sim, list(self._contact_index), self._dr_bodies,
                                    self._dr_geoms)
        #: MuJoCo's batched worlds (rendering, ros2_control, benchmarks); None on other backends.
        self.worlds = getattr(self.physics, "worlds", None)
        act = cfg.action
        if act.type == "ee_delta":
            self.action_dim = 3 + int(self.has_yaw_action) + int(self.has_gripper_action)
        elif act.type == "joint_position":
            self.action_dim = 7 + int(self.has_gripper_action)
        else:
            raise ValueError(f"{self.task_name}: unknown action type {act.type!r} (ee_delta or joint_position)")
        limits = EeDeltaLimits(act.pos_scale, act.yaw_scale, act.max_lead, self.workspace_low, self.workspace_high,
                               ik_iterations=act.ik_iterations)
        self.controller = EeDeltaController(limits, self.dt)
        n = self.num_envs
        # Inputs and flags of the per-chunk IK, allocated once.
        self._rows = np.arange(n)
        self._q_meas, self._delta = np.zeros((n, 7)), np.zeros((n, 3))
        self._yaw_delta = np.zeros(n) if self.has_yaw_action else None
        self._unreached, self._rate_limited = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self._ik_work = [ik_workspace() for _ in self.physics.chunks]
        self.finger_target = np.full(n, self.fixed_finger)
        self.episode_step = np.zeros(n, dtype=np.int64)
        extra = cfg.dr.extra_latency / sim.physics_dt
        if extra < -1e-9 or abs(extra - round(extra)) > 1e-6:
            raise ValueError(f"dr.extra_latency {cfg.dr.extra_latency} must be a non-negative multiple of physics_dt "
                             f"{sim.physics_dt}")
        #: The fixed extra latency: whole control steps (added to every env's delay) and physics substeps.
        self.extra_delay, self.latency_substeps = divmod(round(extra), self.substeps)
        self.max_latency = int(cfg.dr.action_latency_steps[1]) + self.extra_delay
        self._abuf = np.zeros((self.max_latency + 1, n, self.action_dim))
        self.delay = np.zeros(n, dtype=np.int64)
        self.params = np.zeros((n, 4))  # object mass scale, friction scale, gain scale, latency steps
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.rng = np.random.default_rng(0)
        #: The wrist F/T sensor of the ``wrench`` group (None: not enabled).
        self.ft = WristWrench(cfg.ft_sensor, n, self.dt) if cfg.ft_sensor.enabled else None
        self.fused_step = True
        """Use the task's fused kernel (:meth:`_fused_begin`) where it has one; False: the numpy reference path
        (same numbers, the serial part of a step runs on the main thread)."""
        obs = self.reset(0)
        self.obs_dims = {k: v.shape[1] for k, v in obs.items()}

    # ----- task hooks -------------------------------------------------------------------------------------
    def _scene(self) -> tuple[str, str]:
        """MJCF of the task's world bodies and of what the hand holds."""
        raise NotImplementedError

    def _contact_pairs(self) -> list[tuple[str, str | None]]:
        """Geom pairs ``(geom1, geom2 or None = anything)`` whose contact the task reads (:meth:`in_contact`)."""
        return []

    def _setup(self, model: mujoco.MjModel) -> None:
        """Allocate task buffers and name ``_dr_bodies`` / ``_dr_geoms``, the bodies whose mass and the geoms whose
        friction the domain randomisation scales (called once, before the physics is built)."""

    def _home_q(self, ids: np.ndarray) -> np.ndarray:
        """Start joint positions ``[len(ids), 7]``."""
        raise NotImplementedError

    def _place(self, ids: np.ndarray) -> None:
        """Place objects/goals of the (already reset) worlds ``ids``; draw randomness from ``self.rng``."""

    def _components(self) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
        """Named ``(policy, critic)`` observation components, each ``[N, k]``."""
        raise NotImplementedError

    def _evaluate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``reward [N]``, ``success [N]`` and ``failed [N]`` (terminal failures) for the current state."""
        raise NotImplementedError

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Exact task state for scripted experts (numpy, batch first)."""
        raise NotImplementedError

    # ----- measured robot state ---------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        """Measured arm joint positions ``[N, 7]`` (a view: copy it before the next step if you keep it)."""
        return self.physics.arm_q

    @property
    def qd(self) -> np.ndarray:
        return self.physics.arm_qd

    def in_contact(self, geom1: str, geom2: str | None = None) -> np.ndarray:
        """``[N]`` bool: the two geoms (or ``geom1`` and anything) touched in the last physics substep."""
        return self.physics.contact(self._contact_index[(geom1, geom2)])

    @property
    def gripper_width(self) -> np.ndarray:
        return self.physics.finger_q.sum(1)

    def _robot_components(self, rot: bool, gripper: bool) -> tuple[list, list, dict]:
        """Noisy (policy) and exact (critic) joint/TCP/gripper components; also returns the exact TCP pose."""
        nz, n = self.cfg.noise, self.num_envs
        q, qd, width = self.q, self.qd, self.gripper_width[:, None]
        q_n = q + nz.joint_position * self.rng.standard_normal((n, 7))
        qd_n = qd + nz.joint_velocity * self.rng.standard_normal((n, 7))
        tcp, hrot = tcp_pose(q)
        tcp_n, hrot_n = tcp_pose(q_n)
        pol = [("joint_position", q_n), ("joint_velocity", qd_n), ("ee_position", tcp_n)]
        cri = [("joint_position", q), ("joint_velocity", qd), ("ee_position", tcp)]
        if rot:
            pol.append(("ee_rotation_matrix", hrot_n.reshape(n, 9)))
            cri.append(("ee_rotation_matrix", hrot.reshape(n, 9)))
        if gripper:
            pol.append(("gripper_width", width + nz.gripper_width * self.rng.standard_normal((n, 1))))
            cri.append(("gripper_width", width))
        return pol, cri, {"tcp": tcp, "rot": hrot}

    # ----- contract ---------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            if self.ft is not None:
                self.ft.seed(seed)
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self._reset_envs(np.arange(self.num_envs))
        return self._to_torch(self._observe())

    def _reset_envs(self, ids: np.ndarray) -> None:
        dr = self.cfg.dr
        k = len(ids)
        mass = self.rng.uniform(*dr.object_mass_scale, k)
        fric = self.rng.uniform(*dr.object_friction, k)
        gain = self.rng.uniform(*dr.gain_scale, k)
        self.delay[ids] = self.rng.integers(dr.action_latency_steps[0], dr.action_latency_steps[1] + 1, k) \
            + self.extra_delay
        latency = self.delay[ids] + self.latency_substeps / self.substeps  # in control steps
        self.params[ids] = np.stack([mass, fric, gain, latency], 1)
        q0 = self._home_q(ids)
        self.physics.reset(ids, q0, self.fixed_finger if not self.has_gripper_action else FINGER_MAX, gain, mass, fric)
        self.finger_target[ids] = self.fixed_finger if not self.has_gripper_action else FINGER_MAX
        self._place(ids)
        self.physics.forward(ids)
        if self.ft is not None:
            self.ft.reset(ids, self.physics.wrench())
        if len(self.controller.q_target) != self.num_envs:
            self.controller.reset(np.tile(q0[:1], (self.num_envs, 1)))
        self.controller.reset(q0, ids)
        self._abuf[:, ids] = self._hold_action(ids)
        self.episode_step[ids] = 0

    def _hold_action(self, ids: np.ndarray) -> np.ndarray:
        """The action that keeps envs ``ids`` where they are (fills the latency buffer at reset)."""
        a = np.zeros((len(ids), self.action_dim))
        if self.cfg.action.type == "joint_position":
            a[:, :7] = 2 * (self.controller.q_target[ids] - Q_LOWER) / (Q_UPPER - Q_LOWER) - 1
        if self.has_gripper_action:
            a[:, -1] = 2 * self.finger_target[ids] / FINGER_MAX - 1
        return a

    def _check_action(self, action: torch.Tensor) -> np.ndarray:
        a = torch.as_tensor(action).detach().to("cpu", torch.float64).numpy()
        if a.shape != (self.num_envs, self.action_dim):
            raise ValueError(f"{self.task_name}: action must be [{self.num_envs}, {self.action_dim}], got {a.shape}")
        clipped = np.empty_like(a)
        bad, n_clipped = _clip_rows(a, float(self.action_low), float(self.action_high), clipped)
        if bad:
            raise ValueError(f"{self.task_name}: non-finite action in envs "
                             f"{np.flatnonzero(~np.isfinite(a).all(1))[:8].tolist()}; nothing was applied")
        self.stats["action_clipped"] += n_clipped
        return clipped

    def _ik_chunk(self, lo: int, hi: int, chunk: int) -> None:
        """IK of rows ``lo..hi`` into their joint targets (runs in the worker thread of that chunk)."""
        self.controller.step_rows(lo, hi, self._q_meas, self._delta, self._yaw_delta, self._unreached,
                                  self._rate_limited, self._ik_work[chunk])
        self.physics.ctrl[lo:hi, :7] = self.controller.q_target[lo:hi]

    def _apply(self, a: np.ndarray):
        """Set the finger controls for the (delayed) actions ``a``; return the per-chunk joint-target function.

        ``ee_delta`` joint targets come from the IK, which each worker thread runs for its own chunk of envs
        (:meth:`_ik_chunk`); ``joint_position`` targets are a vectorised rate limit, set here.
        """
        if self.has_gripper_action:
            self.finger_target = (a[:, -1] + 1) * 0.5 * FINGER_MAX
        self.physics.ctrl[:, 7] = self.finger_target
        if self.cfg.action.type == "ee_delta":
            np.copyto(self._q_meas, self.q)
            np.copyto(self._delta, a[:, :3])
            if self._yaw_delta is not None:
                np.copyto(self._yaw_delta, a[:, 3])
            return self._ik_chunk
        c = self.controller
        want = Q_LOWER + (a[:, :7] + 1) * 0.5 * (Q_UPPER - Q_LOWER)
        max_dq = QD_LIMIT * self.dt
        dq = want - c.q_target
        limited = np.any(np.abs(dq) > max_dq, axis=1)
        self.stats["rate_limited"] += int(limited.sum())
        c.reset(c.q_target + np.clip(dq, -max_dq, max_dq))
        self.physics.ctrl[:, :7] = c.q_target
        return None

    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        a = self._check_action(action)
        if self.max_latency:
            self._abuf[1:] = self._abuf[:-1]
        self._abuf[0] = a
        unstable = np.zeros(self.num_envs, dtype=bool)
        if self.latency_substeps:  # sub-step latency: the previous servo targets hold a little longer
            self.physics.step(self.latency_substeps)
            unstable |= self.physics.unstable
        prepare = self._apply(self._abuf[self.delay, self._rows])
        finish = self._fused_begin() if self.fused_step and self.worlds is not None else None
        self.physics.step(self.substeps - self.latency_substeps, prepare, finish)
        unstable |= self.physics.unstable
        if prepare is not None:
            self.stats["ik_unreached"] += int(np.count_nonzero(self._unreached))
            self.stats["rate_limited"] += int(np.count_nonzero(self._rate_limited))
        self.episode_step += 1
        if self.ft is not None:
            self.ft.update(self.physics.wrench())
        if finish is None:
            reward, success, failed = self._evaluate()
            obs = self._observe()
        else:
            reward, success, failed, obs = self._fused_end()
            if self.ft is not None:
                obs["wrench"] = self.ft.observe()
        self.stats["physics_unstable"] += int(np.count_nonzero(unstable))
        terminated = failed | (success if self.cfg.terminate_on_success else False)
        truncated = ~terminated & ((self.episode_step >= self.max_episode_steps) | unstable)
        done = terminated | truncated
        if done.any():
            final = obs
            self._reset_envs(np.flatnonzero(done))
            obs = self._observe()
            final = {k: np.where(done[:, None], final[k], obs[k]) for k in obs}
        else:  # the same values, in tensors of their own
            final = {k: v.copy() for k, v in obs.items()}
        t = self._tensor
        info = {"final_obs": self._to_torch(final), "done_mask": t(done), "success": t(success),
                "stats": dict(self.stats)}
        return self._to_torch(obs), t(reward.astype(np.float32)), t(terminated), t(truncated), info

    def _fused_begin(self):
        """Optional fast path of a task: draw this step's observation noise (the same draws, in the same order, as
        :meth:`_components`) and return ``finish(lo, hi, chunk)``, a GIL-free kernel that the worker threads run
        after the physics of their rows: observations (float32) and the reward terms, success and failure of
        :meth:`_evaluate`. ``None``: the numpy path (:meth:`_evaluate`, :meth:`_observe`) on the main thread."""
        return None

    def _fused_end(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """After ``finish`` ran on every chunk: ``reward, success, failed`` and the observation groups (float32),
        bit-identical to :meth:`_evaluate` and :meth:`_observe` (``tests/sim/arm`` checks it)."""
        raise NotImplementedError

    def _observe(self) -> dict[str, np.ndarray]:
        pol, cri = self._components()
        out = {"policy": np.concatenate([v for _, v in pol], 1), "critic": np.concatenate([v for _, v in cri], 1)}
        if self.ft is not None:
            out["wrench"] = self.ft.observe()
        return out

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        """``a`` (a fresh array nobody else keeps) as a tensor on the env's device, without a copy on the CPU."""
        t = torch.from_numpy(a)
        return t if self.device.type == "cpu" else t.to(self.device)

    def _to_torch(self, obs: dict[str, np.ndarray]) -> Obs:
        return {k: self._tensor(v if v.dtype == np.float32 else v.astype(np.float32)) for k, v in obs.items()}

    # ----- export and checkpoints -------------------------------------------------------------------------
    def export_spec(self) -> dict[str, Any]:
        """Observation components of the policy group and the action description (``policy.json`` fields)."""
        pol, _ = self._components()
        act = self.cfg.action
        if act.type == "ee_delta":
            action = {"type": "ee_delta", "dims": ["x", "y", "z"] + (["yaw"] if self.has_yaw_action else []),
                      "pos_scale": act.pos_scale, "yaw_scale": act.yaw_scale, "max_lead": act.max_lead,
                      "workspace_low": list(self.workspace_low), "workspace_high": list(self.workspace_high),
                      "ik_iterations": act.ik_iterations, "ik_module": "sim.arm.ik"}
        else:
            action = {"type": "joint_position", "absolute": True, "lower": Q_LOWER.tolist(),
                      "upper": Q_UPPER.tolist()}
        action["gripper"] = ({"index": self.action_dim - 1, "width_closed": 0.0, "width_open": 2 * FINGER_MAX}
                             if self.has_gripper_action else None)
        action["joint_velocity_limit"] = QD_LIMIT.tolist()
        return {"task": self.task_name, "observation": [{"name": k, "size": int(v.shape[1])} for k, v in pol],
                "action": action, "action_dim": self.action_dim, "control_rate_hz": 1.0 / self.dt,
                "joint_names": list(JOINT_NAMES)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: physics state, DR parameters, buffers, RNG."""
        c = self.controller
        return {"physics": self.physics.get_state(), "params": self.params.copy(), "delay": self.delay.copy(),
                "abuf": self._abuf.copy(), "episode_step": self.episode_step.copy(),
                "finger_target": self.finger_target.copy(), "q_target": c.q_target.copy(),
                "pos_target": c.pos_target.copy(), "yaw_target": c.yaw_target.copy(),
                "task": self._task_state(), "rng": self.rng.bit_generator.state,
                **({"wrench": self.ft.state_dict()} if self.ft is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i in range(self.num_envs):
            mass, fric, gain, _ = state["params"][i]
            self.physics.set_params(i, gain, mass, fric)
        self.physics.set_state(state["physics"])
        self.params, self.delay = state["params"].copy(), state["delay"].copy()
        self._abuf, self.episode_step = state["abuf"].copy(), state["episode_step"].copy()
        self.finger_target = state["finger_target"].copy()
        c = self.controller
        c.q_target, c.pos_target, c.yaw_target = (state[k].copy() for k in ("q_target", "pos_target", "yaw_target"))
        self._load_task_state(state["task"])
        self.rng.bit_generator.state = state["rng"]
        if self.ft is not None:
            self.ft.load_state_dict(state["wrench"])

    def _task_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_task_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def close(self) -> None:
        self.physics.close()
