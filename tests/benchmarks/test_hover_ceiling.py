"""The per-episode bounds of benchmarks/hover_ceiling.py on hand-made starts."""

import torch

from benchmarks.hover_ceiling import (
    capped_infeasible,
    initial_conditions,
    privileged_fly,
    privileged_setpoints_fly,
    tilt_limited_infeasible,
)
from benchmarks.hover_crashes import fly, oracle, vertical_ideal_min_z
from robot_rl.commands.vehicle_eval import vehicle_distribution
from robot_rl.models.recurrent import GRUActor, StatefulPolicy
from robot_rl.presets import crazyflie_hover_attitude_robust, crazyflie_hover_robust
from sim.quadrotor.dynamics import OMEGA, QUAT, VEL
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED


def _starts(n: int = 6) -> tuple[dict, object, object]:
    task = crazyflie_hover_robust().task
    init, params = initial_conditions(task, n, vehicle_distribution(VEHICLE_EVAL_SEED, 0.0))
    s = init["state"]
    s[:, :3] = 0.0
    s[:, QUAT] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    s[:, VEL], s[:, OMEGA] = 0.0, 0.0
    init["force"].zero_()
    init["torque"].zero_()
    return init, params, task


def test_level_starts_are_feasible_and_falling_weak_tilted_ones_are_not():
    init, params, task = _starts()
    v, s = init["vehicles"], init["state"]
    # env 0: level at rest at the target (hover); env 1: the same falling at 3 m/s, 0.3 m below the target;
    # env 2: tilted 90 deg, 0.1 m below, falling 0.5 m/s on a weak, slow, heavy-inertia vehicle
    s[1, 2], s[1, 9] = -0.3, -3.0
    s[2, 2], s[2, 9] = -0.1, -0.5
    s[2, QUAT] = torch.tensor([0.5 ** 0.5, 0.5 ** 0.5, 0.0, 0.0])
    v["thrust_to_weight"][2], v["motor_tau_up"][2], v["inertia_xy_scale"][2] = 1.3, 0.15, 5.0
    vertical = vertical_ideal_min_z(init, params, torch.arange(6), task.dt) < -task.position_limit
    tilt = tilt_limited_infeasible(init, params, task.dt, task.position_limit)
    assert vertical.tolist()[:3] == [False, True, False]
    assert tilt.tolist()[:3] == [False, True, True]  # the tilt bound also catches the one that must rotate first
    assert bool((tilt | ~vertical).all())  # a relaxation of the vertical ideal: it only removes vertical thrust
    # the privileged controller holds the level starts at rest (not the ones the bounds call infeasible)
    alive, settled = privileged_fly(task, init, 3.0, 0.5, 30.0, True, 100, 1.5, 0.0)
    assert alive[0] and settled[0] and not alive[1] and not alive[2]
    assert bool(alive[3:].all())


def test_the_thrust_cap_loses_a_weak_falling_start_that_full_thrust_saves():
    init, params, task = _starts()
    v, s = init["vehicles"], init["state"]
    for i in (1, 2):  # T/W 1.3, slow spin-up, falling 0.5 m/s at the target; env 2's motors coast down slower
        v["thrust_to_weight"][i], v["motor_tau_up"][i], v["motor_tau_down"][i] = 1.3, 0.15, 0.1
        v["idle_rpm"][i], v["thrust_linear_fraction"][i], s[i, 9] = 0.0, 0.0, -0.5
    v["motor_tau_down"][2] = 0.151
    limit = task.position_limit
    full = vertical_ideal_min_z(init, params, torch.arange(6), task.dt) < -limit
    capped = capped_infeasible(init, params, task.dt, limit, 60000.0)
    assert not full[1] and capped[1]  # every rotor at full speed saves it; the 60,000 cap does not
    assert not capped[0] and not capped[2]  # hover; motors that may hold a speed sum above the bound's
    # without a cap the bound is the vertical ideal (where it applies)
    uncapped = capped_infeasible(init, params, task.dt, limit, 65535.0)
    assert torch.equal(uncapped, full & (v["motor_tau_down"] <= v["motor_tau_up"]))


def test_privileged_setpoints_keep_most_attitude_level_episodes():
    """The attitude-level witness: knowing each vehicle's hover thrust and the true state, PD setpoints through the
    radio, the onboard PID and the cap keep most held-out episodes (24 here: 20 survive, 4 of them settle)."""
    task = crazyflie_hover_attitude_robust().task
    alive, settled = privileged_setpoints_fly(task, vehicle_distribution(VEHICLE_EVAL_SEED, 0.0), 24, 4.0, 3.0,
                                              6.0, 4.0, 20.0)
    assert alive.float().mean() >= 0.75 and settled.float().mean() >= 0.1


def test_the_crash_tools_fly_a_recurrent_actor():
    """hover_crashes.fly starts a recurrent policy's episodes (begin_episodes) and the oracle carries its state."""
    task = crazyflie_hover_robust().task
    torch.manual_seed(0)
    actor = GRUActor(210, 8, 4, 4)
    r = fly(StatefulPolicy(actor), task, 3, vehicle_distribution(VEHICLE_EVAL_SEED, 0.0))
    assert r["alive"].shape == (3,)
    orc = oracle(actor, task, r["init"], torch.arange(2), 5, 1)
    assert orc["saved"].shape == (2,) and orc["peak"].shape == (2,)
