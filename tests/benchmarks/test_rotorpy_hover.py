"""benchmarks/rotorpy_hover.py: RotorPy's physics under our task. Given our paper model as its vehicle file it flies
the same episodes as our RK4 reference (frames, quaternion order, rotor order, yaw signs, units, disturbances);
given its own Crazyflie, the robust preset's kind of policy is judged on a model nobody here wrote."""

from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("rotorpy")

from benchmarks.rotorpy_hover import (  # noqa: E402
    RPM_PER_RAD_S,
    TO_ROTORPY,
    RotorpyHoverEnv,
    fly,
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


def test_rotorpy_with_our_paper_model_flies_our_episodes():
    cfg = replace(QuadrotorTaskConfig(), num_envs=6)
    ours = QuadrotorHoverEnv(cfg, seed=3)
    theirs = RotorpyHoverEnv(cfg, _paper_model_as_rotorpy(ours.params), seed=3)
    ours.reset(seed=3)
    theirs.reset(seed=3)
    torch.testing.assert_close(theirs.state, ours.state)
    assert float(ours.force.abs().max()) > 0  # the episodes' disturbances are on
    gen = torch.Generator().manual_seed(1)
    hover = ours.params.hover_action
    for t in range(15):  # rotor-by-rotor different commands: roll, pitch and yaw all move
        a = (hover + 0.3 * torch.randn(6, 4, generator=gen)).clamp(-1, 1)
        ours.step(a)
        theirs.step(a)
        # RotorPy's adaptive RK45 against our fixed-step RK4: float32 rounding of the state apart
        assert float((theirs.state[:, POS] - ours.state[:, POS]).abs().max()) < 1e-5, t
        assert float((theirs.state[:, OMEGA] - ours.state[:, OMEGA]).abs().max()) < 1e-3, t
        dot = (theirs.state[:, QUAT] * ours.state[:, QUAT]).sum(-1).abs()
        assert float((1 - dot).max()) < 1e-6, t
        torch.testing.assert_close(theirs.state[:, RPM], ours.state[:, RPM], rtol=1e-5, atol=0.05)


def test_rotorpy_crazyflie_is_judged_and_bad_tasks_refused():
    params = rotorpy_vehicle("crazyflie")
    assert params["mass"] == 0.03 and params["rotor_speed_max"] == 2500
    paper = QuadrotorHoverEnv(QuadrotorTaskConfig()).params
    for k, i in enumerate(TO_ROTORPY):  # RotorPy's file puts our rotor i at its slot k, spinning our way
        assert np.array_equal(np.sign(params["rotor_pos"][f"r{k + 1}"][:2]), np.sign(paper.rotor_positions[i][:2]))
        assert params["rotor_directions"][k] == paper.yaw_signs[i]
    cfg = replace(QuadrotorTaskConfig(), episode_length=60)
    idle = fly(lambda o: torch.full((o.shape[0], 4), -1.0), cfg, params, 4, seed=0)
    assert idle["survival"] == 0.0  # rotors off: every episode falls out of the box within 60 steps
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
