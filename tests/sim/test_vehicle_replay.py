"""Outcome-prioritised vehicle resampling (``VehicleDistribution.replay_fraction``, ``vehicle_replay.py``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sim.quadrotor import QuadrotorTaskConfig, RewardWeights
from sim.quadrotor.fused import FusedQuadrotorHoverEnv
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicle_replay import VehicleReplay
from sim.quadrotor.vehicles import VEHICLE_KEYS, VehicleDistribution

SPAN = VehicleDistribution().widened(0.1)
WEIGHTS = RewardWeights(position=40.0, orientation=5.0, linear_velocity=0.5, angular_velocity=0.05, action=0.05)
N = 16


def _cfg(dist: VehicleDistribution) -> QuadrotorTaskConfig:
    return QuadrotorTaskConfig(num_envs=N, reward=WEIGHTS, action_history=4, vehicles=dist)


def _veh(env: FusedQuadrotorHoverEnv | QuadrotorHoverEnv) -> torch.Tensor:
    return torch.stack(list(env.vehicles().values()), -1)


def _round(env: FusedQuadrotorHoverEnv | QuadrotorHoverEnv, crash: torch.Tensor) -> None:
    """One step in which the envs ``crash`` leave the position bound and every other env times out."""
    env.state[crash, 2] = env.target[crash, 2] + 10.0
    env.steps = torch.full((N,), env.max_episode_steps - 1, dtype=env.steps.dtype)
    _, _, terminated, truncated, _ = env.step(torch.zeros(N, 4))
    assert torch.equal(terminated, crash) and torch.equal(truncated, ~crash)


def test_replay_checks_its_settings_and_off_is_bit_identical() -> None:
    for bad in ({"replay_fraction": 1.5}, {"replay_fraction": -0.1}, {"replay_capacity": 0},
                {"replay_fraction": 0.5, "seed": 7}):
        with pytest.raises(ValueError, match="replay_fraction"):
            replace(SPAN, **bad).check()
    # off (the default): the vehicles come from the reset event as before, whatever the capacity
    a = FusedQuadrotorHoverEnv(_cfg(SPAN), seed=2)
    b = FusedQuadrotorHoverEnv(_cfg(replace(SPAN, replay_capacity=3)), seed=2)
    for env in (a, b):
        _round(env, torch.arange(N) % 3 == 0)
    assert torch.equal(_veh(a), _veh(b)) and torch.equal(a.state, b.state)


def test_torch_and_fused_envs_draw_the_same_vehicles_through_crashes_and_replays() -> None:
    dist = replace(SPAN, replay_fraction=0.5, replay_capacity=8, hard_fraction=0.25)
    fused, ref = FusedQuadrotorHoverEnv(_cfg(dist), seed=11), QuadrotorHoverEnv(_cfg(dist), seed=11)
    assert torch.equal(_veh(fused), _veh(ref))
    gen = torch.Generator().manual_seed(0)
    crashed_before: list[torch.Tensor] = []
    replayed = 0
    for _ in range(12):
        crash = torch.rand(N, generator=gen) < 0.3
        crashed_before.extend(_veh(fused)[crash & torch.from_numpy(fused.replay.src == 0)])
        _round(fused, crash)
        _round(ref, crash)
        v = _veh(fused)
        assert torch.equal(v, _veh(ref))
        src = torch.from_numpy(fused.replay.src == 1)
        # every replayed vehicle is one that crashed earlier on a fresh draw
        for row in v[src]:
            assert any(torch.equal(row, c) for c in crashed_before)
        replayed += int(src.sum())
    assert replayed > 10
    assert np.array_equal(fused.replay.ring, ref._replay.ring)
    assert fused.replay.summary() == ref._replay.summary()
    # the hard envs' fresh draws keep the hard thrust-to-weight range
    tw = VEHICLE_KEYS.index("thrust_to_weight")
    fresh_hard = torch.from_numpy(fused.replay.src == 0) & (torch.arange(N) < dist.num_hard(N))
    assert (_veh(fused)[fresh_hard, tw] <= dist.hard_ranges()["thrust_to_weight"][1] + 1e-5).all()


def test_same_seed_same_vehicles_reset_restarts_and_checkpoint_continues() -> None:
    dist = replace(SPAN, replay_fraction=0.6, replay_capacity=6)
    crash = torch.arange(N) % 2 == 0

    def fly(env: FusedQuadrotorHoverEnv, rounds: int = 5) -> list[torch.Tensor]:
        out = []
        for _ in range(rounds):
            _round(env, crash)
            out.append(_veh(env))
        return out

    a, b = FusedQuadrotorHoverEnv(_cfg(dist), seed=5), FusedQuadrotorHoverEnv(_cfg(dist), seed=5)
    other = FusedQuadrotorHoverEnv(_cfg(dist), seed=6)
    runs_a, runs_b = fly(a), fly(b)
    assert all(torch.equal(x, y) for x, y in zip(runs_a, runs_b, strict=True))
    assert not torch.equal(runs_a[0], fly(other, 1)[0])
    saved = a.state_dict()
    after = fly(a, 3)
    resumed = FusedQuadrotorHoverEnv(_cfg(dist), seed=99)
    resumed.load_state_dict(saved)
    assert all(torch.equal(x, y) for x, y in zip(after, fly(resumed, 3), strict=True))
    # reset(seed) empties the ring and restarts the streams: the same vehicles as a new env of that seed
    a.reset(seed=5)
    assert a.replay.summary()["ring"] == 0
    assert torch.equal(_veh(a), _veh(FusedQuadrotorHoverEnv(_cfg(dist), seed=5)))
    t = QuadrotorHoverEnv(_cfg(dist), seed=5)
    fly_t = []
    for _ in range(2):
        _round(t, crash)
        fly_t.append(_veh(t))
    saved_t = t.state_dict()
    _round(t, crash)
    t2 = QuadrotorHoverEnv(_cfg(dist), seed=1)
    t2.load_state_dict(saved_t)
    _round(t2, crash)
    assert torch.equal(_veh(t), _veh(t2))


@pytest.mark.parametrize("fraction", [0.25, 0.7])
def test_mixing_fraction_ring_uniform_and_fresh_crashes_only(fraction: float) -> None:
    n, cap = 2000, 4
    r = VehicleReplay(replace(SPAN, replay_fraction=fraction, replay_capacity=cap), n, seed=3)
    veh = np.zeros((n, len(VEHICLE_KEYS)), np.float32)
    envs = np.arange(n, dtype=np.int64)
    r.reset_envs(envs, np.zeros(n, bool), veh)  # empty ring: every draw is fresh
    assert (r.src == 0).all() and r.summary()["fresh"] == n
    first = veh[:cap + 2].copy()
    crashed = np.zeros(n, bool)
    crashed[:cap + 2] = True  # 6 fresh crashes into a ring of 4: the oldest two are overwritten
    r.reset_envs(envs, crashed, veh)
    assert np.array_equal(np.sort(r.ring, 0), np.sort(first[2:], 0))
    share = r.src.mean()
    assert abs(share - fraction) < 4 * np.sqrt(fraction * (1 - fraction) / n)
    picks = [int(np.flatnonzero((r.ring == row).all(1))[0]) for row in veh[r.src == 1]]
    counts = np.bincount(picks, minlength=cap) / len(picks)
    assert np.abs(counts - 1 / cap).max() < 0.06
    # replayed vehicles that crash again are not added twice; fresh ones are
    ring_before, head = r.ring.copy(), int(r.stats[1])
    again = r.src == 1
    r.reset_envs(envs, again, veh)
    assert np.array_equal(r.ring, ring_before) and int(r.stats[1]) == head
    assert r.summary()["crash_rate_replayed"] > 0


def test_replay_once_re_flies_each_crash_vehicle_once() -> None:
    n = 64
    r = VehicleReplay(replace(SPAN, replay_fraction=1.0, replay_capacity=8, replay_once=True), n, seed=4)
    veh = np.zeros((n, len(VEHICLE_KEYS)), np.float32)
    envs = np.arange(n, dtype=np.int64)
    r.reset_envs(envs, np.zeros(n, bool), veh)
    crashed = np.zeros(n, bool)
    crashed[10:16] = True
    lost = veh[10:16].copy()
    r.reset_envs(envs, crashed, veh)  # 6 crash vehicles: the first 6 envs re-fly them, one each; the ring empties
    assert list(np.flatnonzero(r.src)) == list(range(6)) and r.summary()["ring"] == 0
    assert np.array_equal(np.sort(veh[:6], 0), np.sort(lost, 0))
    r.reset_envs(envs, np.zeros(n, bool), veh)
    assert (r.src == 0).all()
