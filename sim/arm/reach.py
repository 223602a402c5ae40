"""``panda-reach-bimodal``: reach a goal behind a thin wall; going round its left or right edge is equally good."""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim.arm.base import ArmEnv
from sim.arm.config import ArmDomainRandomization, ArmTaskBase
from sim.arm.ik import down_rotation, solve_ik
from sim.arm.kinematics import Q_READY, tcp_pose
from sim.arm.mjcf import WORLD_GEOM


@dataclass
class ReachBimodalConfig(ArmTaskBase):
    """Reach round a wall (a plate facing the robot, centred on the start-goal line, so the task is symmetric)."""

    wall_x: float = 0.5
    """x of the wall plane (m)."""
    wall_half_width: float = 0.1
    """Half extent of the wall along y (m)."""
    wall_height: float = 0.40
    """Height of the wall's top edge (m); tall enough that going over is much longer than going round."""
    start_tcp: tuple[float, float, float] = (0.33, 0.0, 0.25)
    """Nominal TCP start in front of the wall (m)."""
    goal: tuple[float, float, float] = (0.64, 0.0, 0.25)
    """Nominal goal behind the wall (m)."""
    start_goal_jitter: float = 0.02
    """Uniform jitter (m) of start and goal in x and z; y jitter is a tenth of it (keeps the two ways even)."""
    hand_yaw: float = 1.5707963
    """Fixed hand yaw (rad); pi/2 puts the fingers along x, so the hand is narrow where it passes the edge."""
    success_distance: float = 0.02
    """TCP-goal distance (m) that counts as reached."""
    wall_penalty: float = 0.1
    """Reward lost per control step in contact with the wall."""
    episode_seconds: float = 6.0
    """Time limit (s)."""
    dr: ArmDomainRandomization = field(
        default_factory=lambda: ArmDomainRandomization(object_mass_scale=(1.0, 1.0), object_friction=(1.0, 1.0)))
    """Gains and latency only (there is no object)."""


class ReachBimodalEnv(ArmEnv):
    """Batched bimodal reach; the policy sees noisy joints, TCP and the goal."""

    task_name = "panda-reach-bimodal"
    trace_components = ("ee_position", "wall_contact")
    trace_distances = (("ee_position", "goal_position"),)

    def __init__(self, cfg: ReachBimodalConfig | None = None, backend: str = "mujoco") -> None:
        super().__init__(cfg or ReachBimodalConfig(), backend)

    def _scene(self) -> tuple[str, str]:
        c = self.cfg
        h = c.wall_height / 2
        return (f'<body name="wall" pos="{c.wall_x} 0 {h}"><geom name="wall" type="box" '
                f'size="0.005 {c.wall_half_width} {h}" {WORLD_GEOM} rgba="0.3 0.5 0.8 0.6"/></body>'
                f'<site name="goal" type="sphere" size="0.015" rgba="0 1 0 0.6"/>'), ""

    def _setup(self, model: mujoco.MjModel) -> None:
        self._dr_bodies, self._dr_geoms = [], []
        self.goal = np.tile(np.array(self.cfg.goal, dtype=np.float64), (self.num_envs, 1))

    def _jitter(self, k: int) -> np.ndarray:
        j = self.cfg.start_goal_jitter
        return self.rng.uniform(-1, 1, (k, 3)) * np.array([j, 0.1 * j, j])

    def _home_q(self, ids: np.ndarray) -> np.ndarray:
        k = len(ids)
        pos = np.array(self.cfg.start_tcp) + self._jitter(k)
        return solve_ik(np.tile(Q_READY, (k, 1)), pos, down_rotation(np.full(k, self.cfg.hand_yaw)), max_iter=100).q

    def _place(self, ids: np.ndarray) -> None:
        self.goal[ids] = np.array(self.cfg.goal) + self._jitter(len(ids))
        for i in ids:  # the goal marker (visual only) follows the goal in each world
            self.physics.set_marker(i, "goal", self.goal[i])

    def _contact_pairs(self):
        return [("wall", None)]

    def _components(self):
        pol, cri, _ = self._robot_components(rot=False, gripper=False)
        pol.append(("goal_position", self.goal.copy()))
        cri += [("goal_position", self.goal.copy()), ("wall_contact", self.in_contact("wall")[:, None]),
                ("randomised_params", self.params[:, 2:])]
        return pol, cri

    def _evaluate(self):
        tcp, _ = tcp_pose(self.q)
        dist = np.linalg.norm(tcp - self.goal, axis=1)
        success = dist <= self.cfg.success_distance
        reward = -dist + success.astype(np.float64) - self.cfg.wall_penalty * self.in_contact("wall")
        return reward, success, np.zeros(self.num_envs, dtype=bool)

    def privileged_state(self) -> dict[str, np.ndarray]:
        tcp, _ = tcp_pose(self.q)
        c = self.cfg
        return {"tcp": tcp, "goal": self.goal.copy(), "wall_x": np.full(self.num_envs, c.wall_x),
                "wall_half_width": np.full(self.num_envs, c.wall_half_width)}

    def _task_state(self):
        return {"goal": self.goal.copy()}

    def _load_task_state(self, state):
        self.goal = state["goal"].copy()
