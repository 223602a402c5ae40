"""The hover task on a third-party physics engine: the task is :class:`QuadrotorHoverEnv`, the engine the physics.

:class:`EngineHoverEnv` subclasses the torch task and overrides only its physics hook (``_advance``) and the
state hand-over at resets: observations, reward, termination, truncation, initial states, disturbances,
observation noise, domain randomisation and auto-reset are the torch env's own code running on the state the
engine supplies. An engine backend implements four methods: :meth:`_engine_reset` (place rows at given states),
:meth:`_engine_set_params` (mass and inertia per env), :meth:`_engine_substep` (apply the per-rotor forces and
yaw torques plus the episode's disturbance, advance the engine one physics step) and :meth:`_engine_read`
(position, quaternion, world linear and body angular velocity of every drone, float64).

Motor model (ours, shared by the engines): first-order rotor speeds solved exactly for the constant command of
the control step, ``w(t) = w_cmd + (w0 - w_cmd) exp(-t / T)`` (then clamped to ``[rpm_min, rpm_max]``, a no-op
for commands in range); each physics substep applies, constant over the substep (zero-order hold), the thrusts
``k_f`` times the exact mean of ``w(t)^2`` over the substep, at the rotor positions, with the yaw reaction
torques ``k_m sign_i f_i``. Each engine then integrates the rigid
body with its own integrator and collides it with a ground plane ``target_height`` below the target.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch

from sim.core import Obs
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, VEL
from sim.quadrotor.task import QuadrotorHoverEnv, check_action

TARGET_HEIGHT = 1.0
"""Height of the hover target above the engines' ground plane (m): the termination box (0.6 m) ends an episode
before the drone can touch the ground, so contacts shape only states outside the task's box."""
ENV_SPACING = 2.0
"""Distance between neighbouring drones in the engine's world (m), more than twice the termination box."""


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` ``[N, ..., 3]`` by unit quaternions ``q`` ``[N, 4]`` (w, x, y, z)."""
    w, x, y, z = (q[:, i].reshape((-1,) + (1,) * (v.ndim - 2)) for i in range(4))
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    # t = 2 (q_vec x v); v' = v + w t + q_vec x t
    tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)
    return np.stack((vx + w * tx + y * tz - z * ty, vy + w * ty + z * tx - x * tz, vz + w * tz + x * ty - y * tx),
                    axis=-1)


class EngineHoverEnv(QuadrotorHoverEnv):
    """Base of the engine backends (see the module docstring). ``substeps`` physics steps per 100 Hz control step.

    Motor-level (``action_level="motor_rpm"``) only and on the CPU; not differentiable. ``state`` (float32,
    ``[N, 17]``, the torch env's layout) mirrors the engine after every step; the engine keeps its own float64
    state between steps, so the task never rounds the engine's trajectory.
    """

    differentiable = False
    engine_name = "engine"

    def __init__(self, cfg: QuadrotorTaskConfig | None = None, seed: int = 0, substeps: int = 5,
                 target_height: float = TARGET_HEIGHT) -> None:
        cfg = cfg if cfg is not None else QuadrotorTaskConfig()
        if cfg.action_level != "motor_rpm":
            raise ValueError(f"the {self.engine_name} backend flies action_level='motor_rpm' only, got "
                             f"{cfg.action_level!r} (the attitude level runs on the torch env)")
        if cfg.vehicles.enabled:
            raise ValueError(f"the {self.engine_name} backend flies the frame file's vehicle only (vehicles.enabled "
                             "runs on the torch env)")
        if torch.device(cfg.device).type != "cpu":
            raise ValueError(f"the {self.engine_name} backend runs on the CPU, got device={cfg.device!r}")
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        self.substeps = int(substeps)
        self.physics_dt = cfg.dt / self.substeps
        self.target_height = float(target_height)
        n = cfg.num_envs
        side = int(np.ceil(np.sqrt(n)))
        grid = np.stack((np.arange(n) % side, np.arange(n) // side, np.zeros(n)), -1) * ENV_SPACING
        #: World position of each env's target in the engine (task positions are relative to it).
        self.origins = grid + np.array([0.0, 0.0, self.target_height])
        self._rpm = np.zeros((n, 4))
        self._build_engine(cfg, n)
        super().__init__(cfg, seed=seed)

    # ----------------------------------------------------------------- engine interface
    @abstractmethod
    def _build_engine(self, cfg: QuadrotorTaskConfig, n: int) -> None:
        """Create the world: ``n`` drones (colliding with the ground plane, not with each other)."""

    @abstractmethod
    def _engine_reset(self, idx: np.ndarray, pos: np.ndarray, quat: np.ndarray, vel: np.ndarray,
                      omega: np.ndarray) -> None:
        """Place drones ``idx`` at world ``pos``, quaternion (w, x, y, z), world ``vel``, body ``omega``."""

    @abstractmethod
    def _engine_set_params(self, idx: np.ndarray, mass: np.ndarray, inertia: np.ndarray) -> None:
        """Set mass ``[k]`` and diagonal inertia ``[k, 3]`` of drones ``idx``."""

    @abstractmethod
    def _engine_substep(self, thrust: np.ndarray, force: np.ndarray, torque: np.ndarray) -> None:
        """Apply rotor thrusts ``[N, 4]`` (N, along body z at the rotor positions) with their yaw reaction torques,
        the world disturbance force and body disturbance torque ``[N, 3]``, then step the engine once."""

    @abstractmethod
    def _engine_read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """World position, quaternion (w, x, y, z, w >= 0 not required), world velocity, body angular velocity."""

    # ----------------------------------------------------------------- task hooks
    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        check_action(action, self.num_envs)
        return super().step(action.detach() if isinstance(action, torch.Tensor) else torch.as_tensor(action))

    def _advance(self, a: torch.Tensor) -> torch.Tensor:
        pt = self.pt
        cmd = ((a.double().numpy() + 1.0) * (0.5 * (pt.rpm_max - pt.rpm_min)) + pt.rpm_min)
        h, tau = self.physics_dt, pt.motor_time_constant.double().numpy()  # [N, 1]
        decay = np.exp(-h / tau)
        # mean of w(t)^2 over a substep, w(t) = c + e exp(-t / T): c^2 + 2 c e m1 + e^2 m2
        m1, m2 = tau / h * (1.0 - decay), tau / (2.0 * h) * (1.0 - decay * decay)
        kf = pt.thrust_coefficient.double().numpy()
        force, torque = self.force.double().numpy(), self.torque.double().numpy()
        for _ in range(self.substeps):
            e = self._rpm - cmd
            self._engine_substep(kf * (cmd * cmd + 2.0 * cmd * e * m1 + e * e * m2), force, torque)
            self._rpm = np.clip(cmd + e * decay, pt.rpm_min, pt.rpm_max)
        return self._read_state()

    def _read_state(self) -> torch.Tensor:
        pos, quat, vel, omega = self._engine_read()
        quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
        state = np.concatenate((pos - self.origins, quat, vel, omega, self._rpm), axis=-1)
        return torch.from_numpy(state).to(torch.float32)

    def _reset_envs(self, mask: torch.Tensor) -> None:
        super()._reset_envs(mask)
        self._push(mask.numpy().nonzero()[0])

    def _push(self, idx: np.ndarray) -> None:
        """Hand the task's state of rows ``idx`` (just reset or loaded) to the engine."""
        if len(idx) == 0:
            return
        s = self.state[idx].double().numpy()
        self._rpm[idx] = s[:, RPM]
        self._engine_set_params(idx, self.pt.mass[idx, 0].double().numpy(), self.pt.inertia[idx].double().numpy())
        self._engine_reset(idx, s[:, POS] + self.origins[idx], s[:, QUAT], s[:, VEL], s[:, OMEGA])

    def set_state(self, state: torch.Tensor) -> None:
        """Put every drone at ``state`` ``[N, 17]`` (relative to the target; the torch layout), e.g. to compare
        one step of each backend from identical states."""
        self.state = state.to(torch.float32).clone()
        self._push(np.arange(self.num_envs))

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        self._push(np.arange(self.num_envs))

    def detach(self) -> None:
        raise self.unsupported(f"gradients through the simulator (the {self.engine_name} backend is not "
                               "differentiable; apg needs the torch or fused env)")
