"""An independent NumPy implementation of the L2F quadrotor that flies an export from its two files only.

It reads the physical model and the observation/action contract from ``policy.json`` and never imports
``sim`` or ``robot_rl``, so it checks that the contract is exact (frames, order, units, history direction).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort


def _rotmat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


class IndependentQuadrotor:
    """One quadrotor in float64, stepped at the export's control rate with RK4."""

    def __init__(self, export_dir: Path) -> None:
        self.spec = json.loads((Path(export_dir) / "policy.json").read_text())
        self.sess = ort.InferenceSession(str(Path(export_dir) / "policy.onnx"), providers=["CPUExecutionProvider"])
        m = self.spec["model"]
        self.mass, self.g = m["mass"], np.array(m["gravity"])
        self.J = np.array(m["inertia"])
        self.r = np.array(m["rotor_positions"])
        self.kf, self.km, self.signs = m["thrust_coefficient"], m["torque_coefficient"], np.array(m["yaw_signs"])
        self.tau, self.rpm_min, self.rpm_max = m["motor_time_constant"], m["rpm_min"], m["rpm_max"]
        self.dt = 1.0 / self.spec["control_rate_hz"]
        hist = next(c for c in self.spec["observation"] if c["name"] == "action_history")
        self.history = np.full((hist["steps"], self.spec["action"]["size"]), hist.get("initial_value", 0.0))

    def deriv(self, s: np.ndarray, cmd: np.ndarray, force: np.ndarray, torque: np.ndarray) -> np.ndarray:
        q, v, w, rpm = s[3:7], s[7:10], s[10:13], s[13:17]
        f = self.kf * rpm**2
        tau = np.array([(f * self.r[:, 1]).sum(), -(f * self.r[:, 0]).sum(), (f * self.km * self.signs).sum()])
        acc = _rotmat(q) @ np.array([0, 0, f.sum()]) / self.mass + self.g + force / self.mass
        qw, qx, qy, qz = q
        wx, wy, wz = w
        qd = 0.5 * np.array([-qx * wx - qy * wy - qz * wz, qw * wx + qy * wz - qz * wy,
                             qw * wy - qx * wz + qz * wx, qw * wz + qx * wy - qy * wx])
        wd = (tau + torque - np.cross(w, self.J * w)) / self.J
        return np.concatenate([v, qd, acc, wd, (cmd - rpm) / self.tau])

    def step(self, s: np.ndarray, action: np.ndarray, force: np.ndarray, torque: np.ndarray) -> np.ndarray:
        a = np.clip(action, -1, 1)
        cmd = (a + 1) / 2 * (self.rpm_max - self.rpm_min) + self.rpm_min
        dt = self.dt
        k1 = self.deriv(s, cmd, force, torque)
        k2 = self.deriv(s + dt / 2 * k1, cmd, force, torque)
        k3 = self.deriv(s + dt / 2 * k2, cmd, force, torque)
        k4 = self.deriv(s + dt * k3, cmd, force, torque)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        s[3:7] /= np.linalg.norm(s[3:7])
        s[13:17] = np.clip(s[13:17], self.rpm_min, self.rpm_max)
        self.history = np.roll(self.history, -1, axis=0)
        self.history[-1] = a
        return s

    def observe(self, s: np.ndarray, target: np.ndarray) -> np.ndarray:
        parts = {"position": s[0:3] - target, "rotation_matrix": _rotmat(s[3:7]).reshape(-1), "quaternion": s[3:7],
                 "linear_velocity": s[7:10], "angular_velocity": s[10:13], "action_history": self.history.reshape(-1)}
        return np.concatenate([parts[c["name"]] for c in self.spec["observation"]]).astype(np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.sess.run(["action"], {"obs": obs[None]})[0][0].astype(np.float64)
