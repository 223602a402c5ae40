"""benchmarks/hover_planner.py: the sampling planner proves episodes avoidable by flying them, and only then."""

from dataclasses import replace

import torch

from benchmarks.hover_ceiling import tilt_limited_infeasible
from benchmarks.hover_planner import episode_env, fly_with_offsets, plan
from robot_rl.models.recurrent import GRUActor
from sim.quadrotor.dynamics import QUAT
from tests.benchmarks.test_hover_ceiling import _starts


class Idle(torch.nn.Module):
    """A policy that commands the motors' minimum: every level start falls through the floor."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], 4), -1.0)


def _task_and_starts():
    init, params, task = _starts(3)
    s, v = init["state"], init["vehicles"]
    s[:2, 9] = -0.5  # envs 0, 1: level, at the target, falling at 0.5 m/s
    # env 2: tilted 90 deg, falling, on a weak, slow, heavy-inertia vehicle (the tilt bound proves it lost)
    s[2, 2], s[2, 9] = -0.1, -0.5
    s[2, QUAT] = torch.tensor([0.5 ** 0.5, 0.5 ** 0.5, 0.0, 0.0])
    v["thrust_to_weight"][2], v["motor_tau_up"][2], v["inertia_xy_scale"][2] = 1.3, 0.15, 5.0
    return init, params, replace(task, episode_length=40)


def test_the_planner_saves_what_an_idle_policy_drops_and_not_what_the_bounds_prove_lost():
    init, params, task = _task_and_starts()
    idx = torch.arange(3)
    env, restart = episode_env(task, init, idx)
    _, alive = fly_with_offsets(Idle(), env, restart, torch.zeros(1, 3, 4), 1, task.episode_length,
                                task.position_limit)
    assert not alive.any()  # without offsets every episode crashes within the 40 steps
    lost = tilt_limited_infeasible(init, params, task.dt, task.position_limit)
    assert lost.tolist() == [False, False, True]
    # offsets over the whole (shortened) episode: the planner must find the thrust that stops the level falls
    out = plan(Idle(), task, init, idx, iters=12, population=64, knots=8, hold=5, log=lambda _: None)
    assert out["saved"].tolist() == [True, True, False]
    env, restart = episode_env(task, init, idx)
    _, alive = fly_with_offsets(Idle(), env, restart, out["offsets"], 5, task.episode_length, task.position_limit)
    assert alive.tolist() == [True, True, False]  # the returned offsets are the saving ones, flown again


def test_flights_with_offsets_carry_a_recurrent_actors_state():
    """verify_oracle and the planner fly a GRU as its deployment does: state from zero, carried step to step."""
    init, _, task = _task_and_starts()
    torch.manual_seed(0)
    actor = GRUActor(210, 8, 4, 4)
    idx = torch.arange(2)
    offsets = torch.linspace(-0.3, 0.3, 5 * 2 * 4).reshape(5, 2, 4)
    env, restart = episode_env(task, init, idx)
    with torch.no_grad():
        fly_with_offsets(actor, env, restart, offsets, 2, 20, task.position_limit)
    flown = env.state.clone()
    env, restart = episode_env(task, init, idx)
    obs, state = restart(), actor.initial_state(2)
    with torch.no_grad():
        for t in range(20):
            a, state = actor(obs["policy"], state)
            obs, *_ = env.step(a + (offsets[t // 2] if t < 10 else 0.0))
    assert torch.equal(flown, env.state)
