"""The batched L2F hover task on torch (CPU or CUDA): observations, reward, termination, resets.

The reward's terms and weighting (:mod:`sim.quadrotor.reward`) are importable from here too.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim.core import BatchedEnv, Obs
from sim.quadrotor.attitude_level import AttitudeThrustLevel, vehicle_hover_thrust
from sim.quadrotor.config import QuadrotorTaskConfig, RewardWeights, critic_history_actions, init_min_w, start_rpm_mode
from sim.quadrotor.dynamics import (
    OMEGA,
    POS,
    QUAT,
    RPM,
    STATE_DIM,
    VEL,
    action_to_rpm,
    hover_rpm,
    quat_to_rotmat,
    rk4_step,
)
from sim.quadrotor.export_spec import hover_export_spec
from sim.quadrotor.params import QuadrotorParams, crazyflie_params, load_params
from sim.quadrotor.reward import REWARD_TERMS, reward_from_terms, reward_terms
from sim.quadrotor.vehicle_replay import VehicleReplay
from sim.quadrotor.vehicles import (
    VEHICLE_KEYS,
    normalised,
    sample_vehicles,
    vehicle_command_rpm,
    vehicle_hover_action,
    vehicle_param_tensors,
)


def resolve_frame(frame: str) -> QuadrotorParams:
    """A frame by name (``crazyflie``) or by path to a YAML parameter file."""
    if frame == "crazyflie":
        return crazyflie_params()
    builtin = Path(__file__).parent / f"{frame}.yaml"
    return load_params(builtin if builtin.is_file() else frame)


def check_action(action: torch.Tensor, num_envs: int) -> None:
    """Raise the one-line error every hover backend gives for an action batch of the wrong shape or with NaN/inf
    (a non-finite action never reaches the motors; clipping would silently turn it into NaN rotor speeds)."""
    if tuple(action.shape) != (num_envs, 4):
        raise ValueError(f"action must be [{num_envs}, 4], got {list(action.shape)}")
    a = torch.as_tensor(action).detach()
    if bool(np.isfinite(a.numpy()).all() if a.device.type == "cpu" else torch.isfinite(a).all()):
        return  # (numpy: a few microseconds, which matters beside the fused env's step)
    bad = ~torch.isfinite(a).all(-1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"action is not finite (NaN or inf) in env(s) {rows[:8]}{' ...' if len(rows) > 8 else ''}; "
                         f"the quadrotor takes actions in [-1, 1]")


class QuadrotorHoverEnv(BatchedEnv):
    """Hover at a target from random initial states with per-episode disturbances (paper task).

    Observation groups: ``policy`` (146 by default: position - target, rotation matrix row-major,
    world linear velocity, body angular velocity, noisy; then the last ``action_history`` actions, oldest
    first) and ``critic`` (156 by default: the same noise-free state, disturbance force and torque, rotor
    speeds normalised to [-1, 1]; 4 parameter factors when domain randomisation is on; the actor's action
    history; and, when observation latency is randomised, the actor's latency as a fraction of its maximum;
    these two only with ``critic_actor_inputs``, the default). The critic sees what determines the actor's action
    (its action history and how stale its observation is), so that Q and V are functions of it.
    """

    differentiable = True

    def __init__(self, cfg: QuadrotorTaskConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg = replace(cfg) if cfg is not None else QuadrotorTaskConfig()
        self.params = resolve_frame(cfg.frame)
        self.num_envs = n = cfg.num_envs
        self.device = torch.device(cfg.device)
        self.dt = cfg.dt
        self.max_episode_steps = cfg.episode_length
        self.action_dim = 4
        self.reward_term_names = REWARD_TERMS
        self.hover_action = self.params.hover_action
        self._hover_ref: float | torch.Tensor = self.hover_action
        self.reward_weights = replace(cfg.reward)
        self._dr = cfg.randomization
        self._veh = cfg.vehicles
        self._latency_max = int(cfg.randomization.obs_latency_steps[1])
        if self._veh.enabled:
            self._veh.check()
            if self._dr.enabled:
                raise ValueError("vehicles: needs randomization off (the vehicle distribution draws mass, inertia, "
                                 "thrust, motors and latency itself)")
            self._latency_max = int(self._veh.latency_steps[1])
        self._replay = None  # outcome-prioritised vehicle draws (vehicle_replay.py), shared with the fused env
        self._crashed: torch.Tensor | None = None  # the envs that terminated, during a step's resets
        if self._veh.enabled and self._veh.replay_fraction > 0:
            self._replay = VehicleReplay(self._veh, n, seed)
        init_min_w(cfg)  # a clear error for an initial tilt outside [0, 180] degrees
        self._start_mode = start_rpm_mode(cfg)  # and for two rotor starts at once
        self._state_obs_dim = 18 if cfg.obs_angular_velocity else 15
        self.obs_dims = {
            "policy": self._state_obs_dim + 4 * cfg.action_history,
            "critic": 28 + (4 if self._dr.enabled else 0) + (len(VEHICLE_KEYS) if self._veh.enabled else 0)
            + ((4 * critic_history_actions(cfg) + (self._latency_max > 0)) if cfg.critic_actor_inputs else 0),
        }
        dev, f32 = self.device, torch.float32
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(seed)
        self._veh_gen: torch.Generator | None = None
        if self._veh.enabled and self._veh.seed is not None:
            self._veh_gen = torch.Generator(device=dev)
            self._veh_gen.manual_seed(self._veh.seed)
        self._level: AttitudeThrustLevel | None = None
        if cfg.action_level == "attitude_thrust":
            self._level = AttitudeThrustLevel(cfg.attitude, self.params, cfg.dt, n, dev, self.gen,
                                              per_vehicle=self._veh.enabled)
            self.hover_action = self._level.hover_action
            self._hover_ref = torch.tensor(self.hover_action, device=dev)
        elif cfg.action_level != "motor_rpm":
            raise ValueError(f"unknown action_level {cfg.action_level!r}; choose 'motor_rpm' or 'attitude_thrust'")
        self.pt = self.params.tensors(n, dev, f32)
        self.factors = torch.ones(n, 4, device=dev)  # mass, inertia, thrust coeff, motor time constant
        self.latency = torch.zeros(n, dtype=torch.long, device=dev)
        self.vehicle_values = torch.zeros(n, len(VEHICLE_KEYS), device=dev)  # columns VEHICLE_KEYS
        self._noise_scale = torch.ones(n, 1, device=dev)
        self.state = torch.zeros(n, STATE_DIM, device=dev)
        self.history = torch.zeros(n, 4 * cfg.action_history, device=dev)
        self.force = torch.zeros(n, 3, device=dev)
        self.torque = torch.zeros(n, 3, device=dev)
        self.target = torch.zeros(n, 3, device=dev)
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self._delay = torch.zeros(self._latency_max + 1, n, self._state_obs_dim, device=dev)
        self._delay_head = 0
        self._noise_std = torch.tensor(
            [cfg.obs_noise_position] * 3 + [cfg.obs_noise_rotation] * 9
            + [cfg.obs_noise_linear_velocity] * 3 + [cfg.obs_noise_angular_velocity] * 3, device=dev
        )[:self._state_obs_dim]
        self._reset_envs(torch.ones(n, dtype=torch.bool, device=dev))

    # ----------------------------------------------------------------- public API
    def set_reward_weights(self, weights: RewardWeights) -> None:
        """Change the reward weights from the next step on (used by curricula)."""
        self.reward_weights = replace(weights)

    def reward_from_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Rewards of stored reward terms under the current weights (for replay-buffer recomputation)."""
        return reward_from_terms(terms, self.reward_weights)

    def detach(self) -> None:
        """Cut the autograd graph at the current state (the env is differentiable: actions that require grad
        propagate through dynamics, observations and reward, which analytic policy gradients use)."""
        for k in ("state", "history", "_delay"):
            setattr(self, k, getattr(self, k).detach())
        if self._level is not None:
            self._level.detach()

    _STATE_KEYS = ("state", "history", "force", "torque", "target", "steps", "factors", "latency", "_delay")

    def position_error(self) -> torch.Tensor:
        """``[N, 3]`` position - target of the current state (noise-free; differentiable like the state)."""
        return self.state[:, POS] - self.target

    def vehicles(self) -> dict[str, torch.Tensor]:
        """The current vehicle of every env ``{name: [N]}`` (names ``VEHICLE_KEYS``; zeros when off)."""
        return dict(zip(VEHICLE_KEYS, self.vehicle_values.unbind(-1), strict=True))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue bit-exactly (buffers, parameters, random generator)."""
        out = {f"env.{k}": getattr(self, k).clone() for k in self._STATE_KEYS}
        out.update({f"env.pt.{k}": getattr(self.pt, k).clone() for k in ("mass", "inertia", "thrust_coefficient",
                                                                          "motor_time_constant")})
        out["env.gen"] = self.gen.get_state()
        if self._veh.enabled:
            out["env.vehicle_values"] = self.vehicle_values.clone()
        if self._veh_gen is not None:
            out["env.vehicle_gen"] = self._veh_gen.get_state()
        out.update(self._replay.state_dict() if self._replay is not None else {})
        out["env.delay_head"] = torch.tensor(self._delay_head)
        out["env.reward_weights"] = torch.tensor(self.reward_weights.as_list() + [self.reward_weights.scale,
                                                                                  self.reward_weights.constant])
        if self._level is not None:
            out.update(self._level.state_dict())
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in self._STATE_KEYS:
            setattr(self, k, state[f"env.{k}"].to(self.device).clone())
        self.pt = self.pt._replace(**{k: state[f"env.pt.{k}"].to(self.device).clone() for k in (
            "mass", "inertia", "thrust_coefficient", "motor_time_constant")})
        self.gen.set_state(state["env.gen"])
        if self._veh.enabled:
            self.vehicle_values = state["env.vehicle_values"].to(self.device).clone()
            self._apply_vehicles()
        if self._veh_gen is not None:
            self._veh_gen.set_state(state["env.vehicle_gen"])
        if self._replay is not None:
            self._replay.load_state_dict(state)
        self._delay_head = int(state["env.delay_head"])
        w = state["env.reward_weights"].tolist()
        self.reward_weights = RewardWeights(*w[:5], scale=w[5], constant=w[6])
        if self._level is not None:
            self._level.load_state_dict(state)

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self.gen.manual_seed(seed)
            if self._veh_gen is not None:
                self._veh_gen.manual_seed(self._veh.seed)
            if self._replay is not None:
                self._replay.rekey(seed)
        self._reset_envs(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._observe(fresh=torch.ones(self.num_envs, dtype=torch.bool, device=self.device))

    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        check_action(action, self.num_envs)
        a = action.to(self.device, torch.float32).clamp(-1.0, 1.0)
        self.state = self._advance(a)
        self.history = torch.cat((self.history[:, 4:], a), dim=1)
        self.steps += 1
        terms = reward_terms(self.state, a, self.target, self._hover_ref)
        reward = reward_from_terms(terms, self.reward_weights)
        rel = self.state[:, POS] - self.target
        terminated = (rel.abs() > self.cfg.position_limit).any(-1) | ~torch.isfinite(self.state).all(-1)
        truncated = (self.steps >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = self._observe(fresh=torch.zeros_like(done))
        info: dict[str, Any] = {"final_obs": obs, "done_mask": done, "reward_terms": terms,
                                "time_outs": truncated}
        if bool(done.any()):
            self._crashed = terminated  # read by the vehicle replay (subclasses override _reset_envs(mask))
            self._reset_envs(done)
            self._crashed = None
            obs = self._observe(fresh=done, advance=False)
        return obs, reward, terminated, truncated, info

    def export_spec(self) -> dict[str, Any]:
        """The actor observation and action contract of this task (``policy.json`` fields)."""
        return hover_export_spec(self.cfg, self.params)

    # ----------------------------------------------------------------- internals
    def _advance(self, a: torch.Tensor) -> torch.Tensor:
        """The state after one control step under clipped actions ``a`` (the physics; simulator backends
        override this and nothing else of the task)."""
        if self._level is None:
            return rk4_step(self.state, self._motor_rpm(a), self.pt, self.dt, self.force, self.torque)
        return self._level.advance(self.state, self._level.setpoint(a), self.pt, self.force, self.torque)

    def _motor_rpm(self, a: torch.Tensor) -> torch.Tensor:
        """Rotor speeds that motor-level actions ``a`` command on each env's own frame or vehicle (``pt``)."""
        if self._veh.enabled:
            return vehicle_command_rpm(a, self.pt)
        return action_to_rpm(a, self.pt.rpm_min, self.pt.rpm_max)

    def _start_rpm(self, n: int) -> torch.Tensor:
        """``[n, 4]`` rotor speeds an episode starts with: ``init_rpm``, with ``init_rpm_relative`` the speed action 0
        commands, with ``init_rpm_hover`` the hover speed, each on the env's own frame or vehicle (the current
        ``pt``; at any action level)."""
        if self._start_mode == 1:
            return self._motor_rpm(torch.zeros(n, 4, device=self.device))
        if self._start_mode == 2:
            return hover_rpm(self.pt).expand(n, 4)
        return torch.full((n, 4), self.cfg.init_rpm, device=self.device)

    def _uniform(self, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen, device=self.device) * (high - low) + low

    def _sample_quaternions(self, n: int, max_angle: float) -> torch.Tensor:
        """Uniform over rotations of at most ``max_angle`` (rad), by rejection from uniform SO(3)."""
        out = torch.zeros(n, 4, device=self.device)
        todo = torch.ones(n, dtype=torch.bool, device=self.device)
        min_w = math.cos(max_angle / 2)
        if min_w >= 1.0:  # a maximum angle of 0: level (rejection would never accept)
            out[:, 0] = 1.0
            return out
        while bool(todo.any()):
            q = torch.randn(n, 4, generator=self.gen, device=self.device)
            q = q / q.norm(dim=-1, keepdim=True)
            q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
            ok = todo & (q[:, 0] >= min_w)
            out = torch.where(ok[:, None], q, out)
            todo = todo & ~ok
        return out

    def _reset_envs(self, mask: torch.Tensor) -> None:
        """Resample initial state, disturbances and (if enabled) parameters of the envs in ``mask``.

        Random numbers are drawn for all envs so that the stream does not depend on which envs finished.
        """
        cfg, n, m = self.cfg, self.num_envs, mask[:, None]
        self._resample_params(mask)
        guided = torch.rand(n, generator=self.gen, device=self.device) < cfg.init_guidance
        pos = self._uniform((n, 3), -cfg.init_max_position, cfg.init_max_position)
        quat = self._sample_quaternions(n, math.radians(cfg.init_max_angle_deg))
        pos = torch.where(guided[:, None], 0.0, pos) + self.target
        quat = torch.where(guided[:, None], torch.tensor([1.0, 0.0, 0.0, 0.0], device=self.device), quat)
        vel = self._uniform((n, 3), -cfg.init_max_linear_velocity, cfg.init_max_linear_velocity)
        omega = self._uniform((n, 3), -cfg.init_max_angular_velocity, cfg.init_max_angular_velocity)
        rpm = self._start_rpm(n)
        new = torch.cat((pos, quat, vel, omega, rpm), dim=-1)
        self.state = torch.where(m, new, self.state)
        weight = self.pt.mass * self.params.gravity[2] * -1.0
        force = torch.randn(n, 3, generator=self.gen, device=self.device) * (weight * cfg.disturbance_force_std_g)
        torque = torch.randn(n, 3, generator=self.gen, device=self.device) * cfg.disturbance_torque_std
        self.force = torch.where(m, force, self.force)
        self.torque = torch.where(m, torque, self.torque)
        self.history = torch.where(m, 0.0, self.history)
        self.steps = torch.where(mask, 0, self.steps)
        if self._level is not None:
            self._level.reset(mask, self.state)

    def _resample_params(self, mask: torch.Tensor) -> None:
        if self._replay is not None:
            idx = torch.nonzero(mask).flatten().cpu().numpy()
            hit = self._crashed[mask].cpu().numpy() if self._crashed is not None else np.zeros(idx.size, bool)
            v = self.vehicle_values.to("cpu", torch.float32).numpy().copy()
            self._replay.reset_envs(idx, hit, v)
            self.vehicle_values = torch.from_numpy(v).to(self.device)
            self._apply_vehicles()
            return
        if self._veh.enabled:
            gen = self._veh_gen if self._veh_gen is not None else self.gen
            v = torch.stack(list(sample_vehicles(self._veh, self.num_envs, gen, self.device).values()), -1)
            self.vehicle_values = torch.where(mask[:, None], v, self.vehicle_values)
            self._apply_vehicles()
            return
        if not self._dr.enabled:
            return
        r, n = self._dr, self.num_envs
        f = torch.stack([self._uniform((n,), *rng) for rng in (r.mass, r.inertia, r.thrust_coefficient,
                                                                 r.motor_time_constant)], dim=-1)
        self.factors = torch.where(mask[:, None], f, self.factors)
        lo, hi = r.obs_latency_steps
        lat = torch.randint(lo, hi + 1, (n,), generator=self.gen, device=self.device)
        self.latency = torch.where(mask, lat, self.latency)
        base = self.params.tensors(n, self.device)
        self.pt = base._replace(
            mass=base.mass * self.factors[:, 0:1],
            inertia=base.inertia * self.factors[:, 1:2],
            thrust_coefficient=base.thrust_coefficient * self.factors[:, 2:3],
            motor_time_constant=base.motor_time_constant * self.factors[:, 3:4],
        )

    def _apply_vehicles(self) -> None:
        """Dynamics parameters, latency, noise scale and hover action of the current ``vehicle_values``."""
        v = self.vehicles()
        self.pt = vehicle_param_tensors(self.params, v)
        self.latency = v["latency_steps"].round().long()
        self._noise_scale = v["obs_noise_scale"][:, None]
        if self._level is None:
            self._hover_ref = vehicle_hover_action(self.params, v)[:, None]
            return
        thrust = vehicle_hover_thrust(self.params, v)
        self._level.set_hover_thrust(thrust)
        scale, offset = self.cfg.attitude.scale_offset()
        ref = torch.zeros(self.num_envs, 4, device=self.device)
        ref[:, 3] = (thrust - offset[3]) / scale[3]
        self._hover_ref = ref

    def _state_obs(self) -> torch.Tensor:
        s = self.state
        rot = quat_to_rotmat(s[:, QUAT]).reshape(-1, 9)
        parts = [s[:, POS] - self.target, rot, s[:, VEL]] + ([s[:, OMEGA]] if self.cfg.obs_angular_velocity else [])
        return torch.cat(parts, dim=-1)

    def _critic_state(self) -> torch.Tensor:
        s = self.state
        return torch.cat((s[:, POS] - self.target, quat_to_rotmat(s[:, QUAT]).reshape(-1, 9), s[:, VEL], s[:, OMEGA]),
                         dim=-1)

    def _observe(self, fresh: torch.Tensor, advance: bool = True) -> Obs:
        """Build both groups. ``fresh`` envs were just reset: their delay line is refilled."""
        clean = self._state_obs()
        seen = clean
        if self._latency_max > 0:
            if advance:
                self._delay_head = (self._delay_head + 1) % (self._latency_max + 1)
            self._delay[self._delay_head] = clean
            self._delay = torch.where(fresh[None, :, None], clean[None], self._delay)
            idx = (self._delay_head - self.latency) % (self._latency_max + 1)
            seen = self._delay[idx, torch.arange(self.num_envs, device=self.device)]
        if self.cfg.noise:
            noise = torch.randn(seen.shape, generator=self.gen, device=self.device) * self._noise_std
            seen = seen + (noise * self._noise_scale if self._veh.enabled else noise)
        rpm = self.state[:, RPM] / self.pt.rpm_max * 2.0 - 1.0
        critic = [clean if self.cfg.obs_angular_velocity else self._critic_state(), self.force, self.torque, rpm]
        if self._dr.enabled:
            critic.append(self.factors - 1.0)
        if self._veh.enabled:
            critic.append(normalised(self._veh, self.vehicles()))
        if self.cfg.critic_actor_inputs:
            critic.append(self.history[:, self.history.shape[1] - 4 * critic_history_actions(self.cfg):])
            if self._latency_max > 0:
                critic.append((self.latency.to(torch.float32) / self._latency_max)[:, None])
        return {"policy": torch.cat((seen, self.history), dim=-1), "critic": torch.cat(critic, dim=-1)}
