"""Odometry frames on a strongly rotated vehicle (yaw 90 deg, roll 30 deg), for every twist-frame option and both
Crazyswarm2 backends, against an observation assembled here independently (numpy Euler matrices, not the
profile's quaternion code); plus frame checks, the geofence, live target changes and unstamped targets."""

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest

from deploy.export.examples import _export, export_hover_example
from deploy.ros2.profiles import ConfigError, NodeConfig, make_profile

from .test_profiles import odom

YAW, ROLL, PITCH = math.radians(90), math.radians(30), math.radians(-20)
OMEGA_BODY = np.array([0.4, -0.7, 1.1])  # rad/s
VEL_WORLD = np.array([0.3, -0.2, 0.5])  # m/s


def rot(axis, a):
    c, s = math.cos(a), math.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def euler_quat(roll, pitch, yaw):
    """(w, x, y, z) of R = Rz(yaw) Ry(pitch) Rx(roll), composed from axis quaternions."""
    def mul(a, b):
        w1, x1, y1, z1 = a
        w2, x2, y2, z2 = b
        return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)
    qz = (math.cos(yaw / 2), 0, 0, math.sin(yaw / 2))
    qy = (math.cos(pitch / 2), 0, math.sin(pitch / 2), 0)
    qx = (math.cos(roll / 2), math.sin(roll / 2), 0, 0)
    return mul(mul(qz, qy), qx)


R = rot("z", YAW) @ rot("x", ROLL)  # yaw 90, roll 30: the vehicle the review used
Q = euler_quat(ROLL, 0.0, YAW)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from robot_rl.config import get_preset
    from sim.quadrotor import QuadrotorHoverEnv

    hover, att = tmp_path_factory.mktemp("hover"), tmp_path_factory.mktemp("att")
    export_hover_example(hover, hidden=(8,))
    task = get_preset("crazyflie-hover-attitude").task
    task.num_envs, task.obs_angular_velocity = 16, True  # an attitude policy that observes body rates
    env = QuadrotorHoverEnv(task, seed=0)
    _export(att, env.export_spec(), (8,), 0, env.reset(seed=0)["policy"].numpy(), "fast_tanh")
    return hover, att


def check(p, rmat=R):
    v = p.runner.view
    np.testing.assert_allclose(v("rotation_matrix"), rmat.ravel(), atol=1e-6)
    np.testing.assert_allclose(v("linear_velocity"), VEL_WORLD, atol=1e-6)
    np.testing.assert_allclose(v("angular_velocity"), OMEGA_BODY, atol=1e-5)


@pytest.mark.parametrize("case", ["body_twist", "world_twist_named", "world_twist_param"])
def test_motor_profile_twist_frames_on_a_rotated_vehicle(models, case):
    body_lin, world_ang = R.T @ VEL_WORLD, R @ OMEGA_BODY
    if case == "body_twist":  # REP 105: the whole twist in child_frame_id
        p = make_profile(NodeConfig(model_path=str(models[0])))
        msg = odom(1, quat=Q, lin=body_lin, ang=OMEGA_BODY)
    elif case == "world_twist_named":  # child_frame_id = the world frame: a known frame, converted
        p = make_profile(NodeConfig(model_path=str(models[0]), odom_frame_id="world"))
        msg = odom(1, quat=Q, lin=VEL_WORLD, ang=world_ang, frame="world", child="world")
    else:  # no child frame named: the twist_frame parameter says world
        p = make_profile(NodeConfig(model_path=str(models[0]), twist_frame="world"))
        msg = odom(1, quat=Q, lin=VEL_WORLD, ang=world_ang, child="")
    assert p.on_odometry(msg, 0.0)
    check(p)


def test_cflib_backend_body_twist_gyro_in_deg_and_legacy_pitch(models):
    p = make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie", backend="cflib"))
    assert p.angular_source == "odom"
    rmat = rot("z", YAW) @ rot("y", PITCH) @ rot("x", ROLL)
    legacy_q = euler_quat(ROLL, -PITCH, YAW)  # cflib: orientation from stabilizer.pitch, the negated pitch
    msg = odom(1, quat=legacy_q, lin=rmat.T @ VEL_WORLD, ang=np.degrees(OMEGA_BODY), frame="world", child="cf1")
    assert p.on_odometry(msg, 0.0)
    check(p, rmat)


def test_cpp_backend_world_twist_and_rates_from_the_orientation(models):
    p = make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie", angular_velocity_filter_s=0.0))
    assert p.cfg.backend == "cpp" and p.angular_source == "orientation"
    dt = 0.01
    ang = np.linalg.norm(OMEGA_BODY) * dt
    axis = OMEGA_BODY / np.linalg.norm(OMEGA_BODY)
    w, x, y, z = Q
    a, (b, c, d) = math.cos(ang / 2), np.sin(ang / 2) * axis  # Q * exp(omega dt / 2): body-frame rotation
    q1 = (w * a - x * b - y * c - z * d, w * b + x * a + y * d - z * c, w * c - x * d + y * a + z * b,
          w * d + x * c - y * b + z * a)
    r1 = R @ (np.eye(3) + math.sin(ang) * skew(axis) + (1 - math.cos(ang)) * skew(axis) @ skew(axis))
    zero = (0.0, 0.0, 0.0)  # the C++ backend leaves twist.angular zero
    assert p.on_odometry(odom(10**9, quat=Q, lin=VEL_WORLD, ang=zero, frame="cf1", child=""), 0.0)
    assert np.isnan(p.runner.view("angular_velocity")).all() and p.runner.step(0.0)[0] is None  # no rate yet
    assert p.on_odometry(odom(10**9 + int(dt * 1e9), quat=q1, lin=VEL_WORLD, ang=zero, frame="cf1", child=""), 0.0)
    check(p, r1)


def skew(v):
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def test_backend_parameters_are_checked(models):
    with pytest.raises(ConfigError, match="backend 'cpp' publishes no angular rates"):
        make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie", angular_velocity_source="odom"))
    with pytest.raises(ConfigError, match="backend must be one of"):
        make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie", backend="rust"))


def test_frame_mismatch_refuses_the_message_with_the_reason(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), input_timeout_s=0.1))
    assert p.on_odometry(odom(1), 0.0)
    assert not p.on_odometry(odom(2, child="world"), 0.0)  # world twist under the odom header: ambiguous
    assert not p.on_odometry(odom(3, frame="map"), 0.0)
    assert p.runner.sources["odom"].rejected == 2
    reason = p.runner.step(0.5)[1]
    assert "stale odom" in reason and "header.frame_id 'map', expected 'odom'" in reason
    cf = make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie", backend="cflib"))
    assert not cf.on_odometry(odom(1, frame="cf1", child=""), 0.0)  # a C++-backend message on a cflib config
    assert "expected 'world'" in cf.runner.sources["odom"].last_reject
    anyf = make_profile(NodeConfig(model_path=str(models[0]), odom_frame_id="*", odom_child_frame_id="*"))
    assert anyf.on_odometry(odom(1, frame="map", child="fcu"), 0.0)


def test_geofence_cuts_the_training_box_only_clamps(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), target=[0.0, 0.0, 1.0], geofence_min=[-2.0, -2.0, 0.0],
                                geofence_max=[2.0, 2.0, 2.0]))
    assert p.on_odometry(odom(1, pos=(1.5, 0.0, 1.0)), 0.0)  # 1.5 m off target: outside the 0.6 m box
    cmd, reason = p.runner.step(0.0)
    assert reason is None and cmd.max() > 0 and p.runner.stats()["clamped_now"] == "position"
    assert p.on_odometry(odom(2, pos=(2.1, 0.0, 1.0)), 0.0)
    cmd, reason = p.runner.step(0.0)
    assert reason.startswith("geofence: position (2.10, 0.00, 1.00) m outside") and np.all(cmd == 0.0)
    assert p.on_odometry(odom(3, pos=(0.0, 0.0, 1.0)), 0.0)
    assert p.runner.step(0.0)[1].startswith("geofence")  # latched: back inside does not restart the motors
    cf = make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie"))
    for k in range(2):  # two poses 10 ms apart: the C++ backend's rates come from the orientation
        assert cf.on_odometry(odom(10**9 + k * 10**7, pos=(1.0, 0.0, 1.0), frame="cf1", child=""), 0.0)
    assert cf.runner.step(0.0)[1] is None  # the Crazyflie keeps its setpoint stream outside the box
    assert cf.on_odometry(odom(10**9 + 2 * 10**7, pos=(1.0, 0.0, 3.0), frame="cf1", child=""), 0.0)
    assert cf.runner.step(0.0) == (None, cf.runner.estopped) and "geofence" in cf.runner.estopped
    with pytest.raises(ConfigError, match="geofence_min/geofence_max"):
        make_profile(NodeConfig(model_path=str(models[0]), geofence_min=[0.0, 0.0, 3.0]))


def test_live_target_and_refused_parameters(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), target=[0.0, 0.0, 1.0]))
    p.on_odometry(odom(1, pos=(0.2, 0.0, 1.0)), 0.0)
    assert p.set_live("target", [0.2, 0.1, 1.5]) is None
    np.testing.assert_allclose(p.runner.view("position"), [0.0, -0.1, -0.5], atol=1e-6)
    assert "3 finite values" in p.set_live("target", [0.0, math.nan, 1.0])
    assert "read at configure" in p.set_live("max_command_delta", [100.0])
    topic = make_profile(NodeConfig(model_path=str(models[0]), target_topic="goal_pose"))
    assert "comes from target_topic" in topic.set_live("target", [0.0, 0.0, 1.0])


def test_unstamped_target_is_applied_with_a_notice(models):
    p = make_profile(NodeConfig(model_path=str(models[0]), target_topic="target"))
    p.on_odometry(odom(1, pos=(1.0, 1.0, 2.0)), 0.0)
    target = lambda x: NS(header=NS(stamp=NS(sec=0, nanosec=0)), pose=NS(position=NS(x=x, y=1.0, z=2.0)))  # noqa
    assert p.on_target(target(1.1), 0.0) and p.on_target(target(1.2), 0.0)
    np.testing.assert_allclose(p.runner.view("position"), [-0.2, 0.0, 0.0], atol=1e-6)
    assert p.runner.notices == ["target messages are unstamped (header.stamp = 0): applied in arrival order"]
    assert p.runner.step(0.0)[1] is None


@pytest.mark.parametrize("backend", ["cpp", "cflib"])
def test_crazyflie_sim_publishes_what_the_profile_expects_of_each_backend(models, backend):
    """``robot-rl crazyflie-sim --backend`` (written from Crazyswarm2's servers, separately from the profile)."""
    from robot_rl.commands.crazyflie_sim import backend_odometry

    rmat = rot("z", YAW) @ rot("y", PITCH) @ rot("x", ROLL)
    q = euler_quat(ROLL, PITCH, YAW)
    sim = {"quaternion": list(q), "linear_velocity_body": list(rmat.T @ VEL_WORLD),
           "angular_velocity": list(OMEGA_BODY)}
    frame, child, qo, lin, ang = backend_odometry(sim, backend, "cf1")
    p = make_profile(NodeConfig(model_path=str(models[1]), profile="crazyflie", backend=backend,
                                angular_velocity_filter_s=0.0))
    assert p.on_odometry(odom(10**9, quat=qo, lin=lin, ang=ang, frame=frame, child=child), 0.0)
    v = p.runner.view
    np.testing.assert_allclose(v("rotation_matrix"), rmat.ravel(), atol=1e-6)
    np.testing.assert_allclose(v("linear_velocity"), VEL_WORLD, atol=1e-6)
    if backend == "cflib":
        np.testing.assert_allclose(v("angular_velocity"), OMEGA_BODY, atol=1e-5)
    else:
        assert np.isnan(v("angular_velocity")).all()  # from the orientation: needs a second message
