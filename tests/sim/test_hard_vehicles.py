"""Oversampling the hard tail of the vehicle span in training (``VehicleDistribution.hard_fraction``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from robot_rl.commands.vehicle_eval import vehicle_distribution
from sim.quadrotor import QuadrotorTaskConfig, RewardWeights
from sim.quadrotor.fused import FusedQuadrotorHoverEnv
from sim.quadrotor.vehicles import VEHICLE_KEYS, VehicleDistribution, sample_vehicles

SPAN = VehicleDistribution().widened(0.1)
HARD = replace(SPAN, hard_fraction=0.25)
COLS = [VEHICLE_KEYS.index(k) for k in HARD.hard_keys]
WEIGHTS = RewardWeights(position=40.0, orientation=5.0, linear_velocity=0.5, angular_velocity=0.05, action=0.05)


def test_hard_ranges_are_the_hard_end_of_each_range_and_bad_settings_say_so() -> None:
    full, hard = HARD.ranges(), HARD.hard_ranges()
    lo, hi = full["thrust_to_weight"]  # less thrust is harder: the bottom 30 %
    assert hard["thrust_to_weight"] == pytest.approx((lo, lo + 0.3 * (hi - lo)))
    lo, hi = full["motor_tau_up"]  # slower spin-up is harder: the top 30 %
    assert hard["motor_tau_up"] == pytest.approx((hi - 0.3 * (hi - lo), hi))
    lo, hi = full["inertia_xy_scale"]  # log-uniform: the top 30 % in log space
    assert hard["inertia_xy_scale"] == pytest.approx((lo * (hi / lo) ** 0.7, hi))
    assert {k: v for k, v in hard.items() if k not in HARD.hard_keys} == \
        {k: v for k, v in full.items() if k not in HARD.hard_keys}
    assert HARD.num_hard(128) == 32 and SPAN.num_hard(128) == 0
    for bad in ({"hard_fraction": 1.5}, {"hard_share": 0.0}, {"hard_keys": ("latency_steps",)},
                {"hard_keys": ("wingspan",)}):
        with pytest.raises(ValueError, match="hard_fraction"):
            replace(HARD, **bad).check()
    # the held-out evaluation distribution never oversamples
    assert vehicle_distribution().num_hard(1000) == 0


def test_torch_draws_first_envs_hard_same_draws_otherwise() -> None:
    n, k = 40, HARD.num_hard(40)
    hard_ranges = HARD.hard_ranges()
    v = torch.stack(list(sample_vehicles(HARD, n, torch.Generator().manual_seed(5)).values()), -1)
    again = torch.stack(list(sample_vehicles(HARD, n, torch.Generator().manual_seed(5)).values()), -1)
    plain = torch.stack(list(sample_vehicles(SPAN, n, torch.Generator().manual_seed(5)).values()), -1)
    assert torch.equal(v, again)
    assert torch.equal(v[k:], plain[k:])  # the same draws: envs past the hard ones are bit-identical
    others = [i for i in range(len(VEHICLE_KEYS)) if i not in COLS]
    assert torch.equal(v[:, others], plain[:, others])
    for c, name in zip(COLS, HARD.hard_keys, strict=True):
        lo, hi = hard_ranges[name]
        assert (v[:k, c] >= lo * (1 - 1e-6)).all() and (v[:k, c] <= hi * (1 + 1e-6)).all(), name
    # the same uniform draw maps to the hard sub-range: thrust-to-weight u -> lo + u * 0.3 w
    lo, hi = SPAN.thrust_to_weight
    c = VEHICLE_KEYS.index("thrust_to_weight")
    u = (plain[:k, c] - lo) / (hi - lo)
    assert torch.allclose(v[:k, c], lo + u * 0.3 * (hi - lo), atol=1e-5)


def test_fused_env_hard_envs_reproducible_and_kept_through_resets() -> None:
    def env(dist: VehicleDistribution, seed: int = 3) -> FusedQuadrotorHoverEnv:
        return FusedQuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=32, reward=WEIGHTS, action_history=4,
                                                          vehicles=dist), seed=seed)

    a, b, plain = env(HARD), env(HARD), env(SPAN)
    k = HARD.num_hard(32)
    va, vp = (torch.stack(list(e.vehicles().values()), -1) for e in (a, plain))
    assert torch.equal(va, torch.stack(list(b.vehicles().values()), -1))
    assert torch.equal(va[k:], vp[k:]) and torch.equal(a.state, plain.state)
    hard_ranges = HARD.hard_ranges()
    tw = VEHICLE_KEYS.index("thrust_to_weight")
    assert va[:k, tw].max() < hard_ranges["thrust_to_weight"][1] + 1e-5 < va[k:, tw].max()
    u = (vp[:k, tw] - SPAN.thrust_to_weight[0]) / (SPAN.thrust_to_weight[1] - SPAN.thrust_to_weight[0])
    assert torch.allclose(va[:k, tw], SPAN.thrust_to_weight[0] + u * (hard_ranges["thrust_to_weight"][1]
                                                                    - SPAN.thrust_to_weight[0]), atol=1e-5)
    # falls (zero command) reset every env several times: hard envs stay hard, the others keep the full span
    redrawn = torch.zeros(32, dtype=torch.bool)
    for _ in range(120):
        before = a.vehicles()["mass"].clone()
        a.step(torch.full((32, 4), -1.0))
        redrawn |= a.vehicles()["mass"] != before
        v = torch.stack(list(a.vehicles().values()), -1)
        for c, name in zip(COLS, HARD.hard_keys, strict=True):
            lo, hi = hard_ranges[name]
            assert (v[:k, c] >= lo - 1e-5 * abs(lo)).all() and (v[:k, c] <= hi + 1e-5 * abs(hi)).all(), name
    assert redrawn.all()
