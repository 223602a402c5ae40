"""Batched damped-least-squares inverse kinematics of the Panda's tool centre point, numpy only.

ONE module shared by the simulator (``ee_delta`` actions) and the torch-free deploy runtime, so what runs on
the robot is what ran in simulation. Never import torch here (``tests/sim/arm/test_ik.py`` checks it).

:func:`solve_ik` returns the best joint-limited solution for every row plus a ``reached`` mask: a row is
reached when the TCP is within ``pos_tol`` (default 1 mm) and ``rot_tol`` of its target. Unreachable targets
are refused cleanly: ``reached`` is False, nothing raises, and the returned ``q`` is finite and inside the
joint limits (the closest pose found), so a caller can hold, clip or fault as its safety policy says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.arm.kinematics import Q_LOWER, Q_READY, Q_UPPER, tcp_jacobian

#: Hand rotation of a gripper pointing straight down with zero yaw (hand x = world x, hand z = world -z).
DOWN = np.diag([1.0, -1.0, -1.0])
#: Shoulder centre and the longest shoulder-to-TCP distance: targets beyond it are refused without iterating.
SHOULDER = np.array([0.0, 0.0, 0.333])
MAX_REACH = 0.316 + 0.384 + 0.0825 + 0.107 + 0.1034 + 0.088


@dataclass
class IKResult:
    """Result of :func:`solve_ik` (all arrays have a leading batch dimension)."""

    q: np.ndarray
    """Joint positions ``[N, 7]`` inside the limits: the solution, or the closest pose found where not reached."""
    reached: np.ndarray
    """``[N]`` bool: position error <= pos_tol and rotation error <= rot_tol."""
    pos_error: np.ndarray
    """``[N]`` final TCP position error (m)."""
    rot_error: np.ndarray
    """``[N]`` final rotation error (rad)."""


def down_rotation(yaw: np.ndarray) -> np.ndarray:
    """Hand rotation ``[N, 3, 3]`` of a gripper pointing down, turned by ``yaw`` (rad) about world z."""
    yaw = np.atleast_1d(np.asarray(yaw, dtype=np.float64))
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.zeros(yaw.shape + (3, 3))
    rz[..., 0, 0], rz[..., 0, 1], rz[..., 1, 0], rz[..., 1, 1], rz[..., 2, 2] = c, -s, s, c, 1.0
    return rz @ DOWN


def hand_yaw(rot: np.ndarray) -> np.ndarray:
    """Yaw (rad) of the hand's x axis projected on the world xy plane, for rotations ``[N, 3, 3]``."""
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


def rotation_error(rot: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Axis-angle vector ``[N, 3]`` (world frame) that turns ``rot`` into ``target``."""
    r = target @ np.swapaxes(rot, -1, -2)
    vec = 0.5 * np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = np.linalg.norm(vec, axis=-1)
    cos = np.clip(0.5 * (np.trace(r, axis1=-2, axis2=-1) - 1.0), -1.0, 1.0)
    angle = np.arctan2(sin, cos)
    scale = np.where(sin > 1e-9, angle / np.maximum(sin, 1e-12), 1.0)
    out = vec * scale[..., None]
    # Near 180 deg the antisymmetric part vanishes: take the axis from the symmetric part instead.
    flip = (cos < -0.99) & (sin < 1e-3)
    if np.any(flip):
        sym = 0.5 * (r[flip] + np.eye(3))
        axis = sym[np.arange(sym.shape[0]), np.argmax(np.diagonal(sym, axis1=-2, axis2=-1), -1)]
        out[flip] = np.pi * axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    return out


def solve_ik(
    q_init: np.ndarray,
    target_pos: np.ndarray,
    target_rot: np.ndarray | None = None,
    *,
    max_iter: int = 50,
    pos_tol: float = 1e-3,
    rot_tol: float = 1e-2,
    damping: float = 0.05,
    rot_weight: float = 0.5,
    max_step: float = 0.3,
    nullspace_gain: float = 0.1,
    q_rest: np.ndarray = Q_READY,
) -> IKResult:
    """Joint positions that put the TCP at ``target_pos [N, 3]`` with hand rotation ``target_rot [N, 3, 3]``.

    Iterates ``dq = J^T (J J^T + damping^2 I)^-1 e`` (6-D error, rotation weighted by ``rot_weight`` m/rad)
    from ``q_init [N, 7]``, with a null-space pull towards ``q_rest`` and joint-limit clipping. Without
    ``target_rot`` the gripper points down with the yaw it has at ``q_init``. Rows stop moving once they
    are well inside the tolerances; the loop ends when every row has.
    """
    q = np.array(np.atleast_2d(q_init), dtype=np.float64)
    pos_t = np.atleast_2d(np.asarray(target_pos, dtype=np.float64))
    n = q.shape[0]
    if q.shape != (n, 7) or pos_t.shape != (n, 3):
        raise ValueError(f"solve_ik expects q_init [N, 7] and target_pos [N, 3], got {q.shape} and {pos_t.shape}")
    if target_rot is None:
        _, rot0, _ = tcp_jacobian(q)
        target_rot = down_rotation(hand_yaw(rot0))
    rot_t = np.asarray(target_rot, dtype=np.float64).reshape(n, 3, 3)
    finite = np.isfinite(pos_t).all(1) & np.isfinite(rot_t).all((1, 2)) & np.isfinite(q).all(1)
    q = np.where(finite[:, None], np.clip(q, Q_LOWER, Q_UPPER), q_rest)
    pos_t = np.where(finite[:, None], pos_t, 0.0)
    rot_t = np.where(finite[:, None, None], rot_t, np.eye(3))
    in_reach = finite & (np.linalg.norm(pos_t - SHOULDER, axis=1) <= MAX_REACH)
    active = in_reach.copy()
    eye6 = np.eye(6) * damping**2
    eye6_ns = np.eye(6) * 1e-6
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        tcp, rot, jac = tcp_jacobian(q[idx])
        err = np.concatenate([pos_t[idx] - tcp, rot_weight * rotation_error(rot, rot_t[idx])], axis=1)
        done = (np.linalg.norm(err[:, :3], axis=1) < 0.1 * pos_tol) & (
            np.linalg.norm(err[:, 3:], axis=1) < 0.1 * rot_tol * rot_weight
        )
        jt = np.swapaxes(jac, 1, 2)
        jjt = jac @ jt + eye6
        dq = (jt @ np.linalg.solve(jjt, err[..., None]))[..., 0]
        # Null-space pull (I - J+ J) towards the rest posture keeps the elbow away from the limits.
        # The projection uses (almost) no damping so the pull does not leak into the task error.
        pull = nullspace_gain * (q_rest - q[idx])
        pull = pull - (jt @ np.linalg.solve(jac @ jt + eye6_ns, (jac @ pull[..., None])))[..., 0]
        dq = dq + pull
        norm = np.linalg.norm(dq, axis=1, keepdims=True)
        dq = dq * np.minimum(1.0, max_step / np.maximum(norm, 1e-12))
        dq[done] = 0.0
        q[idx] = np.clip(q[idx] + dq, Q_LOWER, Q_UPPER)
        active[idx[done]] = False
    tcp, rot, _ = tcp_jacobian(q)
    pos_err = np.linalg.norm(pos_t - tcp, axis=1)
    rot_err = np.linalg.norm(rotation_error(rot, rot_t), axis=1)
    reached = in_reach & (pos_err <= pos_tol) & (rot_err <= rot_tol)
    pos_err = np.where(finite, pos_err, np.inf)
    rot_err = np.where(finite, rot_err, np.inf)
    return IKResult(q=q, reached=reached, pos_error=pos_err, rot_error=rot_err)
