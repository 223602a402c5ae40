"""The simulated Crazyflie behind Crazyswarm2's topics: Twist decoding, commander rules, vehicle, hold check."""

import pytest

from sim.quadrotor.crazyflie_link import (
    CommanderModel,
    SimulatedCrazyflie,
    VehicleConfig,
    hold_check,
    twist_to_setpoint,
)


def test_twist_reaches_the_firmware_as_crazyswarm2_and_cflib_send_it():
    # roll = linear.y; Crazyswarm2 pitch = -linear.x, cflib negates again -> firmware pitch = linear.x
    assert twist_to_setpoint((3.0, -2.0, 41000.7), 15.0) == (-2.0, 3.0, 15.0, 41000)
    assert twist_to_setpoint((0.0, 0.0, 70000.0), 0.0)[3] == 60000
    assert twist_to_setpoint((0.0, 0.0, -3.0), 0.0)[3] == 0


def test_commander_thrust_lock_watchdog_and_emergency():
    c = CommanderModel()
    assert c.current(0.0) is None  # no setpoint yet: the high-level hover holds
    c.receive((1.0, 2.0, 3.0, 40000), 0.0)
    assert c.current(0.01) == (1.0, 2.0, 3.0, 0.0)  # thrust locked until a zero-thrust setpoint
    c.receive((0.0, 0.0, 0.0, 0), 0.02)
    c.receive((1.0, 2.0, 3.0, 40000), 0.03)
    assert c.current(0.04) == (1.0, 2.0, 3.0, 40000.0)
    assert c.current(0.03 + 0.6) == (0.0, 0.0, 0.0, 40000.0)  # > 500 ms: level out, keep thrust
    assert c.current(0.03 + 2.1) == (0.0, 0.0, 0.0, 0.0)  # > 2 s: motors off
    c.receive((1.0, 2.0, 3.0, 40000), 3.0)
    c.emergency = True
    assert c.current(3.01) == (0.0, 0.0, 0.0, 0.0)


def test_vehicle_hovers_until_the_first_setpoint_then_flies_the_controller_model():
    v = SimulatedCrazyflie(VehicleConfig(start=(0.5, -0.5, 1.0)))
    for _ in range(50):
        v.step(None)
    odo = v.odometry()
    assert odo["position"] == pytest.approx([0.5, -0.5, 1.0]) and odo["quaternion"] == pytest.approx([1, 0, 0, 0])
    hover = v.level.hover_setpoint().tolist()
    for _ in range(100):
        v.step(tuple(hover))
    assert v.odometry()["position"] == pytest.approx([0.5, -0.5, 1.0], abs=1e-3)
    for _ in range(30):  # roll right: the drone moves to -y, and the body-frame velocity says so too
        v.step((10.0, 0.0, 0.0, hover[3]))
    odo = v.odometry()
    assert odo["position"][1] < -0.5 - 1e-3 and odo["linear_velocity_body"][1] < 0
    for _ in range(300):  # motors off: falls to the ground plane and stays there
        v.step((0.0, 0.0, 0.0, 0.0))
    assert v.on_ground and v.odometry()["position"][2] == 0.0


def test_hold_check():
    times = [i * 0.01 for i in range(2000)]
    errs = [0.3 if t < 4.0 else 0.05 for t in times]  # step at 3 s, inside 0.1 m from 4 s on
    ok = hold_check(times, errs, step_time=3.0, hold_s=10.0, settle_s=5.0)
    assert ok["passed"] and ok["settle_time_s"] == pytest.approx(1.0, abs=0.011)
    assert ok["hold_max_error_m"] == pytest.approx(0.05)
    overshoot = [0.08 if 4.0 <= t < 4.2 else (0.15 if 4.2 <= t < 4.5 else e)
                 for t, e in zip(times, errs, strict=True)]
    late = hold_check(times, overshoot, 3.0)  # passing through the radius while overshooting is not settling
    assert late["passed"] and late["settle_time_s"] == pytest.approx(1.5, abs=0.011)
    errs[1200] = 0.2  # one excursion at 12 s: no 10 s window inside the radius starts within 5 s of the step
    assert not hold_check(times, errs, 3.0)["passed"]
    assert not hold_check(times[:1300], [0.05] * 1300, 3.0)["passed"]  # too short to cover 10 s
