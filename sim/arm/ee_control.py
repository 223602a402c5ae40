"""End-effector delta actions -> joint position targets, numpy only (shared by the sim and the deploy runtime).

The controller keeps a commanded TCP pose (position + yaw of a downward-pointing gripper) that each action
moves by ``a * scale``; the pose is clipped to a workspace box and to ``max_lead`` of the measured TCP (no
wind-up while in contact), solved by :func:`sim.arm.ik.solve_ik` warm-started from the previous joint target,
and the joint step is limited by the Panda's velocity limits. Where the IK cannot reach the commanded pose the
controller keeps the closest joint-limited pose and re-anchors its commanded pose there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.arm.ik import down_rotation, hand_yaw, solve_ik
from sim.arm.kinematics import QD_LIMIT, tcp_pose


@dataclass
class EeDeltaLimits:
    """Scales and bounds of the ``ee_delta`` action (the values ``policy.json`` carries)."""

    pos_scale: float = 0.02
    yaw_scale: float = 0.1
    max_lead: float = 0.04
    workspace_low: tuple[float, float, float] = (0.25, -0.45, 0.0)
    workspace_high: tuple[float, float, float] = (0.8, 0.45, 0.6)
    yaw_range: tuple[float, float] = (-2.0, 2.0)
    ik_iterations: int = 10


@dataclass
class EeDeltaController:
    """Batched ``ee_delta`` controller; call :meth:`reset` with the measured joints before the first step."""

    limits: EeDeltaLimits
    control_dt: float
    q_target: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    pos_target: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    yaw_target: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def reset(self, q: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Anchor the commanded pose at the joints ``q`` (all rows, or the given ``rows``)."""
        q = np.atleast_2d(np.asarray(q, dtype=np.float64))
        pos, rot = tcp_pose(q)
        if rows is None:
            self.q_target, self.pos_target, self.yaw_target = q.copy(), pos, hand_yaw(rot)
        else:
            self.q_target[rows], self.pos_target[rows], self.yaw_target[rows] = q, pos, hand_yaw(rot)

    def step(self, q_measured: np.ndarray, delta: np.ndarray, yaw_delta: np.ndarray | None = None) -> dict:
        """Move the commanded pose by ``delta [N, 3]`` (in [-1, 1], scaled) and return joint targets.

        Returns a dict with ``q_target [N, 7]`` and per-row counters ``unreached`` (IK refused the pose) and
        ``rate_limited`` (a joint hit its velocity limit).
        """
        lim = self.limits
        pos = self.pos_target + np.asarray(delta, dtype=np.float64) * lim.pos_scale
        pos = np.clip(pos, lim.workspace_low, lim.workspace_high)
        tcp, _ = tcp_pose(q_measured)
        lead = pos - tcp
        norm = np.linalg.norm(lead, axis=1, keepdims=True)
        pos = tcp + lead * np.minimum(1.0, lim.max_lead / np.maximum(norm, 1e-12))
        yaw = self.yaw_target
        if yaw_delta is not None:
            yaw = np.clip(yaw + np.asarray(yaw_delta, dtype=np.float64) * lim.yaw_scale, *lim.yaw_range)
        res = solve_ik(self.q_target, pos, down_rotation(yaw), max_iter=lim.ik_iterations)
        max_dq = QD_LIMIT * self.control_dt
        dq = res.q - self.q_target
        limited = np.any(np.abs(dq) > max_dq, axis=1)
        q_new = self.q_target + np.clip(dq, -max_dq, max_dq)
        moved = ~res.reached | limited
        self.q_target = q_new
        self.pos_target, self.yaw_target = pos, yaw
        if moved.any():
            # Re-anchor where the target was not reached exactly so that the commanded pose never runs away.
            p, r = tcp_pose(q_new[moved])
            self.pos_target[moved], self.yaw_target[moved] = p, hand_yaw(r)
        return {"q_target": q_new, "unreached": ~res.reached, "rate_limited": limited}
