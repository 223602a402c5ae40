"""Input bookkeeping for :mod:`deploy.runtime` (numpy only): per-source stamp checks and observation ranges."""

from __future__ import annotations

import time
from collections.abc import Mapping
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


class StampGate:
    """Accepts or refuses each input message by its header stamp (see :meth:`deploy.runtime.PolicyRunner.accept`).

    A message must be newer than the last one of its source and not stamped more than ``max_future_s`` ahead
    of the caller's clock; a stamp that jumps back more than ``stamp_jump_s``, or ``recovery_count``
    consecutive rejections, restart the source's stamp sequence, with a notice in :attr:`notices`.
    """

    def __init__(self, sources: Mapping[str, float | None], *, check_stamps: bool, max_future_s: float,
                 stamp_jump_s: float, recovery_count: int) -> None:
        if not (max_future_s > 0 and stamp_jump_s > 0 and recovery_count >= 1):
            raise ModelError("max_future_s and stamp_jump_s must be positive, recovery_count at least 1")
        self.sources = {name: Source(name, t) for name, t in sources.items()}
        self.check_stamps = check_stamps
        self._future_ns, self._jump_ns = int(max_future_s * 1e9), int(stamp_jump_s * 1e9)
        self.recovery_count = int(recovery_count)
        self.notices: list[str] = []  # one-line events for the caller's log; the caller empties the list

    def accept(self, source: str, stamp_ns: int, received: float | None, clock_ns: int | None) -> bool:
        """Register a message of ``source``; ``False``: drop it."""
        src = self.sources[source]
        if self.check_stamps:
            if stamp_ns <= 0:
                return self.reject(source, "unstamped message (header.stamp = 0)")
            if clock_ns is not None and stamp_ns - clock_ns > self._future_ns:
                src.future += 1
                return self.reject(source, f"stamp {(stamp_ns - clock_ns) * 1e-9:.3g} s ahead of the node clock")
            if src.stamp is not None and stamp_ns <= src.stamp:
                back = src.stamp - stamp_ns
                if back > self._jump_ns:
                    self._restart(src, f"stamp jumped back {back * 1e-9:.3g} s")
                elif src.consecutive >= self.recovery_count:
                    self._restart(src, f"{src.consecutive} consecutive messages not newer than the last")
                else:
                    return self.reject(source, "stamp not newer than the last")
        src.stamp = stamp_ns
        src.received = time.monotonic() if received is None else received
        src.count += 1
        src.consecutive = 0
        src.last_reject = ""
        src.fault = None
        return True

    def _restart(self, src: Source, why: str) -> None:
        src.resets += 1
        self.notices.append(f"{src.name}: stamp sequence restarted ({why}: driver restart or clock step)")

    def reject(self, source: str, reason: str) -> bool:
        """Count a refused message of ``source`` and remember why; ``False``."""
        src = self.sources[source]
        src.rejected += 1
        src.consecutive += 1
        src.last_reject = reason
        return False


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


