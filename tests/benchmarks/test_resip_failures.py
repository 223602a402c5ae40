"""The failure classes of benchmarks/resip_failures.py on hand-made final tip states."""

import numpy as np

from benchmarks.resip_failures import classify_failures


def test_failures_are_classified_by_the_final_tip_state():
    success = np.array([True, False, False, False, False])
    radial = np.array([0.001, 0.005, 0.015, 0.035, 0.030])  # m from the true hole axis
    depth = np.array([0.03, 0.002, 0.0005, 0.0507, 0.001])  # m below the rim
    kinds = classify_failures(success, radial, depth, hole_radius=0.0126, hole_depth=0.05)
    assert kinds["mouth"].tolist() == [False, True, False, False, False]
    assert kinds["rim"].tolist() == [False, False, True, False, True]
    assert kinds["outside"].tolist() == [False, False, False, True, False]
    assert not any(k[0] for k in kinds.values())  # a success is no failure, however deep
