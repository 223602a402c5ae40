"""The failure classes of benchmarks/resip_failures.py on hand-made final tip states."""

import numpy as np
import pytest

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


def test_beside_ring_report_finds_the_step_and_whether_the_peg_came_back():
    from benchmarks.resip_failures import beside_ring_report

    T, N = 6, 3
    radial = np.full((T, N), 0.001)
    depth = np.full((T, N), -0.01)
    radial[:, 0] = [0.020, 0.024, 0.030, 0.035, 0.035, 0.035]  # slides off the ring's outer edge at step 3
    depth[:, 0] = [0.0005, 0.0005, 0.002, 0.012, 0.03, 0.05]
    radial[:, 1] = 0.035  # down beside the ring at step 1, then lifted above the rim at step 4
    depth[:, 1] = [-0.01, 0.008, 0.02, 0.01, -0.001, -0.002]
    wrench = np.zeros((T, N, 6))
    wrench[:, :, 2] = 150.0
    base = np.zeros((T, N, 3))
    action = base.copy()
    action[:, :, 2] = -0.1  # the residual pushes down by 0.1 throughout
    tr = {"radial": radial, "depth": depth, "active": np.ones((T, N)), "wrench": wrench, "base": base,
          "action": action, "success": np.array([False, False, True]), "error_mm": np.array([1.0, 2.0, 3.0])}
    rep = beside_ring_report(tr, r_in=0.0126, r_out=0.0226)
    counts = (rep["went_beside"], rep["went_beside_then_lifted_above_rim"], rep["went_beside_then_succeeded"])
    assert counts == (2, 1, 0)
    first, second = rep["episodes"]
    assert (first["episode"], first["step"], first["lifted_above_rim"]) == (0, 3, False)
    assert (second["episode"], second["step"], second["lifted_above_rim"]) == (1, 1, True)
    assert first["final_depth_mm"] == 50.0 and first["fz_after"] == 150.0
    assert first["residual_z_after"] == pytest.approx(-0.1) and first["base_z_after"] == 0.0
