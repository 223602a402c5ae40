"""``panda-pick-cube``: lift a 4 cm cube (random position and yaw) by >= 10 cm and hold it."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.arm.base import ArmEnv
from sim.arm.config import ArmTaskBase
from sim.arm.ik import down_rotation, solve_ik
from sim.arm.kinematics import Q_READY
from sim.arm.mjcf import WORLD_GEOM


@dataclass
class PickCubeConfig(ArmTaskBase):
    """Pick-and-lift of a cube (SERL / gym-hil PandaPickCube; success as in gym-hil, plus a hold)."""

    cube_half_size: float = 0.02
    """Half edge (m)."""
    cube_mass: float = 0.1
    """Nominal mass (kg), scaled by ``dr.object_mass_scale``."""
    cube_xy_low: tuple[float, float] = (0.4, -0.15)
    """Lower corner of the cube's start region (m)."""
    cube_xy_high: tuple[float, float] = (0.6, 0.15)
    """Upper corner of the cube's start region (m)."""
    start_tcp: tuple[float, float, float] = (0.45, 0.0, 0.25)
    """Nominal start of the TCP (m); +-4 cm uniform in x and y."""
    lift_height: float = 0.10
    """Lift (m) above the start height that counts as lifted."""
    near_distance: float = 0.05
    """The cube must be within this distance (m) of the TCP while lifted."""
    hold_steps: int = 10
    """Consecutive lifted control steps for success."""


class PickCubeEnv(ArmEnv):
    """Batched pick-cube; policy sees noisy joints, TCP, gripper, tracked cube pose."""

    task_name = "panda-pick-cube"
    has_yaw_action = True
    has_gripper_action = True

    def __init__(self, cfg: PickCubeConfig | None = None, backend: str = "mujoco") -> None:
        super().__init__(cfg or PickCubeConfig(), backend)

    def _scene(self) -> tuple[str, str]:
        c = self.cfg
        s = c.cube_half_size
        return (f'<body name="cube" pos="0.5 0 {s}"><freejoint name="cube"/>'
                f'<geom name="cube" type="box" size="{s} {s} {s}" mass="{c.cube_mass}" friction="1 0.01 0.001" '
                f'condim="4" {WORLD_GEOM} rgba="0.8 0.2 0.2 1"/></body>'), ""

    def _setup(self, model: mujoco.MjModel) -> None:
        self._dr_bodies, self._dr_geoms = ["cube"], ["cube"]
        self.hold = np.zeros(self.num_envs, dtype=np.int64)

    def _home_q(self, ids: np.ndarray) -> np.ndarray:
        k = len(ids)
        pos = np.array(self.cfg.start_tcp) + np.c_[self.rng.uniform(-0.04, 0.04, (k, 2)), np.zeros(k)]
        return solve_ik(np.tile(Q_READY, (k, 1)), pos, down_rotation(np.zeros(k)), max_iter=100).q

    def _place(self, ids: np.ndarray) -> None:
        c = self.cfg
        xy = self.rng.uniform(c.cube_xy_low, c.cube_xy_high, (len(ids), 2))
        yaw = self.rng.uniform(-np.pi, np.pi, len(ids))
        for j, i in enumerate(ids):
            self.physics.place_body(i, "cube", [*xy[j], c.cube_half_size],
                                    [np.cos(yaw[j] / 2), 0, 0, np.sin(yaw[j] / 2)])
        self.hold[ids] = 0

    def _cube(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.physics.body_state("cube")

    def _contact_pairs(self):
        return [("cube", "left_pad"), ("cube", "right_pad"), ("cube", "floor")]

    def _contacts(self) -> np.ndarray:
        return np.stack([self.in_contact(*pair) for pair in self._contact_pairs()], 1)

    def _components(self):
        nz, n = self.cfg.noise, self.num_envs
        pol, cri, _ = self._robot_components(rot=True, gripper=True)
        pos, quat, vel = self._cube()
        quat_n = quat + nz.object_quaternion * self.rng.standard_normal((n, 4))
        quat_n /= np.linalg.norm(quat_n, axis=1, keepdims=True)
        pol += [("object_position", pos + nz.object_position * self.rng.standard_normal((n, 3))),
                ("object_quaternion", quat_n)]
        cri += [("object_position", pos), ("object_quaternion", quat), ("object_velocity", vel),
                ("contacts", self._contacts()), ("randomised_params", self.params)]
        return pol, cri

    def _evaluate(self):
        c = self.cfg
        pos, _, _ = self._cube()
        from sim.arm.kinematics import tcp_pose

        tcp, _ = tcp_pose(self.q)
        dist = np.linalg.norm(pos - tcp, axis=1)
        lift = pos[:, 2] - c.cube_half_size
        reward = 0.3 * np.exp(-20 * dist) + 0.7 * np.clip(lift / c.lift_height, 0, 1)
        lifted = (lift >= c.lift_height) & (dist <= c.near_distance)
        self.hold = np.where(lifted, self.hold + 1, 0)
        success = self.hold >= c.hold_steps
        failed = (pos[:, 2] < -0.05) | (np.abs(pos[:, :2] - 0.5 * (np.array(c.cube_xy_low) +
                                                                    np.array(c.cube_xy_high))) > 0.6).any(1)
        return reward, success, failed

    def privileged_state(self) -> dict[str, np.ndarray]:
        from sim.arm.ik import hand_yaw
        from sim.arm.kinematics import tcp_pose

        pos, quat, _ = self._cube()
        tcp, rot = tcp_pose(self.q)
        cube_yaw = 2 * np.arctan2(quat[:, 3], quat[:, 0])  # valid while the cube lies flat
        return {"tcp": tcp, "yaw": hand_yaw(rot), "yaw_target": self.controller.yaw_target.copy(),
                "gripper_width": self.gripper_width, "cube_pos": pos.copy(), "cube_yaw": cube_yaw,
                "cube_half_size": np.full(self.num_envs, self.cfg.cube_half_size)}

    def _task_state(self):
        return {"hold": self.hold.copy()}

    def _load_task_state(self, state):
        self.hold = state["hold"].copy()
