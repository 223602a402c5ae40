"""Franka Panda kinematics from Franka's published (Craig / modified) DH table, numpy only, batched.

Per joint i: ``T_i = RotX(alpha_i) . TransX(a_i) . RotZ(q_i) . TransZ(d_i)``; the flange row has q = 0.
The same table generates the MJCF (:mod:`sim.arm.mjcf`), so the simulator, the IK and the deploy runtime
share one source of truth; the tests check it against MuJoCo and an independent 4x4-matrix product.

This module must stay torch-free: the deploy runtime imports it through :mod:`sim.arm.ik`.
"""

from __future__ import annotations

import numpy as np

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


def _rot_z(q: np.ndarray) -> np.ndarray:
    c, s = np.cos(q), np.sin(q)
    r = np.zeros(q.shape + (3, 3))
    r[..., 0, 0], r[..., 0, 1], r[..., 1, 0], r[..., 1, 1], r[..., 2, 2] = c, -s, s, c, 1.0
    return r


def joint_frames(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``[N, 8, 3]`` and rotations ``[N, 8, 3, 3]`` of joint frames 1..7 and the flange."""
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    if q.shape[-1] != 7:
        raise ValueError(f"forward kinematics expects joint positions [N, 7], got shape {q.shape}")
    n = q.shape[0]
    pos = np.zeros((n, 3))
    rot = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    rz = _rot_z(q)
    positions, rotations = [], []
    for i, (p_off, r_off) in enumerate(_OFFSETS):
        pos = pos + rot @ p_off
        rot = rot @ r_off
        if i < 7:
            rot = rot @ rz[:, i]
        positions.append(pos)
        rotations.append(rot)
    return np.stack(positions, axis=1), np.stack(rotations, axis=1)


def forward_kinematics(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flange position ``[N, 3]`` and rotation ``[N, 3, 3]`` (flange frame of Franka's DH table) for ``q [N, 7]``."""
    pos, rot = joint_frames(q)
    return pos[:, 7], rot[:, 7]


def tcp_pose(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool centre point position ``[N, 3]`` and hand rotation ``[N, 3, 3]`` (hand frame: flange yawed -45 deg)."""
    pos, rot = forward_kinematics(q)
    hand_rot = rot @ _rot_z(np.array(HAND_YAW))
    return pos + rot[:, :, 2] * TCP_OFFSET, hand_rot


def tcp_jacobian(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TCP position ``[N, 3]``, hand rotation ``[N, 3, 3]`` and geometric Jacobian ``[N, 6, 7]`` (linear; angular)."""
    pos, rot = joint_frames(q)
    tcp = pos[:, 7] + rot[:, 7, :, 2] * TCP_OFFSET
    axes = rot[:, :7, :, 2]  # joint i rotates about z of its own frame
    jac = np.empty((pos.shape[0], 6, 7))
    jac[:, :3] = np.cross(axes, tcp[:, None, :] - pos[:, :7]).transpose(0, 2, 1)
    jac[:, 3:] = axes.transpose(0, 2, 1)
    return tcp, rot[:, 7] @ _rot_z(np.array(HAND_YAW)), jac
