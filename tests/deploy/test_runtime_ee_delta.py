"""``ee_delta`` actions in the torch-free runtime: the simulator's IK controller, gripper width, and the arm's
joint position/velocity limits, NaN and stale input all stopped before a command leaves the runner."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.export.examples import export_ee_reach_example
from deploy.runtime import ModelError, PolicyRunner
from sim.arm.ee_control import EeDeltaController, EeDeltaLimits
from sim.arm.kinematics import Q_LOWER, Q_READY, Q_UPPER, QD_LIMIT, tcp_pose

ROOT = Path(__file__).resolve().parents[2]
DT = 0.02


@pytest.fixture(scope="module")
def reach_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ee_reach")
    export_ee_reach_example(d, gripper=-0.5)
    return d


def feed(r, q, goal, width=0.04, now=0.0, stamp=[0]):  # noqa: B006 - a shared, increasing stamp
    stamp[0] += 1
    r.measured[:7] = q
    r.measured[7] = width
    r.view("ee_position")[:] = tcp_pose(np.asarray(q, dtype=np.float64)[None])[0][0]
    r.view("goal_position")[:] = goal
    assert r.accept("joint_states", stamp[0], now)


def test_ee_delta_runtime_imports_no_torch(reach_dir):
    code = ("import sys; sys.modules['torch'] = None\nimport numpy as np\n"
            "from deploy.runtime import PolicyRunner\n"
            f"r = PolicyRunner({str(reach_dir)!r}, sources={{'joint_states': 0.1}})\n"
            "from sim.arm.kinematics import Q_READY, tcp_pose\n"
            "r.measured[:] = [*Q_READY, 0.04]; r.view('ee_position')[:] = tcp_pose(Q_READY[None])[0][0]\n"
            "r.view('goal_position')[:] = [0.5, 0.1, 0.4]; r.accept('joint_states', 1, 0.0)\n"
            "cmd, why = r.step(0.0); assert why is None and np.isfinite(cmd).all(), why\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_joint_targets_are_the_simulators_controller_and_reach_the_goal(reach_dir):
    """The runner's targets equal sim.arm.ee_control's for the same inputs, step after step; following them
    (an ideal position-controlled arm) puts the TCP on the goal."""
    r = PolicyRunner(reach_dir, sources={"joint_states": 0.1})
    ref = EeDeltaController(EeDeltaLimits(pos_scale=0.02), DT)
    q = Q_READY.copy()
    ref.reset(q[None])
    goal = np.array([0.45, 0.15, 0.35])
    for _ in range(60):
        feed(r, q, goal)
        cmd, reason = r.step(0.0)
        assert reason is None
        ee = tcp_pose(q[None])[0][0]
        a = np.clip(10.0 * (goal - ee), -1, 1)
        want = ref.step(q[None], a[None])["q_target"][0]
        np.testing.assert_allclose(cmd[:7], want, atol=2e-5)  # float32 command of the same float64 controller
        assert cmd[7] == pytest.approx(0.02)  # gripper a = -0.5 -> a quarter of the 0.08 m opening
        q = cmd[:7].astype(np.float64)
    assert np.linalg.norm(tcp_pose(q[None])[0][0] - goal) < 2e-3
    assert r.stats()["ik_unreached_steps"] == 0


def test_velocity_and_position_limits_are_never_exceeded(reach_dir):
    """Panda limits always apply; node limits narrow them: every command is inside, every step slow enough."""
    high = Q_UPPER.copy()
    high[0] = 0.05  # joint 1 may not turn past 0.05 rad
    r = PolicyRunner(reach_dir, sources={"joint_states": 0.1}, command_high=[*high, 1.0],
                     max_command_delta=[0.01] * 7 + [np.inf])
    q = Q_READY.copy()
    prev = q.copy()
    goal = np.array([0.3, 0.4, 0.2])  # to the left: needs joint 1 well past 0.05 rad
    for _ in range(80):
        feed(r, q, goal)
        cmd, reason = r.step(0.0)
        assert reason is None
        q64 = cmd[:7].astype(np.float64)  # float32 limits are rounded inwards: never beyond, not even by 1e-8
        assert np.all(q64 <= high) and np.all(q64 >= Q_LOWER)
        assert np.all(np.abs(cmd[:7] - prev) <= 0.01 + 1e-6)
        prev = q = cmd[:7].astype(np.float64)
    assert cmd[0] == pytest.approx(0.05, abs=1e-7) and r.stats()["limited_steps"] > 0
    r2 = PolicyRunner(reach_dir, sources={"joint_states": 0.1})
    q, prev = Q_READY.copy(), Q_READY.copy()
    for _ in range(20):  # default: the Panda's velocity limits (the controller's own)
        feed(r2, q, [0.3, -0.4, 0.1])
        cmd, _ = r2.step(0.0)
        assert np.all(np.abs(cmd[:7] - prev) <= QD_LIMIT * DT + 1e-6)
        prev = q = cmd[:7].astype(np.float64)


@pytest.mark.parametrize("what, match", [
    ("nan_joint", "non-finite joint state"),
    ("outside_limits", "outside the Panda's joint limits"),
    ("nan_goal", "non-finite input in 'goal_position'"),
    ("stale", "stale joint_states input"),
])
def test_bad_input_holds_the_measured_position(reach_dir, what, match):
    r = PolicyRunner(reach_dir, sources={"joint_states": 0.1})
    q = Q_READY + 0.05
    feed(r, q, [0.5, 0.0, 0.3])
    cmd, reason = r.step(0.0)
    assert reason is None
    now = 0.0
    if what == "nan_joint":
        r.measured[2] = np.nan
    elif what == "outside_limits":
        r.measured[3] = 0.5  # joint 4 must stay below -0.07 rad
    elif what == "nan_goal":
        r.view("goal_position")[1] = np.nan
    else:
        now = 0.5
    cmd, reason = r.step(now)
    assert match in reason
    hold = np.clip(np.r_[q, 0.02], np.r_[Q_LOWER, 0.0], np.r_[Q_UPPER, 0.08]).astype(np.float32)
    np.testing.assert_array_equal(cmd, hold)  # the last valid measurement (never the bad one); gripper: last command


def test_command_guard_stops_a_broken_controller(reach_dir, monkeypatch):
    """Defence in depth: should the IK ever emit NaN, the last check holds instead of sending it."""
    r = PolicyRunner(reach_dir, sources={"joint_states": 0.1})
    feed(r, Q_READY, [0.5, 0.0, 0.3])
    monkeypatch.setattr(r._ee, "command", lambda a, m, out: out.fill(np.nan))
    cmd, reason = r.step(0.0)
    assert reason == "command guard: non-finite joint target" and r.guard_trips == 1
    np.testing.assert_allclose(cmd[:7], Q_READY, atol=1e-6)


def test_ee_delta_needs_the_seven_panda_joints(reach_dir, tmp_path):
    import json
    import shutil

    shutil.copytree(reach_dir, tmp_path / "x")
    doc = json.loads((tmp_path / "x" / "policy.json").read_text())
    doc["action"]["joints"] = ["a", "b", "c"]
    (tmp_path / "x" / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="must name its 7 joints"):
        PolicyRunner(tmp_path / "x")
