"""``panda-reach``: move the TCP to a goal drawn anywhere in a box in front of the robot (no obstacle).

The plain reaching task of the arm half: the learning check of the asymmetric trainers and the first thing to
deploy on a real Panda. The policy sees the noisy joints, TCP and the goal; the critic sees them exactly, plus
the goal offset and the randomised gains and latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim.arm.base import ArmEnv
from sim.arm.config import ArmDomainRandomization, ArmTaskBase
from sim.arm.experts import _Expert
from sim.arm.ik import down_rotation, solve_ik
from sim.arm.kinematics import Q_READY, tcp_pose


@dataclass
class ReachConfig(ArmTaskBase):
    """Reach a random goal; start and goal are uniform in boxes (base frame, m)."""

    start_tcp: tuple[float, float, float] = (0.45, 0.0, 0.3)
    """Centre of the TCP start box (m)."""
    start_jitter: float = 0.05
    """Half extent (m) of the start box, every axis."""
    goal_low: tuple[float, float, float] = (0.35, -0.2, 0.15)
    """Lower corner of the goal box (m)."""
    goal_high: tuple[float, float, float] = (0.6, 0.2, 0.4)
    """Upper corner of the goal box (m)."""
    hand_yaw: float = 0.0
    """Fixed hand yaw (rad) of the downward-pointing gripper."""
    success_distance: float = 0.02
    """TCP-goal distance (m) that counts as reached."""
    distance_scale: float = 0.1
    """Reward per step ``-tanh(distance / distance_scale)`` (+1 on success): steep near the goal, where plain
    ``-distance`` leaves a policy stalled a few mm outside the success ball."""
    episode_seconds: float = 3.0
    """Time limit (s): at 1 m/s the farthest goal is 0.6 s away."""
    dr: ArmDomainRandomization = field(
        default_factory=lambda: ArmDomainRandomization(object_mass_scale=(1.0, 1.0), object_friction=(1.0, 1.0)))
    """Gains and latency only (there is no object)."""


class ReachEnv(ArmEnv):
    """Batched wall-free reach (``ee_delta`` x, y, z or joint-position actions)."""

    task_name = "panda-reach"
    trace_components = ("ee_position",)
    trace_distances = (("ee_position", "goal_position"),)

    def __init__(self, cfg: ReachConfig | None = None, backend: str = "mujoco") -> None:
        super().__init__(cfg or ReachConfig(), backend)

    def _scene(self) -> tuple[str, str]:
        return '<site name="goal" type="sphere" size="0.015" rgba="0 1 0 0.6"/>', ""

    def _setup(self, model: mujoco.MjModel) -> None:
        self._dr_bodies, self._dr_geoms = [], []
        self.goal = np.tile(0.5 * (np.array(self.cfg.goal_low) + np.array(self.cfg.goal_high)), (self.num_envs, 1))

    def _home_q(self, ids: np.ndarray) -> np.ndarray:
        k, c = len(ids), self.cfg
        pos = np.array(c.start_tcp) + self.rng.uniform(-c.start_jitter, c.start_jitter, (k, 3))
        return solve_ik(np.tile(Q_READY, (k, 1)), pos, down_rotation(np.full(k, c.hand_yaw)), max_iter=100).q

    def _place(self, ids: np.ndarray) -> None:
        c = self.cfg
        self.goal[ids] = self.rng.uniform(c.goal_low, c.goal_high, (len(ids), 3))
        for i in ids:  # the goal marker (visual only) follows the goal in each world
            self.physics.set_marker(i, "goal", self.goal[i])

    def _components(self):
        pol, cri, exact = self._robot_components(rot=False, gripper=False)
        pol.append(("goal_position", self.goal.copy()))
        cri += [("goal_position", self.goal.copy()), ("goal_offset", self.goal - exact["tcp"]),
                ("randomised_params", self.params[:, 2:])]
        return pol, cri

    def _evaluate(self):
        tcp, _ = tcp_pose(self.q)
        dist = np.linalg.norm(tcp - self.goal, axis=1)
        success = dist <= self.cfg.success_distance
        reward = -np.tanh(dist / self.cfg.distance_scale) + success.astype(np.float64)
        return reward, success, np.zeros(self.num_envs, dtype=bool)

    def privileged_state(self) -> dict[str, np.ndarray]:
        tcp, _ = tcp_pose(self.q)
        return {"tcp": tcp, "goal": self.goal.copy()}

    def _task_state(self):
        return {"goal": self.goal.copy()}

    def _load_task_state(self, state):
        self.goal = state["goal"].copy()
        for i in range(self.num_envs):
            self.physics.set_marker(i, "goal", self.goal[i])


class ReachExpert(_Expert):
    """Straight to the goal (the commanded TCP target, clipped to the action box)."""

    def act(self) -> tuple[np.ndarray, np.ndarray]:
        return self._finish(self._move(self.env.privileged_state()["goal"]))
