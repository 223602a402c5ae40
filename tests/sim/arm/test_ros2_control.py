"""The simulated Panda's ros2_control behaviour (``robot-rl arm-sim`` without ROS): forward_command_controller
semantics as read in ros2_controllers, a non-URDF joint-state order, and the violations a real arm refuses."""

import math

import numpy as np
import pytest

from sim.arm.kinematics import JOINT_NAMES, Q_UPPER
from sim.arm.ros2_control import (
    JOINT_STATE_ORDER,
    OBJECT_SPEED_LIMIT,
    ForwardCommandController,
    SimulatedPanda,
)


def test_forward_command_controller_semantics():
    c = ForwardCommandController("fwd", ["a", "b"])
    assert c.update() is None  # no command yet: nothing written, the hardware holds
    assert c.receive([1.0, 2.0]) is None and c.update() == [1.0, 2.0]
    assert "non-finite" in c.receive([math.nan, 0.0]) and c.update() == [1.0, 2.0]  # dropped, last one held
    assert c.receive([1.0, 2.0, 3.0]) is None and c.update() is None and c.update_errors == 1  # size -> ERROR
    assert c.receive([0.5, 0.5]) is None and c.update() == [0.5, 0.5]
    assert (c.received, c.dropped_nonfinite) == (3, 1)


@pytest.fixture(scope="module")
def panda():
    arm = SimulatedPanda("panda-pick-cube", seed=3)
    yield arm
    arm.close()


def test_training_scene_joint_states_and_object(panda):
    names, pos, vel, eff = panda.joint_state()
    assert names == list(JOINT_STATE_ORDER) and sorted(names) != names and len(pos) == len(vel) == len(eff) == 9
    by_name = dict(zip(names, pos, strict=True))
    np.testing.assert_allclose([by_name[j] for j in JOINT_NAMES], panda.q)
    obj = panda.object_pose()
    assert panda.object_name == "cube" and obj is not None and obj[0][2] == pytest.approx(0.02, abs=1e-3)
    assert panda.goal is None  # pick-cube has no goal of its own (arm-sim --goal sets one)


def test_commands_move_the_arm_and_violations_are_counted(panda):
    q0 = panda.q.copy()
    target = q0.copy()
    target[0] += 0.03  # within 2.175 rad/s over 20 ms
    assert panda.command_arm(target.tolist()) is None
    for _ in range(50):
        panda.step(0.01)
    assert abs(panda.q[0] - target[0]) < 2e-3
    assert panda.command_gripper([0.01]) is None
    far = target.copy()
    far[0] = Q_UPPER[0] + 0.1
    assert panda.command_arm(far.tolist()) is not None  # warned (logged by arm-sim), applied as the real one would
    assert panda.limit_violations == 1 and panda.velocity_violations == 1  # too far and too fast
    assert "non-finite" in panda.command_arm([math.nan] * 7)
    assert panda.unstable_at is None  # the cube stayed put
    counts = panda.counters()
    assert counts["arm_commands"] == 2 and counts["arm_nonfinite_dropped"] == 1 and counts["gripper_commands"] == 1


def test_a_physics_blow_up_is_reported():
    """The cube of a failed pick through the node (as CI saw one) at 1.74 s: slipped from the fingers, falling
    spinning at 32 rad/s, 2.8 cm above the floor. MuJoCo's implicitfast at the scene's 2 ms step ejects it at
    ~75 m/s on impact (Euler, RK4 and implicit, or a 1 ms step, land it at ~1.7 m/s); arm-sim must say so rather
    than report it as physics."""
    arm = SimulatedPanda("panda-pick-cube", seed=3)
    try:
        assert arm.unstable_at is None and arm.object_speed() < 1e-3  # at rest on the floor
        a, v = arm._object, arm._object_dof
        arm.data.qpos[a:a + 7] = [0.64422, -0.21516, 0.04792, -0.80002, -0.55336, 0.10405, -0.20720]
        arm.data.qvel[v:v + 6] = [0.4771, -0.4595, -1.4967, -1.4462, 24.3729, 20.6891]
        for _ in range(3):
            arm.step(0.01)
        assert arm.unstable_at == pytest.approx(0.03) and arm.object_speed() > OBJECT_SPEED_LIMIT
    finally:
        arm.close()


def test_pick_success_condition_is_the_tasks():
    arm = SimulatedPanda("panda-pick-cube", seed=1)
    try:
        cfg, a, tcp = arm.env.cfg, arm._object, arm.tcp()
        assert arm.lifted() is False  # resting on the floor
        assert arm.success_hold_s == pytest.approx(cfg.hold_steps * 0.02)
        assert tcp[2] - cfg.cube_half_size > cfg.lift_height  # the start pose holds the hand ~25 cm up
        arm.data.qpos[a:a + 3] = tcp  # in the hand
        assert arm.lifted() is True
        arm.data.qpos[a:a + 3] = tcp + [cfg.near_distance + 0.005, 0.0, 0.0]  # high enough but not in the hand
        assert arm.lifted() is False
    finally:
        arm.close()
    reach = SimulatedPanda("panda-reach", seed=0)
    try:
        assert reach.lifted() is None and reach.success_hold_s == 0.0
    finally:
        reach.close()
