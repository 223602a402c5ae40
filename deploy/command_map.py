"""The map from a policy action to an actuator command, with its limits (numpy only, for :mod:`deploy.runtime`).

``command = offset + scale * action`` (``+ measured joints`` for a ``delta`` joint action); ``ee_delta`` actions
go through the simulator's own IK (:mod:`deploy.arm_command`). The limits are rounded inwards to float32 so
that a clamped command never lies beyond the real limit, and an ``ee_delta`` arm is never commanded beyond the
Panda's joint position and velocity limits, whatever the caller asks for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.inputs import ModelError

__all__ = ["CommandMap", "build_command_map"]


def _vector(value: float | Sequence[float] | None, n: int, default: float, what: str) -> np.ndarray:
    """Broadcast a number or a length-1 / length-n sequence to a float64 vector of length n."""
    arr = np.asarray(default if value is None else value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, arr[0])
    if arr.size != n:
        raise ModelError(f"{what} has {arr.size} values but the action has {n}")
    return arr


@dataclass
class CommandMap:
    """Everything the control step needs to turn a clipped action into a command (float32 arrays)."""

    act_lo: np.ndarray
    act_hi: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    size: int  # command size (ee_delta: 7 joints + gripper width)
    safe_fixed: np.ndarray | None  # motor_rpm: the fixed safe command (motors off)
    measured: np.ndarray | None  # joint_position: the observation view; ee_delta: its own measured buffer
    delta: bool  # joint_position relative to the measured joints
    ee: Any  # deploy.arm_command.EeDeltaCommand for ee_delta actions
    cmd_lo: np.ndarray
    cmd_hi: np.ndarray
    max_delta: np.ndarray
    order: np.ndarray | None  # output permutation (None: identity)
    neg_max_delta: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.neg_max_delta = -self.max_delta  # precomputed: the control step allocates nothing

    @property
    def limited(self) -> bool:
        """Whether any command limit is finite."""
        return bool(np.isfinite(self.cmd_lo).any() or np.isfinite(self.cmd_hi).any())

    @property
    def rate_limited(self) -> bool:
        """Whether any element has a finite largest change per step."""
        return bool(np.isfinite(self.max_delta).any())

    def to_command(self, act: np.ndarray, measured: np.ndarray | None, out: np.ndarray) -> None:
        """``out`` = the command of the clipped action ``act`` (``measured``: the joints of a delta or ``ee_delta``
        action; ``ee_delta``: the caller anchors :attr:`ee` first)."""
        if self.ee is not None:  # the simulator's IK controller: TCP delta (+ yaw, gripper) -> joint targets
            self.ee.command(act, measured, out)
            return
        np.multiply(act, self.scale, out=out)
        np.add(out, self.offset, out=out)
        if self.delta:
            np.add(out, measured, out=out)

    def to_action(self, cmd: np.ndarray, measured: np.ndarray | None, out: np.ndarray) -> None:
        """``out`` = the action whose command is ``cmd`` (the inverse of :meth:`to_command`; not for ``ee_delta``,
        whose IK has no inverse map)."""
        np.subtract(cmd, self.offset, out=out)
        if self.delta:
            np.subtract(out, measured, out=out)
        np.divide(out, self.scale, out=out)

    def rate_limit(self, cmd: np.ndarray, prev: np.ndarray, tmp: np.ndarray) -> None:
        """Move ``cmd`` in place to within :attr:`max_delta` of ``prev`` (``tmp``: scratch of the same size)."""
        np.subtract(cmd, prev, out=tmp)
        np.maximum(tmp, self.neg_max_delta, out=tmp)
        np.minimum(tmp, self.max_delta, out=tmp)
        np.add(prev, tmp, out=cmd)

    def guard(self, cmd: np.ndarray) -> str | None:
        """Independent last check of an arm command: finite and inside the command limits (``None``: fine)."""
        if not np.isfinite(cmd).all():
            return "command guard: non-finite joint target"
        bad = (cmd < self.cmd_lo) | (cmd > self.cmd_hi)
        if bad.any():
            k = int(np.argmax(bad))
            return (f"command guard: target [{k}] = {float(cmd[k]):.4g} outside [{float(self.cmd_lo[k]):.4g}, "
                    f"{float(self.cmd_hi[k]):.4g}]")
        return None


def build_command_map(act: dict[str, Any], views: Mapping[str, np.ndarray], control_rate_hz: float, *,
                      command_low: float | Sequence[float] | None, command_high: float | Sequence[float] | None,
                      max_command_delta: float | Sequence[float] | None, command_unit: str,
                      output_order: Sequence[int] | None) -> CommandMap:
    """The :class:`CommandMap` of ``policy.json``'s ``action`` and the caller's limits (:class:`PolicyRunner` args)."""
    f32 = np.float32
    kind, n = act["type"], int(act["size"])
    act_lo = _vector(act.get("low", -np.inf), n, -np.inf, "action.low").astype(f32)
    act_hi = _vector(act.get("high", np.inf), n, np.inf, "action.high").astype(f32)
    measured: np.ndarray | None = None
    delta, ee, safe_fixed, m = False, None, None, n
    if kind == "motor_rpm":
        if command_unit == "rpm":
            lo, hi = float(act.get("rpm_min", 0.0)), float(act["rpm_max"])
            scale, offset = np.full(n, (hi - lo) / 2), np.full(n, (hi + lo) / 2)
        elif command_unit == "normalized":
            scale, offset = np.ones(n), np.zeros(n)
        else:
            raise ModelError(f"command_unit must be 'rpm' or 'normalized', not {command_unit!r}")
        safe = _vector(act.get("safe_action", -1.0), n, -1.0, "action.safe_action")
        safe_fixed = (offset + scale * safe).astype(f32)
    elif kind == "joint_position":
        if "joint_position" not in views:
            raise ModelError("a joint_position action needs a joint_position observation (the hold position)")
        measured = views["joint_position"]
        delta = bool(act.get("delta", False))
        scale = _vector(act.get("scale", 1.0), n, 1.0, "action.scale")
        offset = _vector(act.get("offset", 0.0), n, 0.0, "action.offset")
    elif kind == "ee_delta":
        from deploy.arm_command import EeDeltaCommand  # numba + the shared IK: only for arms

        ee = EeDeltaCommand(act, 1.0 / control_rate_hz)
        m = ee.size
        measured = np.full(m, np.nan, dtype=f32)
        scale, offset = np.ones(m), np.zeros(m)
    elif kind == "attitude_thrust":
        scale = _vector(act.get("scale"), n, math.nan, "action.scale")
        offset = _vector(act.get("offset"), n, math.nan, "action.offset")
        if not (np.isfinite(scale).all() and np.isfinite(offset).all()):
            raise ModelError("an attitude_thrust action needs finite 'scale' and 'offset' (one per channel)")
    else:
        raise ModelError(f"action type {kind!r} has no runtime mapping yet")
    if np.any(scale == 0):
        raise ModelError("action.scale must not be zero")
    lo = _vector(command_low, m, -np.inf, "command_low")
    hi = _vector(command_high, m, np.inf, "command_high")
    max_delta = _vector(max_command_delta, m, np.inf, "max_command_delta")
    if ee is not None:  # never beyond the Panda's joint position and velocity limits
        lo, hi = np.maximum(lo, ee.low), np.minimum(hi, ee.high)
        max_delta = np.minimum(max_delta, ee.max_delta)
    lo32, hi32 = lo.astype(f32), hi.astype(f32)
    cmd_lo = np.where(lo32 < lo, np.nextafter(lo32, f32(np.inf)), lo32).astype(f32)
    cmd_hi = np.where(hi32 > hi, np.nextafter(hi32, f32(-np.inf)), hi32).astype(f32)
    if np.any(cmd_lo > cmd_hi):
        raise ModelError("command_low must not exceed command_high")
    max_delta32 = max_delta.astype(f32)
    if np.any(max_delta32 <= 0):
        raise ModelError("max_command_delta must be positive (inf disables rate limiting)")
    if output_order is not None and sorted(output_order) != list(range(m)):
        raise ModelError(f"output_order must be a permutation of 0..{m - 1}")
    order = None if output_order is None or list(output_order) == list(range(m)) \
        else np.asarray(output_order, dtype=np.intp)
    return CommandMap(act_lo=act_lo, act_hi=act_hi, scale=scale.astype(f32), offset=offset.astype(f32), size=m,
                      safe_fixed=safe_fixed, measured=measured, delta=delta, ee=ee, cmd_lo=cmd_lo, cmd_hi=cmd_hi,
                      max_delta=max_delta32, order=order)
