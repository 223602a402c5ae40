"""Our ``panda-reach`` task as an Isaac Lab ``DirectRLEnv``: Isaac Lab's articulation, our task.

``RobotRL-Panda-Reach-Direct`` (gymnasium id; ``isaac:RobotRL-Panda-Reach-Direct`` in our registry) drives the
project's Panda USD articulation (:mod:`sim.isaac.panda_asset`, kinematics from :mod:`sim.arm.kinematics`) in
Isaac Lab (Newton / MuJoCo-Warp, 500 Hz physics, 50 Hz control, joint position drives with the MJCF's gains).
The task is :class:`sim.arm.reach_free.ReachConfig`'s: start TCP and goal drawn in its boxes (the start joints by
our IK), the ``ee_delta`` action (x, y, z in [-1, 1] times ``pos_scale`` per step) turned into joint position
targets by our shared controller (:class:`sim.arm.ee_control.EeDeltaController`, the IK of :mod:`sim.arm.ik`),
reward ``-tanh(d / distance_scale) + [d <= success_distance]``, time-out only. Observations follow the MuJoCo
task: ``policy`` = noisy joint positions, velocities, TCP (forward kinematics of the noisy joints) and the goal;
``critic`` = the same exactly, plus the goal offset.

Differences from the MuJoCo task: gravity is off instead of per-body gravity compensation (the arm is alone in
the scene), no domain randomisation (gains, latency), no gripper. The IK and the controller run on the CPU
(numpy / numba) as in the MuJoCo task, so CUDA runs copy joints to the host each control step. Exports declare
``panda-reach``'s ``policy.json`` contract (:meth:`PandaReachEnv.export_spec`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import isaaclab.sim as sim_utils
import numpy as np
import torch
from isaaclab.actuators import ImplicitActuatorCfg
from isaaclab.assets import ArticulationCfg
from isaaclab.envs import DirectRLEnv, DirectRLEnvCfg
from isaaclab.scene import InteractiveSceneCfg
from isaaclab.sim import SimulationCfg
from isaaclab.utils import configclass
from isaaclab.utils.assets import NUCLEUS_ASSET_ROOT_DIR
from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg
from isaaclab_newton.sim.schemas import NewtonArticulationCfg

from sim.arm.base import ArmEnv
from sim.arm.ee_control import EeDeltaController, EeDeltaLimits
from sim.arm.ik import down_rotation, solve_ik
from sim.arm.kinematics import JOINT_NAMES, Q_READY, TAU_LIMIT, tcp_pose
from sim.arm.mjcf import KP, KV
from sim.arm.reach_free import ReachConfig
from sim.isaac.assets import PANDA

GYM_ID = "RobotRL-Panda-Reach-Direct"
_TASK = ReachConfig(num_envs=1)
SUBSTEPS = round(_TASK.sim.control_dt / _TASK.sim.physics_dt)
POLICY_DIM, CRITIC_DIM = 7 + 7 + 3 + 3, 7 + 7 + 3 + 3 + 3

PANDA_CFG = ArticulationCfg(
    prim_path="{ENV_REGEX_NS}/Panda",
    spawn=sim_utils.UsdFileCfg(usd_path=f"{NUCLEUS_ASSET_ROOT_DIR}/{PANDA}",
                               articulation_props=[NewtonArticulationCfg(self_collision_enabled=False)]),
    init_state=ArticulationCfg.InitialStateCfg(joint_pos={n: float(q) for n, q in zip(JOINT_NAMES, Q_READY,
                                                                                        strict=True)}),
    actuators={"arm": ImplicitActuatorCfg(
        joint_names_expr=["panda_joint.*"], stiffness=dict(zip(JOINT_NAMES, KP, strict=True)),
        damping=dict(zip(JOINT_NAMES, KV, strict=True)),
        joint_effort_limit={n: float(t) for n, t in zip(JOINT_NAMES, TAU_LIMIT, strict=True)})},
)
"""The project's Panda (``python -m sim.isaac.assets DIR`` writes it) with the MJCF's position gains."""


@configclass
class PandaReachSceneCfg(InteractiveSceneCfg):
    """One Panda per env, its base at the env origin (the goal box is in its base frame)."""

    robot: ArticulationCfg = PANDA_CFG


@configclass
class PandaReachEnvCfg(DirectRLEnvCfg):
    """The reach task's Isaac Lab config; ``task`` holds our task options (``num_envs`` follows the scene)."""

    decimation = SUBSTEPS
    episode_length_s = _TASK.episode_seconds
    action_space = 3
    observation_space = POLICY_DIM
    state_space = CRITIC_DIM
    compute_final_obs = True
    sim: SimulationCfg = SimulationCfg(
        dt=_TASK.sim.physics_dt, render_interval=SUBSTEPS, gravity=(0.0, 0.0, 0.0),
        physics=NewtonCfg(solver_cfg=MJWarpSolverCfg(njmax=64, nconmax=64), num_substeps=1, use_cuda_graph=False))
    scene: PandaReachSceneCfg = PandaReachSceneCfg(num_envs=64, env_spacing=2.0, replicate_physics=True)
    task: ReachConfig = _TASK


class PandaReachEnv(DirectRLEnv):
    """See the module docstring."""

    cfg: PandaReachEnvCfg

    def __init__(self, cfg: PandaReachEnvCfg, render_mode: str | None = None, **kwargs: Any) -> None:
        self._ready = False
        super().__init__(cfg, render_mode, **kwargs)
        self.task = replace(cfg.task, num_envs=self.num_envs)
        act = self.task.action
        if act.type != "ee_delta":
            raise ValueError("the Isaac Lab reach task takes the ee_delta action (task.action.type='ee_delta')")
        self.robot = self.scene["robot"]
        self.joint_ids, names = self.robot.find_joints(list(JOINT_NAMES), preserve_order=True)
        if list(names) != list(JOINT_NAMES):
            raise ValueError(f"the Panda asset's joints are {names}, expected {list(JOINT_NAMES)}")
        self.rng = np.random.default_rng(cfg.seed or 0)
        self.controller = EeDeltaController(
            EeDeltaLimits(act.pos_scale, act.yaw_scale, act.max_lead, ArmEnv.workspace_low, ArmEnv.workspace_high,
                          ik_iterations=act.ik_iterations), self.step_dt)
        self.controller.reset(np.tile(Q_READY, (self.num_envs, 1)))
        self.goal = torch.zeros(self.num_envs, 3, device=self.device)
        self._q_target = torch.tensor(np.tile(Q_READY, (self.num_envs, 1)), dtype=torch.float32, device=self.device)
        self._ready = True
        self._reset_idx(torch.arange(self.num_envs, device=self.device))

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every env; a seed also restarts the task's random stream (start joints, goals, noise)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return super().reset(seed=seed, options=options)

    def export_spec(self) -> dict[str, Any]:
        """``panda-reach``'s ``policy.json`` contract under this task config: the policy observation (joints,
        joint velocities, TCP, goal) and the ``ee_delta`` action are that task's, so a run trained here deploys
        like a MuJoCo ``panda-reach`` run (the runtime runs the same IK controller)."""
        from sim.registry import get_task

        return get_task("panda-reach").export_spec(replace(self.task, num_envs=1, device="cpu"))

    # ----------------------------------------------------------------- action: our ee_delta controller
    def joint_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Measured joint positions and velocities ``[N, 7]`` (Franka's joint order)."""
        d = self.robot.data
        return d.joint_pos.torch[:, self.joint_ids], d.joint_vel.torch[:, self.joint_ids]

    def _pre_physics_step(self, actions: torch.Tensor) -> None:
        a = actions.clamp(-1.0, 1.0).detach().cpu().double().numpy()
        q = self.joint_state()[0].detach().cpu().double().numpy()
        out = self.controller.step(q, a)
        self._q_target = torch.as_tensor(out["q_target"], dtype=torch.float32, device=self.device)

    def _apply_action(self) -> None:
        self.robot.actuators.target_command.set_position_index(value=self._q_target, joint_ids=self.joint_ids)

    # ----------------------------------------------------------------- our reach task on Isaac's joints
    def tcp(self, q: torch.Tensor) -> torch.Tensor:
        """TCP positions ``[N, 3]`` (base frame = env frame) of joints ``q`` by :func:`sim.arm.kinematics.tcp_pose`."""
        return torch.as_tensor(tcp_pose(q.detach().cpu().double().numpy())[0], dtype=torch.float32,
                               device=self.device)

    def _distance(self) -> torch.Tensor:
        return (self.tcp(self.joint_state()[0]) - self.goal).norm(dim=-1)

    def _get_dones(self) -> tuple[torch.Tensor, torch.Tensor]:
        time_out = self.episode_length_buf >= self.max_episode_length - 1
        return torch.zeros_like(time_out), time_out

    def _get_rewards(self) -> torch.Tensor:
        d = self._distance()
        reached = d <= self.task.success_distance
        self.extras["success"] = reached  # read by the adapter as info["success"] (before this step's resets)
        return -torch.tanh(d / self.task.distance_scale) + reached.float()

    def _get_observations(self) -> dict[str, torch.Tensor]:
        q, qd = self.joint_state()
        nz = self.task.noise
        n = self.num_envs
        noise = self.rng.standard_normal((n, 14))
        q_n = q + torch.as_tensor(nz.joint_position * noise[:, :7], dtype=torch.float32, device=self.device)
        qd_n = qd + torch.as_tensor(nz.joint_velocity * noise[:, 7:], dtype=torch.float32, device=self.device)
        tcp = self.tcp(q)
        policy = torch.cat((q_n, qd_n, self.tcp(q_n), self.goal), -1)
        critic = torch.cat((q, qd, tcp, self.goal, self.goal - tcp), -1)
        return {"policy": policy, "critic": critic}

    def _reset_idx(self, env_ids: torch.Tensor | None) -> None:
        if env_ids is None:
            env_ids = torch.arange(self.num_envs, device=self.device)
        env_ids = torch.as_tensor(env_ids, device=self.device, dtype=torch.long)
        super()._reset_idx(env_ids)
        if not self._ready:  # DirectRLEnv.__init__ resets before this class's state exists
            return
        c, k = self.task, len(env_ids)
        start = np.array(c.start_tcp) + self.rng.uniform(-c.start_jitter, c.start_jitter, (k, 3))
        q = solve_ik(np.tile(Q_READY, (k, 1)), start, down_rotation(np.full(k, c.hand_yaw)), max_iter=100).q
        self.goal[env_ids] = torch.as_tensor(self.rng.uniform(c.goal_low, c.goal_high, (k, 3)), dtype=torch.float32,
                                             device=self.device)
        rows = env_ids.cpu().numpy()
        self.controller.reset(q, rows=rows)
        q_t = torch.as_tensor(q, dtype=torch.float32, device=self.device)
        self._q_target[env_ids] = q_t
        self.robot.write_joint_position_to_sim_index(position=q_t, joint_ids=self.joint_ids, env_ids=env_ids)
        self.robot.write_joint_velocity_to_sim_index(velocity=torch.zeros_like(q_t), joint_ids=self.joint_ids,
                                                     env_ids=env_ids)
        self.robot.actuators.target_command.set_position_index(value=q_t, joint_ids=self.joint_ids, env_ids=env_ids)


gym.register(id=GYM_ID, entry_point=f"{__name__}:PandaReachEnv", disable_env_checker=True,
             kwargs={"env_cfg_entry_point": f"{__name__}:PandaReachEnvCfg"})
