"""The node's loop statistics: the longest period is the longest measured, not only a missed deadline."""

import pytest

from deploy.ros2.timing import LoopTiming


def test_period_max_is_the_longest_measured_period():
    t = LoopTiming(0.01, now=0.0)
    for when in (0.0, 0.010, 0.024, 0.034):  # periods 10, 14, 10 ms: 14 ms is late but not a missed deadline
        t.tick(when)
    s = t.stats()
    assert s["period_max_ms"] == pytest.approx(14.0) and s["missed_deadlines"] == 0
    t.tick(0.050)  # 16 ms > 1.5 T
    assert t.stats()["missed_deadlines"] == 1 and t.stats()["period_max_ms"] == pytest.approx(16.0)
    assert t.stats()["rate_hz"] == pytest.approx(4 / 0.050)
    fast = LoopTiming(0.01, now=0.0)
    for when in (0.0, 0.008, 0.016):
        fast.tick(when)
    assert fast.stats()["period_max_ms"] == pytest.approx(8.0)  # never reported as the nominal 10 ms
