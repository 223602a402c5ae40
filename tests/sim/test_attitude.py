"""The Crazyflie onboard attitude/rate PID model and the attitude_thrust action level."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig, crazyflie_params
from sim.quadrotor.attitude import (
    AttitudeController,
    AttitudeControllerParams,
    controller_params,
    firmware_attitude,
)

PRM = controller_params(crazyflie_params())


def quiet_cfg(**kw) -> QuadrotorTaskConfig:
    """Start exactly at the target, level, at hover speed, no noise, no disturbance, fixed 10 ms latency."""
    cfg = QuadrotorTaskConfig(num_envs=4, action_level="attitude_thrust", noise=False, init_guidance=1.0,
                              init_max_linear_velocity=0.0, init_max_angular_velocity=0.0,
                              init_rpm=crazyflie_params().hover_rpm, disturbance_force_std_g=0.0,
                              disturbance_torque_std=0.0, obs_angular_velocity=False, action_history=4)
    cfg.attitude.latency_ms = (10.0, 10.0)
    return replace(cfg, **kw)


def test_gains_come_from_the_frame_yaml():
    assert PRM.rate_hz == 500.0
    assert PRM.attitude.kp == (6.0, 6.0, 6.0) and PRM.attitude.ki == (3.0, 3.0, 1.0)
    assert PRM.rate.kp == (250.0, 250.0, 120.0) and PRM.rate.kd == (2.5, 2.5, 0.0)
    assert PRM.rate.i_limit == (33.3, 33.3, 166.7) and PRM.thrust_max == 60000.0


def test_bad_gain_section_is_one_line_error():
    with pytest.raises(ValueError, match=r"attitude_controller.rate.kp: expected 3 numbers"):
        AttitudeControllerParams.from_dict({"rate_hz": 500, "attitude": PRM.to_dict()["attitude"],
                                            "rate": {"kp": [1, 2], "ki": [0, 0, 0], "kd": [0, 0, 0],
                                                     "i_limit": [0, 0, 0]}})


def test_one_tick_by_hand():
    """Cascade output of one tick from a level, resting state: P + I of both loops, D on the measurement."""
    ctl = AttitudeController(PRM, dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    w = torch.zeros(1, 3, dtype=torch.float64)
    st = ctl.reset_state(q, w)
    sp = torch.tensor([[4.0, -2.0, 10.0, 40000.0]], dtype=torch.float64)  # roll, legacy pitch, yaw rate, thrust
    st, pwm = ctl.step(st, sp, q, w)
    dt = 1 / 500
    yaw_des = 10.0 * dt
    err = torch.tensor([4.0, -2.0, yaw_des], dtype=torch.float64)
    ki_a, kp_a = torch.tensor(PRM.attitude.ki, dtype=torch.float64), torch.tensor(PRM.attitude.kp, dtype=torch.float64)
    rate_des = kp_a * err + ki_a * err * dt
    kp_r, ki_r = torch.tensor(PRM.rate.kp, dtype=torch.float64), torch.tensor(PRM.rate.ki, dtype=torch.float64)
    out = kp_r * rate_des + ki_r * rate_des * dt  # gyro 0 -> no D term
    r, p, y = out.tolist()
    expected = [40000 - r / 2 + p / 2 - y, 40000 - r / 2 - p / 2 + y, 40000 + r / 2 - p / 2 - y,
                40000 + r / 2 + p / 2 + y]
    assert pwm[0].tolist() == pytest.approx(expected, rel=1e-12)
    assert st.yaw_desired.item() == pytest.approx(yaw_des)


def test_integral_is_clamped_and_derivative_uses_the_measurement():
    ctl = AttitudeController(PRM, dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    st = ctl.reset_state(q, torch.zeros(1, 3, dtype=torch.float64))
    sp = torch.tensor([[20.0, 0.0, 0.0, 40000.0]], dtype=torch.float64)
    for _ in range(1000):  # 2 s of a 20 deg error without motion: the angle integral saturates at 20
        st, _ = ctl.step(st, sp, q, torch.zeros(1, 3, dtype=torch.float64))
    assert st.att_integ[0, 0].item() == pytest.approx(20.0)
    assert st.rate_integ[0, 0].item() == pytest.approx(33.3)
    # D acts on the measurement: with only kd left, a gyro change of 5 deg/s in one tick gives -kd * 5 / dt
    d_only = replace(PRM, attitude=replace(PRM.attitude, kp=(0.0,) * 3, ki=(0.0,) * 3, kd=(0.0,) * 3),
                     rate=replace(PRM.rate, kp=(0.0,) * 3, ki=(0.0,) * 3))
    ctl = AttitudeController(d_only, dtype=torch.float64)
    st = ctl.reset_state(q, torch.zeros(1, 3, dtype=torch.float64))
    w = torch.tensor([[math.radians(5.0), 0.0, 0.0]], dtype=torch.float64)
    _, pwm = ctl.step(st, sp, q, w)
    roll_out = (pwm[0, 2] - pwm[0, 1]).item()  # m3 - m2 = roll output (no yaw output here)
    assert roll_out == pytest.approx(-2.5 * 5.0 * 500, rel=1e-9)


def test_thrust_clamping():
    ctl = AttitudeController(PRM, dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 4, dtype=torch.float64)
    w = torch.zeros(4, 3, dtype=torch.float64)
    st = ctl.reset_state(q, w)
    sp = torch.zeros(4, 4, dtype=torch.float64)
    sp[:, 3] = torch.tensor([999.0, 1000.0, 60000.0, 65000.0])
    _, pwm = ctl.step(st, sp, q, w)
    assert pwm[0].tolist() == [0.0] * 4  # below MIN_THRUST: motors off
    assert pwm[1].tolist() == [1000.0] * 4
    assert pwm[2].tolist() == [60000.0] * 4 and pwm[3].tolist() == [60000.0] * 4  # capped at MAX_THRUST
    # a large roll demand at full thrust: motors are lowered together (attitude kept), then clamped to [0, 65535]
    sp2 = torch.tensor([[0.0, 0.0, 0.0, 60000.0]], dtype=torch.float64)
    st1 = ctl.reset_state(q[:1], w[:1])
    _, pwm2 = ctl.step(st1, sp2, q[:1], torch.tensor([[math.radians(-200.0), 0.0, 0.0]], dtype=torch.float64))
    assert pwm2.max().item() == pytest.approx(65535.0) and pwm2.min().item() >= 0.0


def test_firmware_attitude_conventions():
    """Legacy pitch: positive = nose up; gyro pitch negated; roll/yaw right-handed."""
    half = math.radians(10.0) / 2
    nose_down = torch.tensor([[math.cos(half), 0.0, math.sin(half), 0.0]])  # +10 deg about body y
    ang, _ = firmware_attitude(nose_down, torch.zeros(1, 3))
    assert ang[0].tolist() == pytest.approx([0.0, -10.0, 0.0], abs=1e-4)
    right_down = torch.tensor([[math.cos(half), math.sin(half), 0.0, 0.0]])
    ang, _ = firmware_attitude(right_down, torch.zeros(1, 3))
    assert ang[0].tolist() == pytest.approx([10.0, 0.0, 0.0], abs=1e-4)
    _, gyro = firmware_attitude(torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0.1, 0.2, 0.3]]))
    assert gyro[0].tolist() == pytest.approx([math.degrees(0.1), -math.degrees(0.2), math.degrees(0.3)], rel=1e-6)


def test_hover_setpoint_holds_exactly():
    env = QuadrotorHoverEnv(quiet_cfg(), seed=0)
    a = torch.tensor(env.hover_action).repeat(4, 1)
    for _ in range(200):
        env.step(a)
    assert env.state[:, :3].abs().max() < 1e-4 and (env.state[:, 3] - 1).abs().max() < 1e-6


def setpoint_response(env: QuadrotorHoverEnv, channel: int, value: float, steps: int) -> torch.Tensor:
    """Firmware attitude (deg) after each of ``steps`` control steps with ``channel`` set to ``value``."""
    a = torch.tensor(env.hover_action).repeat(env.num_envs, 1)
    a[:, channel] = value
    out = []
    for _ in range(steps):
        env.step(a)
        out.append(firmware_attitude(env.state[:, 3:7], env.state[:, 10:13])[0][0])
    return torch.stack(out)


@pytest.mark.parametrize("kp", [6.0, 12.0])
def test_roll_step_response_matches_the_gains(tmp_path, kp):
    """A 10 deg roll step: the angle loop's P gain sets the speed (63 % near latency + motor lag + 1/kp)."""
    import yaml

    data = yaml.safe_load((__import__("pathlib").Path(__import__("sim.quadrotor.params", fromlist=["x"]).__file__)
                           .parent / "crazyflie.yaml").read_text())
    data["attitude_controller"]["attitude"]["kp"] = [kp, kp, 6.0]
    frame = tmp_path / "cf.yaml"
    frame.write_text(yaml.safe_dump(data))
    env = QuadrotorHoverEnv(quiet_cfg(frame=str(frame)), seed=0)
    roll = setpoint_response(env, 0, 0.5, 150)[:, 0]  # 0.5 * 20 deg
    t63 = (int(torch.nonzero(roll > 6.32)[0]) + 1) * 0.01
    assert roll[-1].item() == pytest.approx(10.0, abs=0.3)  # integral action removes the steady-state error
    assert abs(roll).max() < 12.0  # no large overshoot
    expected = 0.01 + 1.0 / kp  # radio latency + the angle loop's time constant (the rate loop is much faster)
    assert t63 == pytest.approx(expected, rel=0.25), t63


@pytest.mark.parametrize(("channel", "axis", "accel_axis", "sign"), [
    (0, 0, 1, -1.0),  # roll right side down -> accelerate towards -y (right)
    (1, 1, 0, -1.0),  # legacy pitch nose up -> accelerate towards -x (backwards)
])
def test_setpoint_signs_move_the_drone_as_on_hardware(channel, axis, accel_axis, sign):
    env = QuadrotorHoverEnv(quiet_cfg(), seed=0)
    ang = setpoint_response(env, channel, 0.25, 40)  # +5 deg
    assert ang[-1, axis].item() > 3.0
    assert sign * env.state[0, 7 + accel_axis].item() > 0.05


def test_yaw_rate_turns_counter_clockwise():
    env = QuadrotorHoverEnv(quiet_cfg(), seed=0)
    ang = setpoint_response(env, 2, 0.5, 100)  # +45 deg/s for 1 s
    assert 20.0 < ang[-1, 2].item() < 50.0


def test_latency_delays_the_response():
    slow_cfg = quiet_cfg()
    slow_cfg.attitude.latency_ms = (30.0, 30.0)
    fast, slow = QuadrotorHoverEnv(quiet_cfg(), seed=0), QuadrotorHoverEnv(slow_cfg, seed=0)
    r_fast = setpoint_response(fast, 0, 0.5, 10)[:, 0]
    r_slow = setpoint_response(slow, 0, 0.5, 10)[:, 0]
    assert r_slow[1].item() == pytest.approx(0.0, abs=1e-6)  # packet still in flight after 20 ms
    assert r_fast[1].item() > 1e-3 and r_slow[4].item() > 1e-3
    # 20 ms more latency shifts the response by exactly 2 control steps
    assert torch.allclose(r_slow[2:], r_fast[:-2], atol=1e-4)


def test_env_is_differentiable_and_resumable():
    env = QuadrotorHoverEnv(quiet_cfg(init_guidance=0.0), seed=3)
    a = torch.tensor(env.hover_action).repeat(4, 1).requires_grad_(True)
    obs, r, *_ = env.step(a)
    obs, r2, *_ = env.step(a * 1.01)
    (r + r2).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    env.detach()
    saved = env.state_dict()
    b = torch.rand(4, 4) * 0.2 - 0.1
    x1 = [env.step(b)[0]["policy"] for _ in range(3)]
    env.load_state_dict(saved)
    x2 = [env.step(b)[0]["policy"] for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(x1, x2, strict=True))


def test_export_spec_describes_the_twist():
    env = QuadrotorHoverEnv(quiet_cfg(), seed=0)
    spec = env.export_spec()
    act = spec["action"]
    assert act["type"] == "attitude_thrust" and act["scale"] == [20.0, 20.0, 90.0, 20000.0]
    assert act["offset"] == [0.0, 0.0, 0.0, 40000.0]
    assert [c["twist_field"] for c in act["channels"]] == ["linear.y", "linear.x", "angular.z", "linear.z"]
    assert [c["name"] for c in spec["observation"]] == ["position", "rotation_matrix", "linear_velocity",
                                                         "action_history"]
    assert spec["control_rate_hz"] == 100.0


def test_frame_without_controller_is_refused(tmp_path):
    text = (__import__("pathlib").Path(__import__("sim.quadrotor.params", fromlist=["x"]).__file__).parent
            / "crazyflie.yaml").read_text().split("attitude_controller:")[0]
    frame = tmp_path / "bare.yaml"
    frame.write_text(text)
    with pytest.raises(ValueError, match="has no attitude_controller section"):
        QuadrotorHoverEnv(quiet_cfg(frame=str(frame)))
