"""End-effector delta actions -> joint position targets, numpy + numba (shared by the sim and the deploy runtime).

The controller keeps a commanded TCP pose (position + yaw of a downward-pointing gripper) that each action
moves by ``a * scale``; the pose is clipped to a workspace box and to ``max_lead`` of the measured TCP (no
wind-up while in contact), solved by :func:`sim.arm.ik.solve_row` warm-started from the previous joint target,
and the joint step is limited by the Panda's velocity limits. Where the IK cannot reach the commanded pose the
controller keeps the closest joint-limited pose and re-anchors its commanded pose there.

One numba kernel does all of that per arm; :meth:`EeDeltaController.step_rows` runs it on a range of rows with
the GIL released, which is how the simulator's worker threads run the IK of their own chunk of envs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from sim.arm.ik import DOWN, ik_workspace, solve_row
from sim.arm.kinematics import Q_READY, QD_LIMIT, frames_row, tcp_pose, tcp_row


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


@njit(cache=True, nogil=True, error_model="numpy")
def _step_rows(lo, hi, q_meas, delta, yaw_delta, has_yaw, q_target, pos_target, yaw_target, prm, lo_ws, hi_ws,
               max_dq, work, unreached, limited):
    """The controller step for rows ``lo..hi`` (state arrays updated in place); see :class:`EeDeltaController`."""
    pos_scale, yaw_scale, max_lead, yaw_lo, yaw_hi, iters = prm[0], prm[1], prm[2], prm[3], prm[4], int(prm[5])
    fpos, frot, tcp, hand = work[0], work[1], work[2], work[3]
    p, q, rot_t = np.empty(3), np.empty(7), np.empty((3, 3))
    for i in range(lo, hi):
        frames_row(q_meas[i], fpos, frot)
        tcp_row(fpos, frot, tcp, hand)
        norm = 0.0
        for k in range(3):
            v = min(hi_ws[k], max(lo_ws[k], pos_target[i, k] + delta[i, k] * pos_scale))
            p[k] = v - tcp[k]
            norm += p[k] * p[k]
        s = min(1.0, max_lead / max(np.sqrt(norm), 1e-12))
        for k in range(3):
            p[k] = tcp[k] + p[k] * s
        yaw = yaw_target[i]
        if has_yaw:
            yaw = min(yaw_hi, max(yaw_lo, yaw + yaw_delta[i] * yaw_scale))
        c, sn = np.cos(yaw), np.sin(yaw)
        for r in range(3):  # RotZ(yaw) @ DOWN
            rot_t[0, r] = (c * DOWN[0, r] - sn * DOWN[1, r])
            rot_t[1, r] = (sn * DOWN[0, r] + c * DOWN[1, r])
            rot_t[2, r] = DOWN[2, r]
        q[:] = q_target[i]
        reached, _, _ = solve_row(q, p, rot_t, iters, 1e-3, 1e-2, 0.05, 0.5, 0.3, 0.1, Q_READY, work)
        lim = False
        for k in range(7):
            d = q[k] - q_target[i, k]
            if abs(d) > max_dq[k]:
                lim = True
                d = max_dq[k] if d > 0 else -max_dq[k]
            q_target[i, k] += d
        pos_target[i, 0], pos_target[i, 1], pos_target[i, 2] = p[0], p[1], p[2]
        yaw_target[i] = yaw
        if not reached or lim:
            # Re-anchor where the target was not reached exactly so that the commanded pose never runs away.
            frames_row(q_target[i], fpos, frot)
            tcp_row(fpos, frot, tcp, hand)
            pos_target[i, 0], pos_target[i, 1], pos_target[i, 2] = tcp[0], tcp[1], tcp[2]
            yaw_target[i] = np.arctan2(hand[1, 0], hand[0, 0])
        unreached[i] = not reached
        limited[i] = lim


@dataclass
class EeDeltaController:
    """Batched ``ee_delta`` controller; call :meth:`reset` with the measured joints before the first step."""

    limits: EeDeltaLimits
    control_dt: float
    q_target: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    pos_target: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    yaw_target: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        lim = self.limits
        self._prm = np.array([lim.pos_scale, lim.yaw_scale, lim.max_lead, *lim.yaw_range, lim.ik_iterations],
                             dtype=np.float64)
        self._ws_lo = np.asarray(lim.workspace_low, dtype=np.float64)
        self._ws_hi = np.asarray(lim.workspace_high, dtype=np.float64)
        self._max_dq = QD_LIMIT * self.control_dt

    def reset(self, q: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Anchor the commanded pose at the joints ``q`` (all rows, or the given ``rows``)."""
        q = np.atleast_2d(np.asarray(q, dtype=np.float64))
        pos, rot = tcp_pose(q)
        yaw = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
        if rows is None:
            self.q_target, self.pos_target, self.yaw_target = q.copy(), pos, yaw
        else:
            self.q_target[rows], self.pos_target[rows], self.yaw_target[rows] = q, pos, yaw

    def step_rows(self, lo: int, hi: int, q_measured: np.ndarray, delta: np.ndarray, yaw_delta: np.ndarray | None,
                  unreached: np.ndarray, rate_limited: np.ndarray, work: tuple | None = None) -> None:
        """:meth:`step` for rows ``lo..hi`` only, in place; flags go to ``unreached`` / ``rate_limited [N]``.

        Different row ranges may run concurrently in threads, each with its own ``work``
        (:func:`sim.arm.ik.ik_workspace`).
        """
        _step_rows(lo, hi, np.ascontiguousarray(q_measured, dtype=np.float64),
                   np.ascontiguousarray(delta, dtype=np.float64),
                   np.zeros(0) if yaw_delta is None else np.ascontiguousarray(yaw_delta, dtype=np.float64),
                   yaw_delta is not None, self.q_target, self.pos_target, self.yaw_target, self._prm, self._ws_lo,
                   self._ws_hi, self._max_dq, work if work is not None else ik_workspace(), unreached, rate_limited)

    def step(self, q_measured: np.ndarray, delta: np.ndarray, yaw_delta: np.ndarray | None = None) -> dict:
        """Move the commanded pose by ``delta [N, 3]`` (in [-1, 1], scaled) and return joint targets.

        Returns a dict with ``q_target [N, 7]`` and per-row flags ``unreached`` (IK refused the pose) and
        ``rate_limited`` (a joint hit its velocity limit).
        """
        n = len(self.q_target)
        unreached, limited = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
        self.step_rows(0, n, q_measured, delta, yaw_delta, unreached, limited)
        return {"q_target": self.q_target.copy(), "unreached": unreached, "rate_limited": limited}

