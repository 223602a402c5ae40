"""``panda-pick-cube``: lift a 4 cm cube (random position and yaw) by >= 10 cm and hold it."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from numba import njit

from sim.arm.base import ArmEnv
from sim.arm.config import ArmTaskBase
from sim.arm.ik import down_rotation, solve_ik
from sim.arm.kinematics import Q_READY, frames_row, tcp_row
from sim.arm.mjcf import WORLD_GEOM

#: Observation noise draws per env and step, in the order :meth:`PickCubeEnv._components` draws them:
#: joints (7), joint velocities (7), gripper width (1), cube quaternion (4), cube position (3).
_NOISE = (7, 7, 1, 4, 3)


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


@njit(cache=True, nogil=True, error_model="numpy")
def _pick_rows(lo, hi, qpos, qvel, sens, params, hold, noise, prm, idx, pol, cri, dist, lift_term, success, failed):
    """Rows ``lo..hi`` of :meth:`PickCubeEnv._components` (float32) and :meth:`PickCubeEnv._evaluate` (``dist``
    and the lift term of the reward; ``hold`` in place), operation for operation, so the numbers are identical.

    ``noise`` holds the step's draws as ``rng.standard_normal`` gives them for the blocks of ``_NOISE`` (each
    ``[N, k]``); ``prm`` = noise stds (5), half size, lift height, near distance, start-region centre (2);
    ``idx`` = cube qpos / qvel address, finger qpos addresses (2), contact sensors (3), hold steps.
    """
    n = qpos.shape[0]
    cq, cv, f1, f2, hold_steps = idx[0], idx[1], idx[2], idx[3], idx[7]
    fpos, frot, tcp, hand = np.empty((8, 3)), np.empty((8, 3, 3)), np.empty(3), np.empty((3, 3))
    q_n = np.empty(7)
    for i in range(lo, hi):
        # exact (critic) robot state
        frames_row(qpos[i, :7], fpos, frot)
        tcp_row(fpos, frot, tcp, hand)
        for k in range(7):
            cri[i, k] = qpos[i, k]
            cri[i, 7 + k] = qvel[i, k]
        for k in range(3):
            cri[i, 14 + k] = tcp[k]
        for r in range(3):
            for c in range(3):
                cri[i, 17 + 3 * r + c] = hand[r, c]
        width = qpos[i, f1] + qpos[i, f2]
        cri[i, 26] = width
        # evaluation (uses the exact TCP)
        d0, d1, d2 = qpos[i, cq] - tcp[0], qpos[i, cq + 1] - tcp[1], qpos[i, cq + 2] - tcp[2]
        dist[i] = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        lift = qpos[i, cq + 2] - prm[5]
        lift_term[i] = 0.7 * min(max(lift / prm[6], 0.0), 1.0)
        lifted = lift >= prm[6] and dist[i] <= prm[7]
        hold[i] = hold[i] + 1 if lifted else 0
        success[i] = hold[i] >= hold_steps
        failed[i] = (qpos[i, cq + 2] < -0.05 or abs(qpos[i, cq] - prm[8]) > 0.6
                     or abs(qpos[i, cq + 1] - prm[9]) > 0.6)
        # noisy (policy) robot state: FK of the noisy joints
        for k in range(7):
            q_n[k] = qpos[i, k] + prm[0] * noise[7 * i + k]
            pol[i, k] = q_n[k]
            pol[i, 7 + k] = qvel[i, k] + prm[1] * noise[7 * n + 7 * i + k]
        frames_row(q_n, fpos, frot)
        tcp_row(fpos, frot, tcp, hand)
        for k in range(3):
            pol[i, 14 + k] = tcp[k]
        for r in range(3):
            for c in range(3):
                pol[i, 17 + 3 * r + c] = hand[r, c]
        pol[i, 26] = width + prm[2] * noise[14 * n + i]
        # cube
        z0 = 15 * n + 4 * i
        a0 = qpos[i, cq + 3] + prm[3] * noise[z0]
        a1 = qpos[i, cq + 4] + prm[3] * noise[z0 + 1]
        a2 = qpos[i, cq + 5] + prm[3] * noise[z0 + 2]
        a3 = qpos[i, cq + 6] + prm[3] * noise[z0 + 3]
        norm = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3)
        pol[i, 30], pol[i, 31], pol[i, 32], pol[i, 33] = a0 / norm, a1 / norm, a2 / norm, a3 / norm
        for k in range(3):
            pol[i, 27 + k] = qpos[i, cq + k] + prm[4] * noise[19 * n + 3 * i + k]
            cri[i, 27 + k] = qpos[i, cq + k]
        for k in range(4):
            cri[i, 30 + k] = qpos[i, cq + 3 + k]
        for k in range(6):
            cri[i, 34 + k] = qvel[i, cv + k]
        for k in range(3):
            cri[i, 40 + k] = 1.0 if sens[i, idx[4 + k]] > 0 else 0.0
        for k in range(4):
            cri[i, 43 + k] = params[i, k]


class PickCubeEnv(ArmEnv):
    """Batched pick-cube; policy sees noisy joints, TCP, gripper, tracked cube pose."""

    task_name = "panda-pick-cube"
    trace_components = ("ee_position", "gripper_width", "object_position")
    trace_distances = (("ee_position", "object_position"),)
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
        self._noise = np.empty(sum(_NOISE) * self.num_envs)

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

    def _fused_begin(self):
        if type(self)._components is not PickCubeEnv._components or type(self)._evaluate is not PickCubeEnv._evaluate:
            return None  # a subclass changed what the kernel computes: its own numpy path
        n, w, c, nz, ph = self.num_envs, self.worlds, self.cfg, self.cfg.noise, self.physics
        # Read from the config every step, as the numpy path does (a curriculum may change the noise).
        centre = 0.5 * (np.array(c.cube_xy_low) + np.array(c.cube_xy_high))
        prm = np.array([nz.joint_position, nz.joint_velocity, nz.gripper_width, nz.object_quaternion,
                        nz.object_position, c.cube_half_size, c.lift_height, c.near_distance, *centre])
        cube_q, cube_v = ph._free("cube")
        idx = np.array([cube_q, cube_v, *ph._finger_q,
                        *(self._contact_index[p] for p in self._contact_pairs()), c.hold_steps], dtype=np.int64)
        self.rng.standard_normal(out=self._noise)  # = the five draws of _components, one after the other
        self._fused_out = out = (np.empty((n, self.obs_dims["policy"]), np.float32),
                                 np.empty((n, self.obs_dims["critic"]), np.float32), np.empty(n), np.empty(n),
                                 np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.bool_))
        args = (w.qpos, w.qvel, w.sensordata, self.params, self.hold, self._noise, prm, idx, *out)
        return lambda lo, hi, chunk: _pick_rows(lo, hi, *args)

    def _fused_end(self):
        pol, cri, dist, lift_term, success, failed = self._fused_out
        reward = 0.3 * np.exp(-20 * dist) + lift_term  # numpy's exp, as in _evaluate (numba's differs in ulps)
        return reward, success, failed, {"policy": pol, "critic": cri}

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
