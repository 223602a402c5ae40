"""A straightforward vectorised NumPy implementation of the L2F hover env step (the benchmark's baseline).

Same model, observations, reward, termination and auto-reset as ``sim.quadrotor.QuadrotorHoverEnv`` for the
default configuration (no domain randomisation), written the obvious way: one array expression per quantity,
float32 throughout. ``check_against_torch`` verifies it against the torch reference with noise off.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig
from sim.quadrotor.task import resolve_frame

F32 = np.float32


class NumpyHoverEnv:
    """Batched hover env on NumPy arrays: ``step(action [N, 4]) -> (obs, reward, terminated, truncated, info)``."""

    def __init__(self, cfg: QuadrotorTaskConfig, seed: int = 0) -> None:
        if cfg.randomization.enabled:
            raise ValueError("the NumPy baseline has no domain randomisation")
        self.cfg, self.n = cfg, cfg.num_envs
        p = self.params = resolve_frame(cfg.frame)
        self.rng = np.random.default_rng(seed)
        self.hover_action = F32(p.hover_action)
        self.mass, self.inertia = F32(p.mass), np.array(p.inertia, F32)
        self.kf, self.tau_m = F32(p.thrust_coefficient), F32(p.motor_time_constant)
        self.gravity = np.array(p.gravity, F32)
        rotors = np.array(p.rotor_positions, F32)
        self.rx, self.ry = rotors[:, 0], rotors[:, 1]
        self.yaw = np.array(p.yaw_signs, F32) * F32(p.torque_coefficient)
        self.rpm_min, self.rpm_max = F32(p.rpm_min), F32(p.rpm_max)
        w = cfg.reward
        self.weights = np.array(w.as_list(), F32)
        self.sig = np.array([cfg.obs_noise_position] * 3 + [cfg.obs_noise_rotation] * 9
                            + [cfg.obs_noise_linear_velocity] * 3 + [cfg.obs_noise_angular_velocity] * 3, F32)
        self.state = np.zeros((self.n, 17), F32)
        self.force = np.zeros((self.n, 3), F32)
        self.torque = np.zeros((self.n, 3), F32)
        self.history = np.zeros((self.n, 4 * cfg.action_history), F32)
        self.steps = np.zeros(self.n, np.int64)
        self._reset(np.arange(self.n))

    def _deriv(self, s: np.ndarray, rpm_cmd: np.ndarray) -> np.ndarray:
        q, v, w, rpm = s[:, 3:7], s[:, 7:10], s[:, 10:13], s[:, 13:17]
        f = self.kf * rpm * rpm
        tau = np.stack(((f * self.ry).sum(1), -(f * self.rx).sum(1), (f * self.yaw).sum(1)), 1) + self.torque
        qw, qx, qy, qz = q.T
        z_axis = np.stack((2 * (qx * qz + qw * qy), 2 * (qy * qz - qw * qx), 1 - 2 * (qx * qx + qy * qy)), 1)
        acc = z_axis * (f.sum(1) / self.mass)[:, None] + self.gravity + self.force / self.mass
        wx, wy, wz = w.T
        q_dot = F32(0.5) * np.stack((-qx * wx - qy * wy - qz * wz, qw * wx + qy * wz - qz * wy,
                                     qw * wy - qx * wz + qz * wx, qw * wz + qx * wy - qy * wx), 1)
        w_dot = (tau - np.cross(w, self.inertia * w)) / self.inertia
        return np.concatenate((v, q_dot, acc, w_dot, (rpm_cmd - rpm) / self.tau_m), 1)

    def _rk4(self, s: np.ndarray, rpm_cmd: np.ndarray) -> np.ndarray:
        dt = F32(self.cfg.dt)
        k1 = self._deriv(s, rpm_cmd)
        k2 = self._deriv(s + F32(0.5 * dt) * k1, rpm_cmd)
        k3 = self._deriv(s + F32(0.5 * dt) * k2, rpm_cmd)
        k4 = self._deriv(s + dt * k3, rpm_cmd)
        nxt = s + F32(self.cfg.dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        nxt[:, 3:7] /= np.sqrt((nxt[:, 3:7] ** 2).sum(1, keepdims=True))
        nxt[:, 13:17] = np.clip(nxt[:, 13:17], self.rpm_min, self.rpm_max)
        return nxt

    def _observe(self) -> dict[str, np.ndarray]:
        s = self.state
        qw, qx, qy, qz = s[:, 3:7].T
        rot = np.stack((1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
                        2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
                        2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)), 1)
        clean = np.concatenate((s[:, :3], rot, s[:, 7:13]), 1)
        seen = clean
        if self.cfg.noise:
            seen = clean + self.rng.standard_normal(clean.shape, dtype=F32) * self.sig
        rpm = s[:, 13:17] / self.rpm_max * 2 - 1
        return {"policy": np.concatenate((seen, self.history), 1),
                "critic": np.concatenate((clean, self.force, self.torque, rpm, self.history), 1)}

    def _reset(self, idx: np.ndarray) -> None:
        cfg, k, rng = self.cfg, idx.size, self.rng
        guided = rng.random(k) < cfg.init_guidance
        pos = rng.uniform(-cfg.init_max_position, cfg.init_max_position, (k, 3)).astype(F32)
        quat = np.zeros((k, 4), F32)
        todo = np.ones(k, bool)
        min_w = math.cos(math.radians(cfg.init_max_angle_deg) / 2)
        while todo.any():
            q = rng.standard_normal((k, 4), dtype=F32)
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            q *= np.where(q[:, :1] < 0, F32(-1), F32(1))
            ok = todo & (q[:, 0] >= min_w)
            quat[ok] = q[ok]
            todo &= ~ok
        pos[guided] = 0
        quat[guided] = (1, 0, 0, 0)
        vel = rng.uniform(-cfg.init_max_linear_velocity, cfg.init_max_linear_velocity, (k, 3))
        omega = rng.uniform(-cfg.init_max_angular_velocity, cfg.init_max_angular_velocity, (k, 3))
        rpm = np.full((k, 4), cfg.init_rpm)
        self.state[idx] = np.concatenate((pos, quat, vel, omega, rpm), 1)
        weight = -self.mass * self.gravity[2]
        self.force[idx] = rng.standard_normal((k, 3), dtype=F32) * F32(weight * cfg.disturbance_force_std_g)
        self.torque[idx] = rng.standard_normal((k, 3), dtype=F32) * F32(cfg.disturbance_torque_std)
        self.history[idx] = 0
        self.steps[idx] = 0

    def step(self, action: np.ndarray):
        a = np.clip(action.astype(F32, copy=False), -1, 1)
        rpm_cmd = (a + 1) * F32(0.5 * (self.rpm_max - self.rpm_min)) + self.rpm_min
        self.state = self._rk4(self.state, rpm_cmd)
        self.history = np.concatenate((self.history[:, 4:], a), 1)
        self.steps += 1
        s = self.state
        terms = np.stack(((s[:, :3] ** 2).sum(1), 1 - s[:, 3] ** 2, (s[:, 7:10] ** 2).sum(1),
                          (s[:, 10:13] ** 2).sum(1), ((a - self.hover_action) ** 2).sum(1)), 1)
        w = self.cfg.reward
        reward = F32(-w.scale) * (terms @ self.weights) + F32(w.constant)
        terminated = (np.abs(s[:, :3]) > self.cfg.position_limit).any(1) | ~np.isfinite(s).all(1)
        truncated = (self.steps >= self.cfg.episode_length) & ~terminated
        done = terminated | truncated
        obs = self._observe()
        info = {"final_obs": obs, "done_mask": done, "reward_terms": terms, "time_outs": truncated}
        if done.any():
            self._reset(np.flatnonzero(done))
            obs = self._observe()
        return obs, reward, terminated, truncated, info


def check_against_torch(n: int = 32, steps: int = 10) -> float:
    """Step the NumPy env and the torch reference from the same states (noise off); return the max difference.

    Raises AssertionError when any output differs by more than float32 rounding.
    """
    cfg = QuadrotorTaskConfig(num_envs=n, noise=False)
    ref, base = QuadrotorHoverEnv(cfg, seed=0), NumpyHoverEnv(cfg, seed=1)
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(steps):
        ref.state[:, :3] *= 0.1  # stay inside the position limit: no resets
        base.state[:], base.force[:], base.torque[:] = ref.state.numpy(), ref.force.numpy(), ref.torque.numpy()
        base.history[:], base.steps[:] = ref.history.numpy(), ref.steps.numpy()
        a = torch.full((n, 4), ref.hover_action) + (torch.rand(n, 4, generator=g) - 0.5) * 0.1
        o1, r1, t1, u1, _ = ref.step(a)
        o2, r2, t2, u2, _ = base.step(a.numpy())
        pairs = [(ref.state, base.state), (o1["policy"], o2["policy"]), (o1["critic"], o2["critic"]), (r1, r2)]
        for x, y in pairs:
            torch.testing.assert_close(torch.from_numpy(np.asarray(y)), x, rtol=1e-5, atol=1e-5)
            worst = max(worst, float((torch.from_numpy(np.asarray(y)) - x).abs().max()))
        assert np.array_equal(t1.numpy(), t2) and np.array_equal(u1.numpy(), u2)
    return worst
