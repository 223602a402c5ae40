"""The ``crazyflie`` node profile without ROS: Twist conventions, thrust clamping, unlock, pose velocity."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest

from deploy.export.examples import export_hover_example
from deploy.ros2.crazyflie import flip_pitch
from deploy.ros2.profiles import ConfigError, NodeConfig, make_profile

from .test_profiles import odom as _odom


def odom(*args, **kwargs):
    """Odometry as Crazyswarm2's C++ backend stamps its frames (header.frame_id = the robot, no child frame)."""
    return _odom(*args, **{"frame": "cf1", "child": "", **kwargs})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("cf") / "att"
    export_hover_example(d, hidden=(16,), attitude=True)
    return d


def twist() -> NS:
    return NS(linear=NS(x=0.0, y=0.0, z=0.0), angular=NS(x=0.0, y=0.0, z=0.0))


def pose(stamp_ns: int, pos, quat=(1.0, 0.0, 0.0, 0.0)) -> NS:
    return NS(header=NS(stamp=NS(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="world"),
              pose=NS(position=NS(x=pos[0], y=pos[1], z=pos[2]),
                      orientation=NS(w=quat[0], x=quat[1], y=quat[2], z=quat[3])))


def test_topics_and_twist_fields_follow_crazyswarm2(model):
    prof = make_profile(NodeConfig(model_path=str(model), profile="crazyflie", cf_name="cf7"))
    assert prof.command_topic == "cf7/cmd_vel_legacy" and prof.emergency_service == "cf7/emergency"
    assert [s.topic for s in prof.subscriptions()] == ["cf7/odom"]
    assert prof.command_type == "geometry_msgs/msg/Twist"
    msg = prof.fill(twist(), np.array([5.0, -3.0, 30.0, 41000.0], dtype=np.float32))
    # roll -> linear.y, legacy pitch -> linear.x, yaw rate -> angular.z, thrust -> linear.z
    assert (msg.linear.y, msg.linear.x, msg.angular.z, msg.linear.z) == (5.0, -3.0, 30.0, 41000.0)
    assert prof.fill(twist(), np.array([0, 0, 0, 70000.0]))
    assert prof.fill(twist(), np.array([0, 0, 0, 70000.0])).linear.z == 60000.0  # Crazyswarm2's clamp
    assert prof.fill(twist(), np.array([0, 0, 0, -5.0])).linear.z == 0.0
    unlock = prof.unlock_message(prof.fill(twist(), np.array([1.0, 1.0, 1.0, 40000.0])))
    assert (unlock.linear.x, unlock.linear.y, unlock.linear.z, unlock.angular.z) == (0.0, 0.0, 0.0, 0.0)
    off = make_profile(NodeConfig(model_path=str(model), profile="crazyflie", unlock_thrust=False))
    assert off.unlock_message(twist()) is None


def test_commands_are_the_policy_setpoints_and_stale_state_stops_the_stream(model):
    prof = make_profile(NodeConfig(model_path=str(model), profile="crazyflie", target=[0.0, 0.0, 1.0],
                                   input_timeout_s=0.1))
    r = prof.runner
    assert prof.on_odometry(odom(1, pos=(0.1, 0.0, 1.0)), 10.0)
    act = r.forward_batch(r.obs.copy())[0]
    cmd, reason = r.step(10.01)
    assert reason is None
    spec = r.spec["action"]
    expected = np.asarray(spec["offset"]) + np.asarray(spec["scale"]) * np.clip(act, -1, 1)
    np.testing.assert_allclose(cmd, expected, rtol=1e-6)
    cmd, reason = r.step(10.5)  # odometry 500 ms old: no command (the stream stops)
    assert cmd is None and reason.startswith("stale odom")


def test_pose_source_estimates_world_velocity(model):
    prof = make_profile(NodeConfig(model_path=str(model), profile="crazyflie", state_source="pose",
                                   velocity_filter_s=0.0))
    assert [s.topic for s in prof.subscriptions()] == ["cf1/pose"]
    vel = prof.runner.view("linear_velocity")
    prof.on_pose(pose(10**9, (0.0, 0.0, 1.0)), 1.0)
    assert np.isnan(vel).all()  # one pose: no velocity yet, the step stays safe
    assert prof.runner.step(1.001)[0] is None
    prof.on_pose(pose(10**9 + 10**7, (0.003, -0.001, 1.002)), 1.01)
    np.testing.assert_allclose(vel, [0.3, -0.1, 0.2], rtol=1e-4)
    filt = make_profile(NodeConfig(model_path=str(model), profile="crazyflie", state_source="pose",
                                   velocity_filter_s=0.01))
    filt.on_pose(pose(10**9, (0.0, 0.0, 1.0)), 1.0)
    filt.on_pose(pose(10**9 + 10**7, (0.003, 0.0, 1.0)), 1.01)
    filt.on_pose(pose(10**9 + 2 * 10**7, (0.006, 0.0, 1.0)), 1.02)
    assert filt.runner.view("linear_velocity")[0] == pytest.approx(0.3, rel=1e-4)  # steady: the filter is exact


def test_legacy_pitch_flip():
    half = math.radians(10) / 2
    q = (math.cos(half), 0.0, math.sin(half), 0.0)  # 10 deg nose down
    w, x, y, z = flip_pitch(*q)
    assert (w, x, y, z) == pytest.approx((q[0], 0.0, -q[2], 0.0), abs=1e-12)
    yawed = (0.9, 0.1, 0.2, 0.3)
    n = math.sqrt(sum(v * v for v in yawed))
    yawed = tuple(v / n for v in yawed)
    assert flip_pitch(*flip_pitch(*yawed)) == pytest.approx(yawed, abs=1e-12)


def test_bad_parameters_are_one_line_errors(model, tmp_path):
    with pytest.raises(ConfigError, match="state_source must be"):
        make_profile(NodeConfig(model_path=str(model), profile="crazyflie", state_source="mocap"))
    with pytest.raises(ConfigError, match="cf_name is empty"):
        make_profile(NodeConfig(model_path=str(model), profile="crazyflie", cf_name="/"))
    motors = tmp_path / "motors"
    export_hover_example(motors, hidden=(8,))
    with pytest.raises(ConfigError, match="needs a 'attitude_thrust' action"):
        make_profile(NodeConfig(model_path=str(motors), profile="crazyflie"))
