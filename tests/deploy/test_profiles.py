"""ROS-free profiles: message conversion (REP 105, joint reordering) and model-vs-parameter checks."""

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest

from deploy.export.examples import export_arm_example, export_hover_example
from deploy.ros2.profiles import ConfigError, NodeConfig, make_profile, quat_to_rotmat


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    hover, arm = tmp_path_factory.mktemp("hover"), tmp_path_factory.mktemp("arm")
    export_hover_example(hover, hidden=(16,))
    export_arm_example(arm)
    return hover, arm


def odom(stamp, pos=(0.0, 0.0, 1.0), quat=(1.0, 0.0, 0.0, 0.0), lin=(0.0, 0.0, 0.0), ang=(0.0, 0.0, 0.0),
         frame="odom", child="base_link"):
    """A duck-typed nav_msgs/Odometry; ``quat`` is (w, x, y, z); ``stamp`` in seconds (int) or ns (large)."""
    v3 = lambda v: NS(x=v[0], y=v[1], z=v[2])  # noqa: E731
    sec, ns = (stamp, 0) if stamp < 10**6 else divmod(stamp, 10**9)
    return NS(header=NS(stamp=NS(sec=sec, nanosec=ns), frame_id=frame), child_frame_id=child,
              pose=NS(pose=NS(position=v3(pos), orientation=NS(w=quat[0], x=quat[1], y=quat[2], z=quat[3]))),
              twist=NS(twist=NS(linear=v3(lin), angular=v3(ang))))


def joint_state(stamp, names, pos, vel):
    return NS(header=NS(stamp=NS(sec=stamp, nanosec=0)), name=list(names), position=list(pos), velocity=list(vel))


def test_odometry_to_l2f_observation(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), target=[1.0, 2.0, 1.0]))
    yaw = math.pi / 2  # body x points along world y
    q = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    assert p.on_odometry(odom(1, pos=(1.1, 2.0, 0.9), quat=q, lin=(1.0, 0.0, 0.0), ang=(0.1, 0.2, 0.3)), 0.0)
    r = p.runner
    np.testing.assert_allclose(r.view("position"), [0.1, 0.0, -0.1], atol=1e-6)
    np.testing.assert_allclose(r.view("rotation_matrix"), [0, -1, 0, 1, 0, 0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(r.view("linear_velocity"), [0.0, 1.0, 0.0], atol=1e-6)  # REP 105: body -> world
    np.testing.assert_allclose(r.view("angular_velocity"), [0.1, 0.2, 0.3], atol=1e-6)  # stays in the body frame
    assert not p.on_odometry(odom(1), 0.0)  # same stamp: dropped
    cmd, reason = r.step(0.0)
    assert reason is None and cmd.dtype == np.float32 and cmd.shape == (4,)
    assert p.on_odometry(odom(2, pos=(1.0, 2.0, 1.0), quat=(0.5, 0.0, 0.0, 0.0)), 0.0)  # not a unit quaternion
    assert r.step(0.0)[1] == "non-unit orientation quaternion (norm 0.5)"


def test_world_twist_option_and_rotmat_convention(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), twist_frame="world"))
    q = (math.cos(0.3), math.sin(0.3), 0.0, 0.0)
    p.on_odometry(odom(1, quat=q, lin=(0.2, 0.0, 0.0)), 0.0)
    np.testing.assert_allclose(p.runner.view("linear_velocity"), [0.2, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(p.runner.view("rotation_matrix"), quat_to_rotmat(*q), atol=1e-7)


def test_arm_reorders_joint_states_and_commands(models):
    cfg = NodeConfig(profile="arm", model_path=str(models[1]), joints=["joint3", "joint1", "joint2"],
                     goal=[0.5, -0.3, 0.2], max_command_delta=[0.05], command_low=[-1.0], command_high=[1.0])
    p = make_profile(cfg)
    assert p.command_topic == "/forward_position_controller/commands"
    assert not p.on_joint_state(joint_state(1, ["joint1", "joint2"], [0, 0], [0, 0]), 0.0)  # lacks joint3
    names = ["gripper", "joint2", "joint3", "joint1"]
    assert p.on_joint_state(joint_state(1, names, [9.0, 0.2, 0.3, 0.1], [0, -0.2, -0.3, -0.1]), 0.0)
    np.testing.assert_allclose(p.runner.view("joint_position"), [0.1, 0.2, 0.3], atol=1e-7)
    np.testing.assert_allclose(p.runner.view("joint_velocity"), [-0.1, -0.2, -0.3], atol=1e-7)
    cmd, reason = p.runner.step(0.0)
    assert reason is None
    np.testing.assert_allclose(cmd, [0.3, 0.1, 0.2], atol=0.05 + 1e-6)  # controller order, rate limited
    assert p.on_joint_state(joint_state(2, names, [9.0, 0.2, 0.3, 0.1], []), 0.0)  # velocities missing
    cmd, reason = p.runner.step(0.0)
    assert "joint_velocity" in reason
    np.testing.assert_allclose(cmd, [0.3, 0.1, 0.2], atol=1e-7)  # hold the measured position


@pytest.mark.parametrize("change,match", [
    ({"joints": ["a", "b", "c"]}, "does not match the model's joints"),
    ({"joints": []}, "joints is empty"),
    ({"goal": [0.1]}, "goal has 3 values"),
    ({"control_rate_hz": 100.0}, "differs from the model's 50 Hz"),
    ({"command_low": [0.0, 0.0]}, "command_low needs 1 or 3 values"),
    ({"profile": "quadrotor_motors"}, "needs a 'motor_rpm' action"),
    ({"profile": "rover"}, "unknown profile"),
    ({"model_path": ""}, "model_path is empty"),
    ({"model_path": "/nonexistent/export"}, "no policy.json"),
])
def test_arm_parameter_mismatches_are_one_line_errors(models, change, match):
    base = {"profile": "arm", "model_path": str(models[1]), "joints": ["joint1", "joint2", "joint3"],
            "goal": [0.0, 0.0, 0.0]}
    with pytest.raises(ConfigError, match=match) as err:
        make_profile(NodeConfig(**{**base, **change}))
    assert "\n" not in str(err.value)


def test_quadrotor_refuses_arm_model_and_coerces_parameters(models):
    with pytest.raises(ConfigError, match="needs a 'motor_rpm' action"):
        make_profile(NodeConfig(model_path=str(models[1])))
    cfg = NodeConfig.coerce({"model_path": str(models[0] / "policy.onnx"), "control_rate_hz": 100,
                             "target": [0, 0, 1], "joints": None, "autostart": "true"})
    assert cfg.control_rate_hz == 100.0 and cfg.target == [0.0, 0.0, 1.0] and cfg.joints == [] and cfg.autostart
    assert make_profile(cfg).rate_hz == 100.0  # model_path may name policy.onnx itself
    with pytest.raises(ConfigError, match="unknown parameters: wings"):
        NodeConfig.from_dict({"wings": 2})


def test_target_and_goal_topics_must_arrive_before_commands(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), target_topic="target"))
    assert [s.msg_type for s in p.subscriptions()] == ["nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped"]
    p.on_odometry(odom(1, pos=(1.0, 1.0, 2.0)), 0.0)
    assert p.runner.step(0.0)[1] == "no target input received yet"
    target = NS(header=NS(stamp=NS(sec=1, nanosec=0)), pose=NS(position=NS(x=1.0, y=1.1, z=2.0)))
    assert p.on_target(target, 0.0)
    np.testing.assert_allclose(p.runner.view("position"), [0.0, -0.1, 0.0], atol=1e-6)
    assert p.runner.step(0.0)[1] is None  # a target never goes stale; odometry does
    arm = make_profile(NodeConfig(profile="arm", model_path=str(models[1]), joints=["joint1", "joint2", "joint3"],
                                  goal_topic="goal"))
    arm.on_joint_state(joint_state(1, ["joint1", "joint2", "joint3"], [0, 0, 0], [0, 0, 0]), 0.0)
    assert arm.runner.step(0.0)[1] == "no goal input received yet"
    arm.on_goal(NS(data=[0.1, 0.2]), 0.0)  # wrong size -> invalid goal
    assert "non-finite input in 'goal'" in arm.runner.step(0.0)[1]
    arm.on_goal(NS(data=[0.1, 0.2, 0.3]), 0.0)
    assert arm.runner.step(0.0)[1] is None
