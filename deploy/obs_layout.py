"""The runtime's observation buffer: one preallocated ``[1, obs_dim]`` float32 row and its checks (numpy only).

Each ``policy.json`` component gets a named view into the row (profiles write measurements there; the
runtime writes ``action_history`` / ``previous_action`` itself). A measured component has a plausibility range
(outside it: a fault) and, if it declares one, a training range it is clamped into (plausible, but more than
the policy saw). Measured components start as NaN (= not received).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploy import contract
from deploy.inputs import ranges

__all__ = ["RANGE_TOLERANCE", "RUNTIME_COMPONENTS", "ObsLayout"]

RUNTIME_COMPONENTS = ("action_history", "previous_action")
RANGE_TOLERANCE = 1e-5


class ObsLayout:
    """Views, plausibility bounds and training boxes of ``spec``'s observation (see the module docstring)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        dim = contract.obs_dim(spec)
        self.obs = np.full((1, dim), np.nan, dtype=np.float32)
        self.views: dict[str, np.ndarray] = {}
        big = float(np.finfo(np.float32).max)  # unranged: any finite value (NaN and +-inf fail the check)
        self.lo = np.full(dim, -big, dtype=np.float32)
        self.hi = np.full(dim, big, dtype=np.float32)
        self.slices: list[tuple[str, int, int]] = []
        self.clipped: list[tuple[str, int, int, np.ndarray, np.ndarray]] = []  # clamped into the training box
        i = 0
        for c in spec["observation"]:
            size, name = int(c["size"]), c["name"]
            self.views[name] = self.obs[0, i:i + size]
            self.slices.append((name, i, i + size))
            if name not in RUNTIME_COMPONENTS:
                lo, hi, train = ranges(c, size)
                self.lo[i:i + size] = np.maximum(lo - RANGE_TOLERANCE, -big)
                self.hi[i:i + size] = np.minimum(hi + RANGE_TOLERANCE, big)
                if train is not None:
                    self.clipped.append((name, i, i + size, train[0].astype(np.float32),
                                         train[1].astype(np.float32)))
            i += size
        hist = next((c for c in spec["observation"] if c["name"] == "action_history"), None)
        self.history_init = float(hist.get("initial_value", 0.0)) if hist else 0.0

    def problem(self) -> str:
        """Name the first component that is not finite or out of range (the failure path only)."""
        obs = self.obs[0]
        for name, a, b in self.slices:
            seg = obs[a:b]
            if not np.isfinite(seg).all():
                return f"non-finite input in {name!r}"
            bad = (seg < self.lo[a:b]) | (seg > self.hi[a:b])
            if bad.any():
                k = int(np.argmax(bad))
                lo, hi = float(self.lo[a + k]) + RANGE_TOLERANCE, float(self.hi[a + k]) - RANGE_TOLERANCE
                return f"input {name!r}[{k}] = {float(seg[k]):.4g} outside its plausible range [{lo:.4g}, {hi:.4g}]"
        return "invalid input"

    def clamp(self) -> str:
        """Clamp components outside their training box into it; the clamped names ("" if none)."""
        obs, hit = self.obs[0], ""
        for name, a, b, lo, hi in self.clipped:
            seg = obs[a:b]
            if (seg < lo).any() or (seg > hi).any():
                np.clip(seg, lo, hi, out=seg)
                hit = name if not hit else f"{hit}, {name}"
        return hit
