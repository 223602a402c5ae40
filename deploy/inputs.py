"""Input bookkeeping for :mod:`deploy.runtime` (numpy only): per-source stamp state and observation ranges."""

from __future__ import annotations

from typing import Any

import numpy as np


class ModelError(ValueError):
    """The export directory cannot be run (missing/corrupt ONNX, shape mismatch, failed test vector)."""


class Source:
    """Bookkeeping of one input stream (e.g. odometry): last header stamp, receive time, rejections, fault."""

    __slots__ = ("name", "timeout", "stamp", "received", "count", "rejected", "consecutive", "resets", "future",
                 "last_reject", "fault")

    def __init__(self, name: str, timeout: float | None) -> None:
        self.name, self.timeout = name, timeout
        self.stamp: int | None = None
        self.received: float | None = None
        self.count = 0
        self.rejected = 0  # messages refused (stamp, frame, ...): counted on diagnostics
        self.consecutive = 0  # refused in a row since the last accepted one
        self.resets = 0  # stamp sequence restarts (stamp jump back, or recovery after consecutive rejections)
        self.future = 0  # refused for a stamp too far ahead of the node's clock
        self.last_reject = ""  # why the last message was refused ("" once one is accepted again)
        self.fault: str | None = None  # reported by the profile for the last accepted message (clears on accept)


def ranges(comp: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Plausibility range and, if the component has one, the training range it is clamped into.

    ``valid_low``/``valid_high`` give the plausibility range (outside: a fault); ``low``/``high`` are then the
    training range. A component with only ``low``/``high`` (exports before plausibility ranges) uses them as
    its plausibility range and is never clamped. A measured component with neither cannot be checked: refused.
    """
    def vec(key: str) -> np.ndarray | None:
        if key not in comp:
            return None
        arr = np.asarray(comp[key], dtype=np.float64).reshape(-1)
        if arr.size not in (1, size) or not np.all(~np.isnan(arr)):
            raise ModelError(f"policy.json: observation {comp['name']!r} {key} must be a number or {size} numbers")
        return np.broadcast_to(arr, (size,)).copy()

    lo, hi, vlo, vhi = vec("low"), vec("high"), vec("valid_low"), vec("valid_high")
    if vlo is not None and vhi is not None:
        if lo is None and hi is None:
            return vlo, vhi, None
        lo = vlo if lo is None else lo
        hi = vhi if hi is None else hi
        if np.any(lo < vlo) or np.any(hi > vhi) or np.any(lo > hi):
            raise ModelError(f"policy.json: observation {comp['name']!r} training range [low, high] must lie "
                             f"inside its plausibility range [valid_low, valid_high]")
        return vlo, vhi, (lo, hi)
    if lo is not None and hi is not None and vlo is None and vhi is None:
        return lo, hi, None
    raise ModelError(f"policy.json: observation {comp['name']!r} declares no plausibility range (valid_low/"
                     f"valid_high, or low/high): re-export the policy with this version, or add the range by hand")


