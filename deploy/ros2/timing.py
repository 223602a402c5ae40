"""Control-loop timing statistics for the node (ROS-free, so that they are unit-tested without rclpy)."""

from __future__ import annotations

import numpy as np

JITTER_BIN_S, JITTER_BINS = 1e-5, 5000  # histogram of |period - nominal|: 10 us bins up to 50 ms


class LoopTiming:
    """Periods between control ticks since :meth:`reset`: rate, jitter p99, missed deadlines, longest period."""

    def __init__(self, period: float, now: float = 0.0) -> None:
        self.reset(period, now)

    def reset(self, period: float, now: float) -> None:
        """Start counting afresh for nominal ``period`` (s); ``now`` is a ``time.monotonic()`` reading."""
        self.period = period
        self.jitter = np.zeros(JITTER_BINS, dtype=np.int64)
        self.ticks = self.missed = self.overruns = 0
        self.max_period = 0.0  # the longest measured period (not only the missed ones)
        self.first = 0.0
        self.last = now

    def tick(self, t: float) -> None:
        """Register a control tick at ``t``."""
        dt, self.last = t - self.last, t
        if self.ticks:
            self.jitter[min(int(abs(dt - self.period) / JITTER_BIN_S), JITTER_BINS - 1)] += 1
            if dt > 1.5 * self.period:
                self.missed += 1
            if dt > self.max_period:
                self.max_period = dt
        else:
            self.first = t
        self.ticks += 1

    def stats(self) -> dict[str, float]:
        """Rate, p99 |period - nominal|, periods > 1.5 nominal, longest period, overruns (steps longer than T)."""
        n = self.ticks
        rate = (n - 1) / (self.last - self.first) if n > 1 else 0.0
        counts = np.cumsum(self.jitter)
        p99 = float(np.searchsorted(counts, 0.99 * counts[-1]) + 1) * JITTER_BIN_S if counts[-1] else 0.0
        return {"ticks": n, "rate_hz": rate, "jitter_p99_ms": p99 * 1e3, "missed_deadlines": self.missed,
                "period_max_ms": self.max_period * 1e3, "overruns": self.overruns}
