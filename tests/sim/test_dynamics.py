import math

import pytest
import torch

from sim.quadrotor import crazyflie_params, state_derivative, step_dynamics

P = crazyflie_params()


def rest_state(n: int = 1, rpm: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    s = torch.zeros(n, 17, dtype=dtype)
    s[:, 3] = 1.0
    s[:, 13:] = rpm
    return s


def rpm_action(rpm: float, dtype=torch.float64) -> torch.Tensor:
    return torch.full((1, 4), 2 * rpm / P.rpm_max - 1, dtype=dtype)


def test_paper_parameters():
    assert P.mass == 0.027 and P.thrust_coefficient == 3.16e-10 and P.motor_time_constant == 0.15
    assert P.hover_rpm == pytest.approx(14475.8, abs=0.05)
    assert P.hover_action == pytest.approx(0.334, abs=1e-3)
    assert 4 * P.thrust_coefficient * P.rpm_max**2 / (P.mass * 9.81) == pytest.approx(2.25, abs=0.01)


def test_hover_holds_position_for_5s():
    # The exact hover speed is 14475.81 RPM; commanding the rounded 14475.8 already drifts 2e-4 m in 5 s
    # (thrust 1.6e-6 short of the weight), so the 1e-6 m check uses the exact value.
    hover = P.hover_rpm
    assert round(hover, 1) == 14475.8
    s = rest_state(rpm=hover)
    a = rpm_action(hover)
    for _ in range(500):
        s = step_dynamics(s, a, P, 0.01)
    assert s[0, :3].abs().max() < 1e-6
    assert s[0, 13:].sub(hover).abs().max() < 1e-6
    assert (s[0, 3:7] - torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)).abs().max() < 1e-12


def test_free_fall_matches_gt2_over_2():
    s = rest_state(rpm=0.0)
    a = -torch.ones(1, 4, dtype=torch.float64)
    for _ in range(100):
        s = step_dynamics(s, a, P, 0.01)
    assert s[0, 2].item() == pytest.approx(-0.5 * 9.81 * 1.0**2, rel=1e-9)
    assert s[0, 9].item() == pytest.approx(-9.81, rel=1e-9)
    assert s[0, :2].abs().max() == 0


@pytest.mark.parametrize("rotor", range(4))
def test_single_rotor_torque_sign_and_axis(rotor):
    s = rest_state(rpm=P.hover_rpm)
    s[0, 13 + rotor] += 1000.0
    d = state_derivative(s, s[:, 13:], P.tensors(1, dtype=torch.float64))
    w_dot = d[0, 10:13]
    r = torch.tensor(P.rotor_positions[rotor], dtype=torch.float64)
    df = P.thrust_coefficient * ((P.hover_rpm + 1000.0) ** 2 - P.hover_rpm**2)
    # extra torque = r x (0, 0, df) + yaw_sign * k_m * df e_z
    expected = torch.tensor([r[1] * df, -r[0] * df, P.yaw_signs[rotor] * P.torque_coefficient * df],
                            dtype=torch.float64) / torch.tensor(P.inertia, dtype=torch.float64)
    torch.testing.assert_close(w_dot, expected, rtol=1e-9, atol=1e-12)
    assert torch.sign(w_dot[0]) == math.copysign(1, r[1]) and torch.sign(w_dot[1]) == -math.copysign(1, r[0])


def test_motor_first_order_time_constant():
    s = rest_state(rpm=0.0)
    a = rpm_action(20000.0)
    for _ in range(15):  # 0.15 s = one time constant
        s = step_dynamics(s, a, P, 0.01)
    assert s[0, 13].item() == pytest.approx(20000.0 * (1 - math.exp(-1)), rel=1e-6)


def test_quaternion_stays_unit():
    g = torch.Generator().manual_seed(0)
    s = rest_state(64, rpm=P.hover_rpm, dtype=torch.float32)
    s[:, 10:13] = torch.randn(64, 3, generator=g) * 5
    for _ in range(300):
        s = step_dynamics(s, torch.rand(64, 4, generator=g) * 2 - 1, P, 0.01)
    assert (s[:, 3:7].norm(dim=-1) - 1).abs().max() < 1e-6


def test_rk4_global_error_is_fourth_order():
    g = torch.Generator().manual_seed(1)
    s0 = rest_state(8, rpm=P.hover_rpm)
    s0[:, 10:13] = torch.randn(8, 3, generator=g, dtype=torch.float64) * 3
    s0[:, 7:10] = torch.randn(8, 3, generator=g, dtype=torch.float64)
    a = torch.rand(8, 4, generator=g, dtype=torch.float64) * 0.4 + 0.1

    def run(dt: float) -> torch.Tensor:
        s = s0.clone()
        for _ in range(round(0.32 / dt)):
            s = step_dynamics(s, a, P, dt)
        return s

    ref = run(0.32 / 2048)
    e1 = (run(0.02) - ref)[:, :13].abs().max()
    e2 = (run(0.01) - ref)[:, :13].abs().max()
    assert 12 < (e1 / e2).item() < 20


def test_step_dynamics_rejects_bad_shapes():
    with pytest.raises(ValueError, match="state must be"):
        step_dynamics(torch.zeros(3, 16), torch.zeros(3, 4), P)
    with pytest.raises(ValueError, match="action must be"):
        step_dynamics(torch.zeros(3, 17), torch.zeros(2, 4), P)


def test_rotor_speed_for_thrust_solves_the_thrust_curve():
    from sim.quadrotor.dynamics import rotor_speed_for_thrust

    kq = torch.tensor([3.16e-10, 2.5e-10], dtype=torch.float64)
    kl = torch.tensor([0.0, 1.2e-6], dtype=torch.float64)
    thrust = torch.tensor([0.0795, 0.11], dtype=torch.float64)
    w = rotor_speed_for_thrust(thrust, kq, kl)
    assert torch.all(w > 0)
    torch.testing.assert_close(kq * w * w + kl * w, thrust, rtol=1e-12, atol=0.0)
    # no linear term (None, or a zero one): the square root of thrust / kq
    w0 = rotor_speed_for_thrust(thrust, kq)
    torch.testing.assert_close(kq * w0 * w0, thrust, rtol=1e-12, atol=0.0)
    assert w0[0].item() == pytest.approx(math.sqrt(0.0795 / 3.16e-10), rel=1e-12)
    assert w[0].item() == pytest.approx(w0[0].item(), rel=1e-12)
    assert w[1].item() < w0[1].item()  # a linear term adds thrust, so less speed is needed
