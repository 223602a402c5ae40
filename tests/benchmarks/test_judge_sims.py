"""benchmarks/judge_sims.py: RotorPy's and L2F's physics under our task. Given our paper model as their vehicle,
both fly the same episodes as our RK4 reference (frames, quaternion order, rotor order, yaw signs, units; RotorPy
also the disturbances); given their own Crazyflies, exports are judged on models nobody here wrote."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("rotorpy")
l2f = pytest.importorskip("l2f")

from benchmarks.judge_sims import (  # noqa: E402
    L2F_RPM_SCALE,
    RPM_PER_RAD_S,
    TO_ROTORPY,
    L2fHoverEnv,
    RotorpyHoverEnv,
    fly,
    judge_env,
    rotorpy_vehicle,
)
from sim.quadrotor.config import QuadrotorTaskConfig  # noqa: E402
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM  # noqa: E402
from sim.quadrotor.task import QuadrotorHoverEnv  # noqa: E402


def _paper_model_as_rotorpy(params) -> dict:
    """Our paper model written as a RotorPy vehicle file (no aerodynamics), rotors in RotorPy's order."""
    kq = params.thrust_coefficient * RPM_PER_RAD_S ** 2
    return {"mass": params.mass, "Ixx": params.inertia[0], "Iyy": params.inertia[1], "Izz": params.inertia[2],
            "Ixy": 0.0, "Iyz": 0.0, "Ixz": 0.0, "num_rotors": 4,
            "rotor_pos": {f"r{k + 1}": np.array(params.rotor_positions[i]) for k, i in enumerate(TO_ROTORPY)},
            "rotor_directions": np.array([params.yaw_signs[i] for i in TO_ROTORPY]),
            "k_eta": kq, "k_m": params.torque_coefficient * kq, "tau_m": params.motor_time_constant,
            "rotor_speed_min": params.rpm_min / RPM_PER_RAD_S, "rotor_speed_max": params.rpm_max / RPM_PER_RAD_S}


def _fly_side_by_side(ours: QuadrotorHoverEnv, theirs: QuadrotorHoverEnv, steps: int = 15) -> None:
    """Rotor-by-rotor different commands (roll, pitch and yaw all move) in both; the judge's integrator (RotorPy:
    adaptive RK45) against our fixed-step RK4 stays within float32 rounding of the state."""
    gen = torch.Generator().manual_seed(1)
    hover = ours.params.hover_action
    for t in range(steps):
        a = (hover + 0.3 * torch.randn(ours.num_envs, 4, generator=gen)).clamp(-1, 1)
        ours.step(a)
        theirs.step(a)
        assert float((theirs.state[:, POS] - ours.state[:, POS]).abs().max()) < 1e-5, t
        assert float((theirs.state[:, OMEGA] - ours.state[:, OMEGA]).abs().max()) < 1e-3, t
        dot = (theirs.state[:, QUAT] * ours.state[:, QUAT]).sum(-1).abs()
        assert float((1 - dot).max()) < 1e-6, t
        torch.testing.assert_close(theirs.state[:, RPM], ours.state[:, RPM], rtol=1e-5, atol=0.05)


def test_rotorpy_with_our_paper_model_flies_our_episodes():
    cfg = replace(QuadrotorTaskConfig(), num_envs=6)
    ours = QuadrotorHoverEnv(cfg, seed=3)
    theirs = RotorpyHoverEnv(cfg, _paper_model_as_rotorpy(ours.params), seed=3)
    ours.reset(seed=3)
    theirs.reset(seed=3)
    torch.testing.assert_close(theirs.state, ours.state)
    assert float(ours.force.abs().max()) > 0  # the episodes' disturbances are on
    _fly_side_by_side(ours, theirs)


def test_rotorpy_crazyflie_is_judged_and_bad_tasks_refused():
    params = rotorpy_vehicle("crazyflie")
    assert params["mass"] == 0.03 and params["rotor_speed_max"] == 2500
    paper = QuadrotorHoverEnv(QuadrotorTaskConfig()).params
    for k, i in enumerate(TO_ROTORPY):  # RotorPy's file puts our rotor i at its slot k, spinning our way
        assert np.array_equal(np.sign(params["rotor_pos"][f"r{k + 1}"][:2]), np.sign(paper.rotor_positions[i][:2]))
        assert params["rotor_directions"][k] == paper.yaw_signs[i]
    cfg = replace(QuadrotorTaskConfig(), episode_length=60)
    for judge in ("rotorpy:crazyflie", "l2f:crazyflie"):
        idle = fly(lambda o: torch.full((o.shape[0], 4), -1.0), cfg, judge, 4, seed=0)
        assert idle["survival"] == 0.0, judge  # rotors off: every episode falls out of the box within 60 steps
    # full command: the vehicle's top speed (2,500 rad/s = 23,873 RPM), or the export's 21,702 RPM when literal
    for command, top in ((None, 2500 * RPM_PER_RAD_S), ((0.0, 21702.0), 21702.0)):
        env = RotorpyHoverEnv(replace(cfg, num_envs=2), params, seed=0, command_rpm=command)
        env.reset(seed=0)
        for _ in range(30):
            env.step(torch.ones(2, 4))
        rpm = env.state[:, RPM]
        assert bool((rpm <= top + 1).all() & (rpm > 0.97 * top).all()), (command, rpm)
    with pytest.raises(ValueError, match="own vehicle"):
        RotorpyHoverEnv(replace(cfg, action_level="attitude_thrust"), params)
    with pytest.raises(SystemExit, match="unknown RotorPy vehicle"):
        rotorpy_vehicle("hummingbird")
    with pytest.raises(SystemExit, match="unknown judge"):
        judge_env("gazebo:crazyflie", cfg, 0)


def _paper_model_as_l2f(params) -> str:
    """Our paper model written as L2F parameters (its motor state: the command fraction of our full speed)."""
    device, env, p = l2f.Device(), l2f.Environment(), l2f.Parameters()
    l2f.initialize_environment(device, env)
    l2f.initial_parameters(device, env, p)
    d = json.loads(l2f.parameters_to_json(device, env, p))
    kq = params.thrust_coefficient * L2F_RPM_SCALE ** 2
    tau = [params.motor_time_constant] * 4
    d["dynamics"] |= {"rotor_positions": [list(r) for r in params.rotor_positions],
                      "rotor_torque_directions": [[0.0, 0.0, s] for s in params.yaw_signs],
                      "rotor_thrust_coefficients": [[0.0, 0.0, kq]] * 4,
                      "rotor_torque_constants": [params.torque_coefficient] * 4,
                      "rotor_time_constants_rising": tau, "rotor_time_constants_falling": tau,
                      "mass": params.mass, "J": [[params.inertia[i] if i == j else 0.0 for j in range(3)]
                                                  for i in range(3)],
                      "J_inv": [[1.0 / params.inertia[i] if i == j else 0.0 for j in range(3)] for i in range(3)]}
    return json.dumps(d)


def test_l2f_with_our_paper_model_flies_our_episodes_without_disturbance():
    cfg = replace(QuadrotorTaskConfig(), num_envs=6)
    ours = QuadrotorHoverEnv(cfg, seed=3)
    theirs = L2fHoverEnv(cfg, seed=3, params_json=_paper_model_as_l2f(ours.params))
    ours.reset(seed=3)
    theirs.reset(seed=3)
    ours.force.zero_()  # L2F's step takes no external force or torque
    ours.torque.zero_()
    _fly_side_by_side(ours, theirs)
