"""Rotation helpers for the quadrotor profiles (pure Python, no ROS): quaternions, frames, rates from attitude.

Conventions: quaternions are ``(w, x, y, z)`` and map body to world; rotation matrices are body-to-world,
row-major (the simulator's ``rotation_matrix`` observation); angular velocity is in the body frame (rad/s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Quat = tuple[float, float, float, float]
NAN3 = [math.nan, math.nan, math.nan]


def quat_to_rotmat(w: float, x: float, y: float, z: float) -> list[float]:
    """Body-to-world rotation matrix, row-major, from a unit quaternion (same formula as the simulator)."""
    return [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]


def rotate(r: Sequence[float], v: Sequence[float]) -> list[float]:
    """``R v`` for a row-major 3x3 ``r`` (body -> world for a body-to-world ``R``)."""
    return [r[0] * v[0] + r[1] * v[1] + r[2] * v[2], r[3] * v[0] + r[4] * v[1] + r[5] * v[2],
            r[6] * v[0] + r[7] * v[1] + r[8] * v[2]]


def rotate_t(r: Sequence[float], v: Sequence[float]) -> list[float]:
    """``R^T v`` for a row-major 3x3 ``r`` (world -> body for a body-to-world ``R``)."""
    return [r[0] * v[0] + r[3] * v[1] + r[6] * v[2], r[1] * v[0] + r[4] * v[1] + r[7] * v[2],
            r[2] * v[0] + r[5] * v[1] + r[8] * v[2]]


def flip_pitch(w: float, x: float, y: float, z: float) -> Quat:
    """The quaternion with the same roll and yaw (ZYX Euler) and the opposite pitch."""
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = -math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy)


def body_rate(q0: Quat, q1: Quat, dt: float) -> list[float]:
    """Constant body angular velocity that turns ``q0`` into ``q1`` in ``dt`` seconds (``q1 = q0 * exp(w dt/2)``)."""
    w0, x0, y0, z0 = q0
    w1, x1, y1, z1 = q1
    # d = conj(q0) * q1: the rotation from the old to the new body frame, expressed in the old body frame
    dw = w0 * w1 + x0 * x1 + y0 * y1 + z0 * z1
    dx = w0 * x1 - x0 * w1 - y0 * z1 + z0 * y1
    dy = w0 * y1 + x0 * z1 - y0 * w1 - z0 * x1
    dz = w0 * z1 - x0 * y1 + y0 * x1 - z0 * w1
    if dw < 0:  # q and -q are the same rotation: take the short way
        dw, dx, dy, dz = -dw, -dx, -dy, -dz
    s = math.sqrt(dx * dx + dy * dy + dz * dz)
    k = 2.0 * math.atan2(s, dw) / (s * dt) if s > 1e-12 else 2.0 / dt
    return [k * dx, k * dy, k * dz]


class RateFromAttitude:
    """Body angular velocity from successive stamped orientations: finite difference, first-order low-pass.

    ``time_constant_s`` is the low-pass time constant (it lags by about that much). The first sample of a stream,
    or one after a gap longer than ``max_gap_s``, gives NaN (the control step stays safe until the next one).
    """

    def __init__(self, time_constant_s: float, max_gap_s: float = 0.5) -> None:
        self.tau, self.max_gap = time_constant_s, max_gap_s
        self._last: tuple[int, Quat] | None = None
        self.rate = list(NAN3)

    def update(self, stamp_ns: int, quat: Quat) -> list[float]:
        """Add a sample; returns the current estimate (NaN when there is none)."""
        prev, self._last = self._last, (stamp_ns, quat)
        if not all(math.isfinite(v) for v in quat):
            self._last, self.rate = None, list(NAN3)
            return self.rate
        dt = (stamp_ns - prev[0]) * 1e-9 if prev is not None else math.inf
        if dt > self.max_gap or dt <= 0:
            self.rate = list(NAN3)
            return self.rate
        raw = body_rate(prev[1], quat, dt)
        if not all(math.isfinite(v) for v in self.rate):
            self.rate = raw
        else:
            k = dt / (self.tau + dt)
            self.rate = [v + k * (r - v) for v, r in zip(self.rate, raw, strict=True)]
        return self.rate
