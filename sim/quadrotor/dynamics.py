"""Quadrotor rigid-body dynamics with first-order motors, integrated with RK4 (the plain-torch reference).

State layout (``[N, 17]``): position (3, world) | quaternion w, x, y, z (4, body-to-world) |
linear velocity (3, world) | angular velocity (3, body) | rotor speeds (4, RPM).
"""

from __future__ import annotations

import torch

from sim.quadrotor.params import ParamTensors, QuadrotorParams

STATE_DIM = 17
POS, QUAT, VEL, OMEGA, RPM = slice(0, 3), slice(3, 7), slice(7, 10), slice(10, 13), slice(13, 17)


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` (body-to-world) from unit quaternions ``[..., 4]`` (w, x, y, z)."""
    w, x, y, z = q.unbind(-1)
    r = torch.stack(
        (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ),
        dim=-1,
    )
    return r.reshape(*q.shape[:-1], 3, 3)


def action_to_rpm(action: torch.Tensor, rpm_min: float, rpm_max: float) -> torch.Tensor:
    """Map normalised actions in [-1, 1] (clipped) to commanded rotor speeds."""
    return (action.clamp(-1.0, 1.0) + 1.0) * (0.5 * (rpm_max - rpm_min)) + rpm_min


def rotor_speed_for_thrust(thrust: torch.Tensor, kq: torch.Tensor, kl: torch.Tensor | None = None) -> torch.Tensor:
    """Rotor speed ``w >= 0`` at which one rotor makes ``thrust``: the root of ``kq w^2 + kl w = thrust``
    (``kl`` None: no linear term)."""
    if kl is None:
        return torch.sqrt(thrust / kq)
    return (torch.sqrt(kl * kl + 4.0 * kq * thrust) - kl) / (2.0 * kq)


def hover_rpm(p: ParamTensors) -> torch.Tensor:
    """``[N, 1]`` rotor speed at which each env's four rotors carry its weight (``k_f w^2 + k_lin w = m |g| / 4``),
    kept within its idle floor and top speed."""
    w = rotor_speed_for_thrust(p.mass * p.gravity.norm() / 4.0, p.thrust_coefficient, p.thrust_linear)
    lo, hi = (torch.as_tensor(x, dtype=w.dtype, device=w.device) for x in (p.rpm_min, p.rpm_max))
    return torch.minimum(torch.maximum(w, lo), hi)


def state_derivative(state: torch.Tensor, rpm_cmd: torch.Tensor, p: ParamTensors,
                     force: torch.Tensor | None = None, torque: torch.Tensor | None = None) -> torch.Tensor:
    """Time derivative of the full state for constant commanded RPM and external force/torque.

    ``force`` is a world-frame disturbance force (N), ``torque`` a body-frame disturbance torque (N m).
    """
    q = state[:, QUAT]
    v = state[:, VEL]
    w = state[:, OMEGA]
    rpm = state[:, RPM]

    f = p.thrust_coefficient * rpm * rpm  # [N, 4] rotor thrusts along body +z
    if p.thrust_linear is not None:
        f = f + p.thrust_linear * rpm
    rx, ry = p.rotor_positions[..., 0], p.rotor_positions[..., 1]
    # r_i x (0, 0, f_i) = (r_y f, -r_x f, 0); yaw reaction torque k_m * sign_i * f_i
    tau = torch.stack(((f * ry).sum(-1), -(f * rx).sum(-1), (f * p.yaw_torque).sum(-1)), dim=-1)
    if torque is not None:
        tau = tau + torque

    qw, qx, qy, qz = q.unbind(-1)
    thrust = f.sum(-1)
    # world acceleration = R e_z * T / m + g (+ F / m); R e_z is the third column of R(q)
    acc = torch.stack((2 * (qx * qz + qw * qy), 2 * (qy * qz - qw * qx), 1 - 2 * (qx * qx + qy * qy)), dim=-1)
    acc = acc * (thrust.unsqueeze(-1) / p.mass) + p.gravity
    if force is not None:
        acc = acc + force / p.mass

    wx, wy, wz = w.unbind(-1)
    q_dot = 0.5 * torch.stack(
        (-qx * wx - qy * wy - qz * wz, qw * wx + qy * wz - qz * wy, qw * wy - qx * wz + qz * wx,
         qw * wz + qx * wy - qy * wx),
        dim=-1,
    )
    jw = p.inertia * w
    w_dot = (tau - torch.linalg.cross(w, jw, dim=-1)) / p.inertia
    if p.motor_time_constant_down is None:
        rpm_dot = (rpm_cmd - rpm) / p.motor_time_constant
    else:  # asymmetric motors: spin-up and spin-down time constants differ
        tau = torch.where(rpm_cmd >= rpm, p.motor_time_constant, p.motor_time_constant_down)
        rpm_dot = (rpm_cmd - rpm) / tau
    return torch.cat((v, q_dot, acc, w_dot, rpm_dot), dim=-1)


def rk4_step(state: torch.Tensor, rpm_cmd: torch.Tensor, p: ParamTensors, dt: float,
             force: torch.Tensor | None = None, torque: torch.Tensor | None = None) -> torch.Tensor:
    """One RK4 step over the full state, then renormalise the quaternion and clamp rotor speeds."""
    k1 = state_derivative(state, rpm_cmd, p, force, torque)
    k2 = state_derivative(state + (0.5 * dt) * k1, rpm_cmd, p, force, torque)
    k3 = state_derivative(state + (0.5 * dt) * k2, rpm_cmd, p, force, torque)
    k4 = state_derivative(state + dt * k3, rpm_cmd, p, force, torque)
    nxt = state + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    q = nxt[:, QUAT]
    q = q / q.norm(dim=-1, keepdim=True)
    rpm = nxt[:, RPM].clamp(p.rpm_min, p.rpm_max)  # numbers, or [N, 1] tensors (both) per env
    return torch.cat((nxt[:, :3], q, nxt[:, 7:13], rpm), dim=-1)


def step_dynamics(state: torch.Tensor, action: torch.Tensor, params: QuadrotorParams | ParamTensors,
                  dt: float = 0.01, force: torch.Tensor | None = None,
                  torque: torch.Tensor | None = None) -> torch.Tensor:
    """Pure dynamics step: ``state`` ``[N, 17]``, ``action`` ``[N, 4]`` in [-1, 1] -> next state ``[N, 17]``.

    ``params`` is either a :class:`QuadrotorParams` (one frame for all rows) or batched
    :class:`ParamTensors`. Works in the dtype and on the device of ``state``. Meant for system
    identification, MPC and external checks; the environment uses the same code.
    """
    if state.ndim != 2 or state.shape[1] != STATE_DIM:
        raise ValueError(f"state must be [N, {STATE_DIM}], got {list(state.shape)}")
    if action.shape != (state.shape[0], 4):
        raise ValueError(f"action must be [N, 4] matching state, got {list(action.shape)}")
    if isinstance(params, QuadrotorParams):
        params = params.tensors(state.shape[0], state.device, state.dtype)
    rpm_cmd = action_to_rpm(action.to(state.dtype), params.rpm_min, params.rpm_max)
    return rk4_step(state, rpm_cmd, params, dt, force, torque)
