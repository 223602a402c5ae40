"""benchmarks/hover_curve.py's choice of the kept evaluation is keep_best's rule, on the selection figures only."""

from benchmarks.hover_curve import best_index
from sim.quadrotor.evaluation import HoverEvalConfig


def _row(sel_survival, sel_settle, survival=0.0, settle=0.0):
    return {"sel_survival": sel_survival, "sel_settle": sel_settle, "survival": survival, "settle": settle}


def test_passing_first_then_the_highest_lowest_rate_then_the_earliest():
    bar = HoverEvalConfig()
    rows = [_row(0.90, 0.60, 1.0, 1.0), _row(0.96, 0.91), _row(0.99, 0.95), _row(0.99, 0.95)]
    assert best_index(rows, bar) == 2  # the held-out figures (row 0's 100 %) play no part
    assert best_index(rows[:2], bar) == 1  # the only one that passes
    assert best_index([_row(0.80, 0.70), _row(0.96, 0.50), _row(0.97, 0.65)], bar) == 0
    assert best_index([_row(0.90, 0.95), _row(0.95, 0.90)], bar) == 1  # the first misses survival, the second passes
    assert best_index([_row(0.0, 0.0), _row(0.96, 0.0), _row(0.80, 0.0)], bar) == 1  # settle 0 throughout
