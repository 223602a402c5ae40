"""Our Crazyflie hover task as an Isaac Lab ``DirectRLEnv``: Isaac Lab's physics, our task.

``RobotRL-Crazyflie-Hover-Direct`` (gymnasium id; ``isaac:RobotRL-Crazyflie-Hover-Direct`` in our registry) flies
the paper model (``sim/quadrotor/crazyflie.yaml``) as one free rigid body in Isaac Lab (Newton / MuJoCo-Warp,
500 Hz physics, 100 Hz control). Observations (``policy`` and privileged ``critic``), reward, termination,
truncation, initial states, disturbances and observation noise are our :class:`QuadrotorHoverEnv`'s own code,
run on the state Isaac Lab reports (the pattern of :mod:`sim.quadrotor.engine_env`); the rotors are our
first-order motor model solved exactly per physics substep, their thrusts and torques (``r_i x f_i`` plus the
yaw reaction ``k_m sign_i f_i``) and the episode's disturbance applied as one body-frame wrench through
Isaac Lab's permanent wrench composer. An Isaac Lab user trains it with their own tooling as any
``DirectRLEnv``: ``gym.make("RobotRL-Crazyflie-Hover-Direct", cfg=CrazyflieHoverEnvCfg())``, with the body's USD
written by :func:`sim.isaac.assets.write_crazyflie` (``--task.asset-root`` / ``redirect_assets``).

Differences from our torch env: Isaac Lab's integrator instead of RK4, and the terminal observation of an
episode (``compute_final_obs``) draws its own observation noise. Motor level only; no domain randomisation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import isaaclab.sim as sim_utils
import torch
from isaaclab.assets import RigidObjectCfg
from isaaclab.envs import DirectRLEnv, DirectRLEnvCfg
from isaaclab.scene import InteractiveSceneCfg
from isaaclab.sim import SimulationCfg
from isaaclab.utils import configclass
from isaaclab.utils.assets import NUCLEUS_ASSET_ROOT_DIR
from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg

from sim.isaac.assets import CRAZYFLIE
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, VEL
from sim.quadrotor.task import QuadrotorHoverEnv, reward_from_terms, reward_terms

GYM_ID = "RobotRL-Crazyflie-Hover-Direct"
SUBSTEPS = 5
HOVER_HEIGHT = 1.0
"""Height of each env's target above its env origin (m); there is no ground: nothing to collide with."""

_TASK = QuadrotorTaskConfig(num_envs=1)  # the paper task: motor level, no domain randomisation
_DIMS = QuadrotorHoverEnv(_TASK).obs_dims


@configclass
class CrazyflieHoverSceneCfg(InteractiveSceneCfg):
    """One Crazyflie per env, its target ``HOVER_HEIGHT`` above the env origin."""

    robot: RigidObjectCfg = RigidObjectCfg(
        prim_path="{ENV_REGEX_NS}/Crazyflie",
        spawn=sim_utils.UsdFileCfg(usd_path=f"{NUCLEUS_ASSET_ROOT_DIR}/{CRAZYFLIE}"),
        init_state=RigidObjectCfg.InitialStateCfg(pos=(0.0, 0.0, HOVER_HEIGHT)),
    )


@configclass
class CrazyflieHoverEnvCfg(DirectRLEnvCfg):
    """The hover task's Isaac Lab config; ``task`` holds our task options (``num_envs`` follows the scene)."""

    decimation = SUBSTEPS
    episode_length_s = _TASK.episode_length * _TASK.dt
    action_space = 4
    observation_space = _DIMS["policy"]
    state_space = _DIMS["critic"]
    compute_final_obs = True
    sim: SimulationCfg = SimulationCfg(
        dt=_TASK.dt / SUBSTEPS, render_interval=SUBSTEPS, gravity=(0.0, 0.0, -9.81),
        physics=NewtonCfg(solver_cfg=MJWarpSolverCfg(njmax=4, nconmax=4), num_substeps=1, use_cuda_graph=False))
    scene: CrazyflieHoverSceneCfg = CrazyflieHoverSceneCfg(num_envs=64, env_spacing=2.0, replicate_physics=True)
    task: QuadrotorTaskConfig = _TASK


class CrazyflieHoverEnv(DirectRLEnv):
    """See the module docstring."""

    cfg: CrazyflieHoverEnvCfg

    def __init__(self, cfg: CrazyflieHoverEnvCfg, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(cfg, render_mode, **kwargs)
        task_cfg = replace(cfg.task, num_envs=self.num_envs, device=str(self.device))
        if task_cfg.action_level != "motor_rpm" or task_cfg.randomization.enabled:
            raise ValueError("the Isaac Lab hover task flies action_level='motor_rpm' without domain randomisation")
        self.task = QuadrotorHoverEnv(task_cfg, seed=cfg.seed or 0)
        self.robot = self.scene["robot"]
        pt = self.task.pt
        self._rotor_xy = pt.rotor_positions[:, :2]
        self._rpm = self.task.state[:, RPM].clone()
        self._fresh = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._advance_obs = True
        self._a = torch.zeros(self.num_envs, 4, device=self.device)
        self._reset_idx(torch.arange(self.num_envs, device=self.device))

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every env; a seed also restarts our task's random stream (initial states, disturbances, noise)."""
        if seed is not None:
            self.task.gen.manual_seed(seed)
        return super().reset(seed=seed, options=options)

    def export_spec(self) -> dict[str, Any]:
        """The hover task's ``policy.json`` contract (:func:`sim.quadrotor.export_spec.hover_export_spec`): the
        observations and actions are our task's own code, so a run trained here deploys like ``quadrotor-hover``
        (the :class:`IsaacLabEnv` adapter passes this on to ``robot-rl export``)."""
        return self.task.export_spec()

    # ----------------------------------------------------------------- physics: our motor model, Isaac's body
    def _pre_physics_step(self, actions: torch.Tensor) -> None:
        pt = self.task.pt
        self._a = actions.to(self.device, torch.float32).clamp(-1.0, 1.0)
        self._cmd = (self._a + 1.0) * (0.5 * (pt.rpm_max - pt.rpm_min)) + pt.rpm_min
        h, tau = self.cfg.sim.dt, pt.motor_time_constant
        self._decay = torch.exp(-h / tau)
        # mean of w(t)^2 over a substep for w(t) = c + e exp(-t / T): c^2 + 2 c e m1 + e^2 m2
        self._m1, self._m2 = tau / h * (1.0 - self._decay), tau / (2.0 * h) * (1.0 - self._decay**2)
        self._fresh.zero_()
        self._advance_obs = True

    def _apply_action(self) -> None:
        pt, cmd = self.task.pt, self._cmd
        e = self._rpm - cmd
        f = pt.thrust_coefficient * (cmd * cmd + 2.0 * cmd * e * self._m1 + e * e * self._m2)  # [N, 4]
        self._rpm = (cmd + e * self._decay).clamp(pt.rpm_min, pt.rpm_max)
        zero = torch.zeros_like(f[:, 0])
        force_b = torch.stack((zero, zero, f.sum(-1)), -1) + _rotate(_conj(self._quat_wxyz()), self.task.force)
        torque_b = torch.stack(((f * self._rotor_xy[:, 1]).sum(-1), -(f * self._rotor_xy[:, 0]).sum(-1),
                                (f * pt.yaw_torque).sum(-1)), -1) + self.task.torque
        self.robot.permanent_wrench_composer.set_forces_and_torques_index(
            forces=force_b[:, None], torques=torque_b[:, None], is_global=False)

    # ----------------------------------------------------------------- our task on Isaac's state
    def _quat_wxyz(self) -> torch.Tensor:
        q = self.robot.data.root_quat_w.torch  # x, y, z, w
        return torch.cat((q[:, 3:], q[:, :3]), -1)

    def _read_state(self) -> torch.Tensor:
        d = self.robot.data
        q = self._quat_wxyz()
        q = q / q.norm(dim=-1, keepdim=True)
        pos = d.root_pos_w.torch - self.scene.env_origins - _height(self.device)
        return torch.cat((pos, q, d.root_lin_vel_w.torch, d.root_ang_vel_b.torch, self._rpm), -1)

    def _get_dones(self) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.task
        t.state = self._read_state()
        t.history = torch.cat((t.history[:, 4:], self._a), dim=1)
        t.steps += 1
        rel = t.state[:, POS] - t.target
        terminated = (rel.abs() > t.cfg.position_limit).any(-1) | ~torch.isfinite(t.state).all(-1)
        return terminated, (t.steps >= t.max_episode_steps) & ~terminated

    def _get_rewards(self) -> torch.Tensor:
        t = self.task
        return reward_from_terms(reward_terms(t.state, self._a, t.target, t._hover_ref), t.reward_weights)

    def _get_observations(self) -> dict[str, torch.Tensor]:
        obs = self.task._observe(fresh=self._fresh, advance=self._advance_obs)
        self._advance_obs = False
        return obs

    def _reset_idx(self, env_ids: torch.Tensor | None) -> None:
        if env_ids is None:
            env_ids = torch.arange(self.num_envs, device=self.device)
        env_ids = torch.as_tensor(env_ids, device=self.device, dtype=torch.long)
        super()._reset_idx(env_ids)
        if not hasattr(self, "task"):  # DirectRLEnv.__init__ resets before this class's state exists
            return
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        mask[env_ids] = True
        self.task._reset_envs(mask)
        s = self.task.state[env_ids]
        self._rpm[env_ids] = s[:, RPM]
        self._fresh |= mask
        pos = s[:, POS] + self.scene.env_origins[env_ids] + _height(self.device)
        quat_xyzw = torch.cat((s[:, QUAT][:, 1:], s[:, QUAT][:, :1]), -1)
        vel_w = torch.cat((s[:, VEL], _rotate(s[:, QUAT], s[:, OMEGA])), -1)  # com velocity: world linear, angular
        self.robot.write_root_pose_to_sim_index(root_pose=torch.cat((pos, quat_xyzw), -1), env_ids=env_ids)
        self.robot.write_root_velocity_to_sim_index(root_velocity=vel_w, env_ids=env_ids)


def _height(device: torch.device) -> torch.Tensor:
    return torch.tensor([0.0, 0.0, HOVER_HEIGHT], device=device)


def _conj(q: torch.Tensor) -> torch.Tensor:
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], device=q.device)


def _rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[N, 3]`` by unit quaternions ``q`` ``[N, 4]`` (w, x, y, z)."""
    w, u = q[:, :1], q[:, 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


gym.register(id=GYM_ID, entry_point=f"{__name__}:CrazyflieHoverEnv", disable_env_checker=True,
             kwargs={"env_cfg_entry_point": f"{__name__}:CrazyflieHoverEnvCfg"})
