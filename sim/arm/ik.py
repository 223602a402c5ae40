"""Batched damped-least-squares inverse kinematics of the Panda's tool centre point (numpy + numba).

ONE module shared by the simulator (``ee_delta`` actions) and the torch-free deploy runtime, so what runs on
the robot is what ran in simulation. Never import torch here (``tests/sim/arm/test_ik.py`` checks it).

:func:`solve_ik` returns the best joint-limited solution for every row plus a ``reached`` mask: a row is
reached when the TCP is within ``pos_tol`` (default 1 mm) and ``rot_tol`` of its target. Unreachable targets
are refused cleanly: ``reached`` is False, nothing raises, and the returned ``q`` is finite and inside the
joint limits (the closest pose found), so a caller can hold, clip or fault as its safety policy says.

The solver is a numba kernel per arm (:func:`solve_row`, allocation-free, GIL released) so that the simulator
runs it per env inside its worker threads and the deploy runtime runs the very same code for one arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.arm.kinematics import Q_LOWER, Q_READY, Q_UPPER, frames_row, jacobian_row, tcp_pose, tcp_row

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


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _dot_rows(a: np.ndarray, i: int, b: np.ndarray, j: int) -> float:
    return a[i, 0] * b[j, 0] + a[i, 1] * b[j, 1] + a[i, 2] * b[j, 2]


@njit(cache=True, nogil=True, error_model="numpy")
def _rotation_error(rot: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """Axis-angle vector (world frame) that turns ``rot [3, 3]`` into ``target [3, 3]``."""
    r00, r01, r02 = _dot_rows(target, 0, rot, 0), _dot_rows(target, 0, rot, 1), _dot_rows(target, 0, rot, 2)
    r10, r11, r12 = _dot_rows(target, 1, rot, 0), _dot_rows(target, 1, rot, 1), _dot_rows(target, 1, rot, 2)
    r20, r21, r22 = _dot_rows(target, 2, rot, 0), _dot_rows(target, 2, rot, 1), _dot_rows(target, 2, rot, 2)
    vx, vy, vz = 0.5 * (r21 - r12), 0.5 * (r02 - r20), 0.5 * (r10 - r01)
    sin = np.sqrt(vx * vx + vy * vy + vz * vz)
    cos = min(1.0, max(-1.0, 0.5 * (r00 + r11 + r22 - 1.0)))
    if cos < -0.99 and sin < 1e-3:
        # Near 180 deg the antisymmetric part vanishes: take the axis from the symmetric part instead.
        if r00 >= r11 and r00 >= r22:
            ax, ay, az = 0.5 * r00 + 0.5, 0.5 * r01, 0.5 * r02
        elif r11 >= r22:
            ax, ay, az = 0.5 * r10, 0.5 * r11 + 0.5, 0.5 * r12
        else:
            ax, ay, az = 0.5 * r20, 0.5 * r21, 0.5 * r22 + 0.5
        s = np.pi / np.sqrt(ax * ax + ay * ay + az * az)
        return ax * s, ay * s, az * s
    scale = np.arctan2(sin, cos) / sin if sin > 1e-9 else 1.0
    return vx * scale, vy * scale, vz * scale


@njit(cache=True, nogil=True, error_model="numpy")
def _cholesky_solve(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Solve ``a x = b`` for a symmetric positive definite ``a [6, 6]`` (overwritten by its Cholesky factor)."""
    n = a.shape[0]
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d -= a[j, k] * a[j, k]
        d = np.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, n):
            v = a[i, j]
            for k in range(j):
                v -= a[i, k] * a[j, k]
            a[i, j] = v / d
    for i in range(n):
        v = b[i]
        for k in range(i):
            v -= a[i, k] * out[k]
        out[i] = v / a[i, i]
    for i in range(n - 1, -1, -1):
        v = out[i]
        for k in range(i + 1, n):
            v -= a[k, i] * out[k]
        out[i] = v / a[i, i]


@njit(cache=True, nogil=True, error_model="numpy")
def solve_row(q, pos_t, rot_t, max_iter, pos_tol, rot_tol, damping, rot_weight, max_step, nullspace_gain, q_rest,
              work):
    """DLS IK of one arm, in place on ``q [7]`` (see :func:`solve_ik`); returns ``(reached, pos_err, rot_err)``.

    ``work`` is scratch from :func:`ik_workspace`. Allocation-free, so worker threads can call it per env with
    the GIL released.
    """
    pos, rot, tcp, hand, jac, a, e, y, dq, pull, jp = work
    finite = np.isfinite(q).all() and np.isfinite(pos_t).all() and np.isfinite(rot_t).all()
    if not finite:
        q[:] = q_rest
        return False, np.inf, np.inf
    for j in range(7):
        q[j] = min(Q_UPPER[j], max(Q_LOWER[j], q[j]))
    dx, dy, dz = pos_t[0] - SHOULDER[0], pos_t[1] - SHOULDER[1], pos_t[2] - SHOULDER[2]
    in_reach = np.sqrt(dx * dx + dy * dy + dz * dz) <= MAX_REACH
    it = 0
    while True:
        frames_row(q, pos, rot)
        tcp_row(pos, rot, tcp, hand)
        ex, ey, ez = _rotation_error(hand, rot_t)
        e[0], e[1], e[2] = pos_t[0] - tcp[0], pos_t[1] - tcp[1], pos_t[2] - tcp[2]
        e[3], e[4], e[5] = rot_weight * ex, rot_weight * ey, rot_weight * ez
        pos_err = np.sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2])
        rot_err = np.sqrt(ex * ex + ey * ey + ez * ez)
        if not in_reach or it == max_iter or (pos_err < 0.1 * pos_tol and rot_err < 0.1 * rot_tol):
            break
        it += 1
        jacobian_row(pos, rot, tcp, jac)
        # dq = J^T (J J^T + damping^2 I)^-1 e
        for r in range(6):
            for c in range(r + 1):
                v = 0.0
                for k in range(7):
                    v += jac[r, k] * jac[c, k]
                a[r, c] = a[c, r] = v
        for r in range(6):
            a[r, r] += damping * damping
        _cholesky_solve(a, e, y)
        # Null-space pull (I - J+ J) towards the rest posture keeps the elbow away from the limits; the
        # projection uses (almost) no damping so that the pull does not leak into the task error.
        for k in range(7):
            dq[k] = 0.0
            pull[k] = nullspace_gain * (q_rest[k] - q[k])
        for r in range(6):
            v = 0.0
            for k in range(7):
                dq[k] += jac[r, k] * y[r]
                v += jac[r, k] * pull[k]
            jp[r] = v
        for r in range(6):
            for c in range(r + 1):
                v = 0.0
                for k in range(7):
                    v += jac[r, k] * jac[c, k]
                a[r, c] = a[c, r] = v
            a[r, r] += 1e-6
        _cholesky_solve(a, jp, y)
        norm = 0.0
        for k in range(7):
            v = pull[k]
            for r in range(6):
                v -= jac[r, k] * y[r]
            dq[k] += v
            norm += dq[k] * dq[k]
        norm = np.sqrt(norm)
        scale = min(1.0, max_step / max(norm, 1e-12))
        for k in range(7):
            q[k] = min(Q_UPPER[k], max(Q_LOWER[k], q[k] + dq[k] * scale))
    reached = in_reach and pos_err <= pos_tol and rot_err <= rot_tol
    return reached, pos_err, rot_err


def ik_workspace() -> tuple:
    """Scratch arrays of :func:`solve_row` (one set per thread)."""
    return (np.empty((8, 3)), np.empty((8, 3, 3)), np.empty(3), np.empty((3, 3)), np.empty((6, 7)),
            np.empty((6, 6)), np.empty(6), np.empty(6), np.empty(7), np.empty(7), np.empty(6))


@njit(cache=True, nogil=True, error_model="numpy")
def _solve_batch(q, pos_t, rot_t, max_iter, pos_tol, rot_tol, damping, rot_weight, max_step, nullspace_gain, q_rest,
                 work, reached, pos_err, rot_err):
    for i in range(q.shape[0]):
        reached[i], pos_err[i], rot_err[i] = solve_row(q[i], pos_t[i], rot_t[i], max_iter, pos_tol, rot_tol, damping,
                                                       rot_weight, max_step, nullspace_gain, q_rest, work)


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
    from ``q_init [N, 7]``, with a null-space pull towards ``q_rest`` and joint-limit clipping, at most
    ``max_iter`` times per row. Without ``target_rot`` the gripper points down with the yaw it has at
    ``q_init``. A row stops once it is well inside the tolerances (a tenth of them).
    """
    q = np.array(np.atleast_2d(q_init), dtype=np.float64)
    pos_t = np.ascontiguousarray(np.atleast_2d(np.asarray(target_pos, dtype=np.float64)))
    n = q.shape[0]
    if q.shape != (n, 7) or pos_t.shape != (n, 3):
        raise ValueError(f"solve_ik expects q_init [N, 7] and target_pos [N, 3], got {q.shape} and {pos_t.shape}")
    if target_rot is None:
        _, rot0 = tcp_pose(np.where(np.isfinite(q), q, 0.0))
        target_rot = down_rotation(hand_yaw(rot0))
    rot_t = np.ascontiguousarray(np.asarray(target_rot, dtype=np.float64).reshape(n, 3, 3))
    reached, pos_err, rot_err = np.zeros(n, dtype=np.bool_), np.empty(n), np.empty(n)
    _solve_batch(q, pos_t, rot_t, int(max_iter), pos_tol, rot_tol, damping, rot_weight, max_step, nullspace_gain,
                 np.asarray(q_rest, dtype=np.float64), ik_workspace(), reached, pos_err, rot_err)
    return IKResult(q=q, reached=reached, pos_error=pos_err, rot_error=rot_err)
