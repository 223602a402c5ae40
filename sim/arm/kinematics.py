"""Franka Panda kinematics from Franka's published (Craig / modified) DH table, numpy only, batched.

Per joint i: ``T_i = RotX(alpha_i) . TransX(a_i) . RotZ(q_i) . TransZ(d_i)``; the flange row has q = 0.
The same table generates the MJCF (:mod:`sim.arm.mjcf`), so the simulator, the IK and the deploy runtime
share one source of truth; the tests check it against MuJoCo and an independent 4x4-matrix product.

The per-arm functions (``*_row``) are numba kernels without allocations, so the IK (:mod:`sim.arm.ik`) can run
them per env inside the simulator's worker threads with the GIL released; the batched numpy-facing functions
call them row by row. This module must stay torch-free: the deploy runtime imports it through :mod:`sim.arm.ik`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: (a, d, alpha) per joint, then the flange (m, m, rad).
DH_TABLE = np.array(
    [
        [0.0, 0.333, 0.0],
        [0.0, 0.0, -np.pi / 2],
        [0.0, 0.316, np.pi / 2],
        [0.0825, 0.0, np.pi / 2],
        [-0.0825, 0.384, -np.pi / 2],
        [0.0, 0.0, np.pi / 2],
        [0.088, 0.0, np.pi / 2],
    ]
)
FLANGE_D = 0.107
#: Distance from the flange to the Franka hand's tool centre point (between the fingertips), along flange z.
TCP_OFFSET = 0.1034
#: The hand is mounted rotated by -45 deg about the flange z axis.
HAND_YAW = -np.pi / 4

JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
Q_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
Q_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
QD_LIMIT = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
TAU_LIMIT = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
Q_READY = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])
#: Each finger opens 0..0.04 m, so the gripper width is 0..0.08 m.
FINGER_MAX = 0.04


def joint_frame_offsets() -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed part of each DH row as (position, rotation) of the joint frame in its parent (q = 0).

    ``RotX(alpha) TransX(a) RotZ(q) TransZ(d) = Trans(RotX(alpha) (a, 0, d)) RotX(alpha) RotZ(q)``, because
    RotZ and TransZ commute; the MJCF bodies use exactly this (position, RotX(alpha)) and a z hinge.
    """
    out = []
    for a, d, alpha in list(DH_TABLE) + [np.array([0.0, FLANGE_D, 0.0])]:
        ca, sa = np.cos(alpha), np.sin(alpha)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, ca, -sa], [0.0, sa, ca]])
        out.append((rot @ np.array([a, 0.0, d]), rot))
    return out


_OFFSETS = joint_frame_offsets()


_OFF_P = np.array([p for p, _ in _OFFSETS])  # [8, 3]
_OFF_R = np.array([r for _, r in _OFFSETS])  # [8, 3, 3]
_HAND_C, _HAND_S = float(np.cos(HAND_YAW)), float(np.sin(HAND_YAW))


@njit(cache=True, nogil=True, error_model="numpy")
def frames_row(q: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> None:
    """Joint frames of one arm: writes positions ``pos [8, 3]`` and rotations ``rot [8, 3, 3]`` for ``q [7]``."""
    p0 = p1 = p2 = 0.0
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0
    for i in range(8):
        o = _OFF_P[i]
        p0 += r00 * o[0] + r01 * o[1] + r02 * o[2]
        p1 += r10 * o[0] + r11 * o[1] + r12 * o[2]
        p2 += r20 * o[0] + r21 * o[1] + r22 * o[2]
        a = _OFF_R[i]
        t00 = r00 * a[0, 0] + r01 * a[1, 0] + r02 * a[2, 0]
        t01 = r00 * a[0, 1] + r01 * a[1, 1] + r02 * a[2, 1]
        t02 = r00 * a[0, 2] + r01 * a[1, 2] + r02 * a[2, 2]
        t10 = r10 * a[0, 0] + r11 * a[1, 0] + r12 * a[2, 0]
        t11 = r10 * a[0, 1] + r11 * a[1, 1] + r12 * a[2, 1]
        t12 = r10 * a[0, 2] + r11 * a[1, 2] + r12 * a[2, 2]
        t20 = r20 * a[0, 0] + r21 * a[1, 0] + r22 * a[2, 0]
        t21 = r20 * a[0, 1] + r21 * a[1, 1] + r22 * a[2, 1]
        t22 = r20 * a[0, 2] + r21 * a[1, 2] + r22 * a[2, 2]
        if i < 7:  # times RotZ(q_i): columns 0 and 1 turn, column 2 stays
            c, s = np.cos(q[i]), np.sin(q[i])
            r00, r01 = t00 * c + t01 * s, t01 * c - t00 * s
            r10, r11 = t10 * c + t11 * s, t11 * c - t10 * s
            r20, r21 = t20 * c + t21 * s, t21 * c - t20 * s
        else:
            r00, r01, r10, r11, r20, r21 = t00, t01, t10, t11, t20, t21
        r02, r12, r22 = t02, t12, t22
        pos[i, 0], pos[i, 1], pos[i, 2] = p0, p1, p2
        rot[i, 0, 0], rot[i, 0, 1], rot[i, 0, 2] = r00, r01, r02
        rot[i, 1, 0], rot[i, 1, 1], rot[i, 1, 2] = r10, r11, r12
        rot[i, 2, 0], rot[i, 2, 1], rot[i, 2, 2] = r20, r21, r22


@njit(cache=True, nogil=True, error_model="numpy")
def tcp_row(pos: np.ndarray, rot: np.ndarray, tcp: np.ndarray, hand: np.ndarray) -> None:
    """TCP position ``tcp [3]`` and hand rotation ``hand [3, 3]`` from the frames of :func:`frames_row`."""
    for k in range(3):
        f0, f1, f2 = rot[7, k, 0], rot[7, k, 1], rot[7, k, 2]
        tcp[k] = pos[7, k] + f2 * TCP_OFFSET
        hand[k, 0] = f0 * _HAND_C + f1 * _HAND_S
        hand[k, 1] = f1 * _HAND_C - f0 * _HAND_S
        hand[k, 2] = f2


@njit(cache=True, nogil=True, error_model="numpy")
def jacobian_row(pos: np.ndarray, rot: np.ndarray, tcp: np.ndarray, jac: np.ndarray) -> None:
    """Geometric TCP Jacobian ``jac [6, 7]`` (linear; angular) from the frames and the TCP position."""
    for j in range(7):
        zx, zy, zz = rot[j, 0, 2], rot[j, 1, 2], rot[j, 2, 2]
        dx, dy, dz = tcp[0] - pos[j, 0], tcp[1] - pos[j, 1], tcp[2] - pos[j, 2]
        jac[0, j] = zy * dz - zz * dy
        jac[1, j] = zz * dx - zx * dz
        jac[2, j] = zx * dy - zy * dx
        jac[3, j], jac[4, j], jac[5, j] = zx, zy, zz


@njit(cache=True, nogil=True, error_model="numpy")
def _frames_batch(q, pos, rot):
    for i in range(q.shape[0]):
        frames_row(q[i], pos[i], rot[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _tcp_batch(q, tcp, hand, jac, with_jac):
    pos, rot = np.empty((8, 3)), np.empty((8, 3, 3))
    for i in range(q.shape[0]):
        frames_row(q[i], pos, rot)
        tcp_row(pos, rot, tcp[i], hand[i])
        if with_jac:
            jacobian_row(pos, rot, tcp[i], jac[i])


def _as_q(q: np.ndarray) -> np.ndarray:
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(q, dtype=np.float64)))
    if q.ndim != 2 or q.shape[-1] != 7:
        raise ValueError(f"forward kinematics expects joint positions [N, 7], got shape {q.shape}")
    return q


def joint_frames(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``[N, 8, 3]`` and rotations ``[N, 8, 3, 3]`` of joint frames 1..7 and the flange."""
    q = _as_q(q)
    pos, rot = np.empty((q.shape[0], 8, 3)), np.empty((q.shape[0], 8, 3, 3))
    _frames_batch(q, pos, rot)
    return pos, rot


def forward_kinematics(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flange position ``[N, 3]`` and rotation ``[N, 3, 3]`` (flange frame of Franka's DH table) for ``q [N, 7]``."""
    pos, rot = joint_frames(q)
    return pos[:, 7], rot[:, 7]


def tcp_pose(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool centre point position ``[N, 3]`` and hand rotation ``[N, 3, 3]`` (hand frame: flange yawed -45 deg)."""
    q = _as_q(q)
    n = q.shape[0]
    tcp, hand = np.empty((n, 3)), np.empty((n, 3, 3))
    _tcp_batch(q, tcp, hand, np.empty((0, 6, 7)), False)
    return tcp, hand


def tcp_jacobian(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TCP position ``[N, 3]``, hand rotation ``[N, 3, 3]`` and geometric Jacobian ``[N, 6, 7]`` (linear; angular)."""
    q = _as_q(q)
    n = q.shape[0]
    tcp, hand, jac = np.empty((n, 3)), np.empty((n, 3, 3)), np.empty((n, 6, 7))
    _tcp_batch(q, tcp, hand, jac, True)
    return tcp, hand, jac
