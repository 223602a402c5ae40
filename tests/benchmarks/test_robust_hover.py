"""``benchmarks/robust_hover.py --span``: one vehicle parameter redrawn or held, every other draw kept."""

import numpy as np
import pytest
import torch

from benchmarks.robust_hover import respanned
from robot_rl.commands.vehicle_eval import fly_vehicles, vehicle_distribution
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.evaluation import evaluate
from sim.quadrotor.vehicles import VEHICLE_KEYS, sample_vehicles

SPANS = ["latency_steps=0", "obs_noise_scale=1", "mass=0.03", "thrust_to_weight=1.5:2.3"]


def test_span_holds_the_parameter_and_keeps_every_other_draw():
    dist = vehicle_distribution(11, 0.0)
    free = sample_vehicles(dist, 256, torch.Generator().manual_seed(3))
    held = sample_vehicles(respanned(dist, SPANS), 256, torch.Generator().manual_seed(3))
    assert free["latency_steps"].unique().numel() == 3  # the span's own draw does vary
    assert torch.all(held["latency_steps"] == 0) and torch.all(held["obs_noise_scale"] == 1.0)
    assert torch.allclose(held["mass"], torch.full((256,), 0.03))
    # a new range keeps each vehicle's quantile: 1.3-2.3 -> 1.5-2.3
    assert torch.allclose(held["thrust_to_weight"], 1.5 + (free["thrust_to_weight"] - 1.3) * 0.8)
    for k in VEHICLE_KEYS:
        if k not in ("latency_steps", "obs_noise_scale", "mass", "thrust_to_weight"):
            assert torch.equal(held[k], free[k]), k


def test_respanned_vehicles_fly_the_same_episodes():
    dist = vehicle_distribution(11, 0.0)

    def policy(obs):
        return torch.zeros(obs.shape[0], 4)

    free = fly_vehicles(policy, QuadrotorTaskConfig(), 6, dist)
    held = fly_vehicles(policy, QuadrotorTaskConfig(), 6, respanned(dist, SPANS[:2]))
    assert held["vehicles"]["latency_steps"] == [0.0] * 6
    assert held["vehicles"]["thrust_to_weight"] == free["vehicles"]["thrust_to_weight"]
    assert held["vehicles"]["mass"] == free["vehicles"]["mass"]
    # the same initial states: a new span draws no other random numbers
    starts = [evaluate(policy, QuadrotorTaskConfig(), 6, seed=11, record=6, vehicles=d)["traces"][:, 0]
              for d in (dist, respanned(dist, ["arm_scale=1", "latency_steps=2"]))]
    assert np.array_equal(*starts) and np.isfinite(starts[0]).all()


@pytest.mark.parametrize(("span", "message"), [
    ("speed=1", "NAME one of"), ("mass", "NAME one of"), ("mass=heavy", "not VALUE or LO:HI"),
    ("mass=0.03:", "not VALUE or LO:HI"), ("mass=0.1:0.2:0.3", "not VALUE or LO:HI"),
    ("latency_steps=0.5", "whole numbers"), ("thrust_to_weight=1.0", "thrust_to_weight > 1"),
    ("latency_steps=-1", "latency_steps >= 0"), ("mass=0.033:0.027", "low <= high"),
    ("mass=inf", "finite"), ("thrust_to_weight=nan:2", "finite")])
def test_span_refuses_bad_input(span, message):
    with pytest.raises(ValueError, match=message):
        respanned(vehicle_distribution(), [span])


def test_bad_span_stops_the_benchmark_before_anything_runs(tmp_path, monkeypatch):
    from benchmarks import robust_hover

    base = tmp_path / "base"
    monkeypatch.setattr("sys.argv", ["robust_hover.py", str(tmp_path / "run"), "--baseline", str(base),
                                     "--span", "idle_rpm=lots"])
    with pytest.raises(SystemExit, match="--span idle_rpm: 'lots' is not VALUE or LO:HI"):
        robust_hover.main()
    assert not base.exists()  # no baseline was trained first


def test_rotor_start_override_and_old_run_configs(tmp_path):
    import json

    from benchmarks.robust_hover import _run_config
    from robot_rl.config import get_preset

    cfg = get_preset("crazyflie-hover-robust-gru").to_dict()
    del cfg["task"]["init_rpm_hover"]  # a run saved before the option existed flies the paper's start
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    starts = {s: _run_config(tmp_path, s).task for s in (None, "relative", "hover")}
    assert [(t.init_rpm_relative, t.init_rpm_hover) for t in starts.values()] == [(False, False), (True, False),
                                                                                  (False, True)]


def test_two_rotor_starts_are_refused_by_the_command_line(monkeypatch, capsys):
    from benchmarks import robust_hover

    monkeypatch.setattr("sys.argv", ["robust_hover.py", "run", "--init-rpm-relative", "--init-rpm-hover"])
    with pytest.raises(SystemExit):
        robust_hover.main()
    assert "not allowed with argument" in capsys.readouterr().err
