"""benchmarks/hover_planner.py: the sampling planner proves episodes avoidable by flying them, and only then;
noisy re-flights tell a robust save from a knife edge."""

from dataclasses import replace

import torch

from benchmarks.hover_ceiling import tilt_limited_infeasible
from benchmarks.hover_planner import episode_env, fly_with_offsets, noisy_survival, plan
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


class Knife(torch.nn.Module):
    """Full thrust while the observed x offset is above -0.5 mm, else idle: at x = 0 it climbs when noise-free,
    and with noise it drops out now and then."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.where(obs[:, :1] > -5e-4, 1.0, -1.0).expand(-1, 4)


def test_the_planner_with_noise_draws_saves_the_same_episodes():
    """Idle ignores its observation, so its noisy flights are the noise-free ones: the D-draw layout must find
    the same saves as the noise-free planner."""
    init, _, task = _task_and_starts()
    idx = torch.arange(3)
    out = plan(Idle(), task, init, idx, iters=12, population=64, knots=8, hold=5, log=lambda _: None, noise_draws=3)
    assert out["saved"].tolist() == [True, True, False]
    shares = noisy_survival(Idle(), task, init, idx, out["offsets"], 5, draws=4)
    assert shares.tolist() == [1.0, 1.0, 0.0]
    assert noisy_survival(Idle(), task, init, idx[:0], out["offsets"][:, :0], 5, draws=4).shape == (0,)


def test_noisy_survival_counts_the_draws_a_knife_edge_flight_survives():
    init, _, task = _starts(3)
    init["state"][:, 9] = -1.0  # level at the target, falling at 1 m/s
    task = replace(task, episode_length=60)
    idx, none = torch.arange(3), torch.zeros(1, 3, 4)
    env, restart = episode_env(task, init, idx)
    _, alive = fly_with_offsets(Knife(), env, restart, none, 1, task.episode_length, task.position_limit)
    assert alive.all()  # noise-free, x stays 0: full thrust throughout
    shares = noisy_survival(Knife(), task, init, idx, none, 1, draws=16)
    assert ((shares > 0.0) & (shares < 1.0)).any()  # an episode that some draws keep and others crash
    assert (shares * 16).eq((shares * 16).round()).all()  # shares of 16 flights
    assert torch.equal(shares, noisy_survival(Knife(), task, init, idx, none, 1, draws=16))  # seeded
    env, restart = episode_env(task, init, idx, copies=2, noise=True)
    obs = restart()["policy"]
    assert not torch.equal(obs[:3, :18], obs[3:, :18])  # each copy its own noise


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
