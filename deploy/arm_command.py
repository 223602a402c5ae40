"""``ee_delta`` actions -> Panda joint position targets + gripper width, for the torch-free runtime.

The mapping is :class:`sim.arm.ee_control.EeDeltaController`, the very controller (damped-least-squares IK of
:mod:`sim.arm.ik`, workspace box, ``max_lead``, joint speed limits) the simulator trains with: what runs on
the robot is what ran in simulation. Only numpy and numba are imported (never torch).

The command vector is ``[q_1 .. q_7]`` (rad, ``action.joints`` order) followed, with a ``gripper`` channel,
by the gripper width (m, distance between the fingers): ``a = -1`` -> ``closed_width``, ``+1`` ->
``open_width`` (the simulator's finger target, linear in between).

``policy.json`` ``action`` keys read here beyond the contract's required ones (all optional, defaults =
the simulator's :class:`sim.arm.ee_control.EeDeltaLimits`): ``max_lead`` (m), ``workspace_low`` /
``workspace_high`` (3 values, m, base frame), ``yaw_range`` (2 values, rad), ``ik_iterations``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deploy.inputs import ModelError
from sim.arm.ee_control import EeDeltaController, EeDeltaLimits
from sim.arm.ik import ik_workspace
from sim.arm.kinematics import Q_LOWER, Q_UPPER, QD_LIMIT

__all__ = ["EeDeltaCommand", "PANDA_JOINTS_N"]

PANDA_JOINTS_N = 7
#: Measured joints this far outside the Panda's limits are implausible (a sensor or driver fault), rad.
MEASURED_MARGIN = 0.1


def _floats(value: Any, n: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ModelError(f"action.{what} must be {n} numbers, got {value!r}") from None
    if len(out) != n or not all(np.isfinite(out)):
        raise ModelError(f"action.{what} must be {n} finite numbers, got {value!r}")
    return out


class EeDeltaCommand:
    """One arm's ``ee_delta`` controller (see the module docstring); ``control_dt`` is the policy period (s)."""

    def __init__(self, act: dict[str, Any], control_dt: float) -> None:
        chans: Sequence[str] = act["channels"]
        joints = act.get("joints")
        if joints is None or len(joints) != PANDA_JOINTS_N:
            raise ModelError(f"an ee_delta action drives the Panda IK: 'action.joints' must name its "
                             f"{PANDA_JOINTS_N} joints, got {joints!r}")
        self.joints = list(joints)
        d = EeDeltaLimits()
        limits = EeDeltaLimits(
            pos_scale=float(act["position_scale"]), yaw_scale=float(act.get("yaw_scale", d.yaw_scale)),
            max_lead=float(act.get("max_lead", d.max_lead)),
            workspace_low=_floats(act.get("workspace_low", d.workspace_low), 3, "workspace_low"),
            workspace_high=_floats(act.get("workspace_high", d.workspace_high), 3, "workspace_high"),
            yaw_range=_floats(act.get("yaw_range", d.yaw_range), 2, "yaw_range"),
            ik_iterations=int(act.get("ik_iterations", d.ik_iterations)))
        if not (limits.max_lead > 0 and limits.ik_iterations >= 1
                and all(lo < hi for lo, hi in zip(limits.workspace_low, limits.workspace_high, strict=True))):
            raise ModelError("ee_delta needs max_lead > 0, ik_iterations >= 1 and workspace_low < workspace_high")
        self.controller = EeDeltaController(limits, control_dt)
        self.yaw_index = chans.index("yaw") if "yaw" in chans else None
        self.gripper_index = chans.index("gripper") if "gripper" in chans else None
        n = PANDA_JOINTS_N
        self.size = n + (self.gripper_index is not None)
        lo, hi = list(Q_LOWER), list(Q_UPPER)
        max_delta = list(QD_LIMIT * control_dt)
        self.closed = self.open = 0.0
        if self.gripper_index is not None:
            g = act["gripper"]
            self.closed, self.open = float(g["closed_width"]), float(g["open_width"])
            lo.append(self.closed)
            hi.append(self.open)
            max_delta.append(np.inf)
        self.low, self.high = np.array(lo), np.array(hi)
        """Command limits: the Panda's joint position limits, then the gripper's width range."""
        self.max_delta = np.array(max_delta)
        """Largest command change per control step: the Panda's joint velocity limits times ``control_dt``."""
        self._q = np.zeros((1, n))
        self._delta = np.zeros((1, 3))
        self._yaw = np.zeros(1) if self.yaw_index is not None else None
        self._unreached, self._limited = np.zeros(1, dtype=bool), np.zeros(1, dtype=bool)
        self._work = ik_workspace()
        self.unreached_steps = 0
        self.reset(np.asarray(Q_LOWER + Q_UPPER) / 2)  # allocates the controller state; re-anchored at activation

    def measured_problem(self, measured: np.ndarray) -> str | None:
        """Why the measured joints cannot anchor the IK (``None`` when they can)."""
        q = measured[:PANDA_JOINTS_N]
        if not np.isfinite(measured).all():
            return "non-finite joint state"
        bad = (q < Q_LOWER - MEASURED_MARGIN) | (q > Q_UPPER + MEASURED_MARGIN)
        if bad.any():
            k = int(np.argmax(bad))
            return f"measured {self.joints[k]} = {float(q[k]):.4g} rad is outside the Panda's joint limits"
        return None

    def reset(self, measured: np.ndarray) -> None:
        """Anchor the commanded TCP pose at the measured joints (after activation or a safe step)."""
        self._q[0] = measured[:PANDA_JOINTS_N]
        self.controller.reset(self._q)

    def command(self, action: np.ndarray, measured: np.ndarray, out: np.ndarray) -> None:
        """Write the joint targets (and gripper width) for ``action`` into ``out``."""
        self._q[0] = measured[:PANDA_JOINTS_N]
        self._delta[0] = action[:3]
        if self._yaw is not None:
            self._yaw[0] = action[self.yaw_index]
        self.controller.step_rows(0, 1, self._q, self._delta, self._yaw, self._unreached, self._limited,
                                  self._work)
        self.unreached_steps += int(self._unreached[0])
        out[:PANDA_JOINTS_N] = self.controller.q_target[0]
        if self.gripper_index is not None:
            a = float(action[self.gripper_index])
            out[PANDA_JOINTS_N] = self.closed + (a + 1.0) * 0.5 * (self.open - self.closed)

    def sync(self, executed: np.ndarray) -> None:
        """The runtime changed the joint targets (limits, rate limit): continue from what was sent."""
        self._q[0] = executed[:PANDA_JOINTS_N]
        self.controller.reset(self._q)
