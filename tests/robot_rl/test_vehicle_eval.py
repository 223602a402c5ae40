"""``robot-rl train crazyflie-hover-robust`` (tiny) and ``robot-rl eval RUN --vehicles N``."""

import json
from dataclasses import replace

import pytest

from robot_rl.cli import main
from robot_rl.commands.vehicle_eval import vehicle_distribution
from robot_rl.runs import load_config
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED, VEHICLE_KEYS


@pytest.fixture(scope="module")
def robust_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust") / "run"
    main(["train", "crazyflie-hover-robust", "--seed", "1", "--out", str(out), "--task.num-envs", "4",
          "--apg.horizon", "5", "--on-policy.total-env-steps", "40", "--apg.actor-hidden", "8",
          "--task.episode-length", "10", "--evaluation.episodes", "4", "--eval-every", "0", "--checkpoint-every", "0",
          "--log-every", "20"])
    return out


def test_robust_preset_trains_on_vehicles_with_a_long_history(robust_run):
    cfg = load_config(robust_run)
    assert cfg.task.vehicles.enabled and cfg.task.action_history == 48
    assert (cfg.apg.bound_barrier, cfg.apg.bound_barrier_start) == (20.0, 0.3)  # trained with the barrier
    spec = json.loads((robust_run / "export" / "policy.json").read_text())
    hist = next(c for c in spec["observation"] if c["name"] == "action_history")
    assert hist["steps"] == 48 and hist["size"] == 192


def test_eval_vehicles_reports_per_vehicle_and_overall(robust_run, capsys):
    main(["eval", str(robust_run), "--vehicles", "6"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["vehicles"] == 6 and line["vehicle_seed"] == VEHICLE_EVAL_SEED and line["margin"] == 0.2
    s = json.loads((robust_run / "eval_vehicles.json").read_text())
    per = s["per_vehicle"]
    assert len(per) == 6
    assert s["survival"] == pytest.approx(sum(p["survived"] for p in per) / 6)
    assert s["settle"] == pytest.approx(sum(p["settled"] for p in per) / 6)
    wide = vehicle_distribution(VEHICLE_EVAL_SEED, 0.2)
    for p in per:
        assert p["settled"] <= p["survived"]
        for k in VEHICLE_KEYS:
            lo, hi = getattr(wide, k)
            assert lo - 1e-6 <= p[k] <= hi + 1e-6, k
    assert len({p["mass"] for p in per}) == 6
    assert "settle versus each parameter" in (robust_run / "report_vehicles.md").read_text()
    assert (robust_run / "vehicles_settle.png").read_bytes()[:4] == b"\x89PNG"
    # same seed: the same vehicles and outcomes; another seed: other vehicles
    main(["eval", str(robust_run), "--vehicles", "6"])
    assert json.loads((robust_run / "eval_vehicles.json").read_text())["per_vehicle"] == per
    main(["eval", str(robust_run), "--vehicles", "6", "--vehicle-seed", "5", "--vehicle-margin", "0"])
    other = json.loads((robust_run / "eval_vehicles.json").read_text())
    assert [p["mass"] for p in other["per_vehicle"]] != [p["mass"] for p in per]
    assert other["distribution"]["mass"] == [0.027, 0.033]


def test_vehicles_refuses_what_it_cannot_fly():
    from robot_rl.commands.vehicle_eval import fly_vehicles
    from sim.quadrotor.config import QuadrotorTaskConfig

    dist = vehicle_distribution()
    with pytest.raises(ValueError, match="quadrotor-hover"):
        fly_vehicles(lambda o: o[:, :4] * 0, replace(QuadrotorTaskConfig(), action_level="rotor_thrust"), 2, dist)
    with pytest.raises(ValueError, match=">= 1"):
        fly_vehicles(lambda o: o[:, :4] * 0, QuadrotorTaskConfig(), 0, dist)


def test_attitude_robust_preset_and_eval_vehicles(tmp_path, capsys):
    """The attitude/thrust-level preset trains over vehicles, and ``eval --vehicles`` flies its export on them
    through the onboard controller model (the attitude protocol: starts within 30 deg of level)."""
    out = tmp_path / "att"
    main(["train", "crazyflie-hover-attitude-robust", "--seed", "1", "--out", str(out), "--task.num-envs", "4",
          "--apg.horizon", "5", "--on-policy.total-env-steps", "20", "--apg.actor-hidden", "8",
          "--task.episode-length", "10", "--evaluation.episodes", "2", "--evaluation.robustness", "0.1",
          "--eval-every", "0", "--checkpoint-every", "0", "--log-every", "20"])
    cfg = load_config(out)
    assert cfg.task.vehicles.enabled and cfg.task.action_level == "attitude_thrust"
    assert cfg.task.action_history == 32 and cfg.task.init_max_angle_deg == 30.0
    assert not cfg.task.randomization.enabled  # the vehicles draw the observation latency
    spec = json.loads((out / "export" / "policy.json").read_text())
    assert spec["action"]["type"] == "attitude_thrust"
    capsys.readouterr()
    main(["eval", str(out), "--vehicles", "5", "--vehicle-margin", "0"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["vehicles"] == 5 and line["margin"] == 0.0
    s = json.loads((out / "eval_vehicles.json").read_text())
    per = s["per_vehicle"]
    assert len({p["thrust_to_weight"] for p in per}) == 5
    assert s["survival"] == pytest.approx(sum(p["survived"] for p in per) / 5)
    assert s["distribution"]["thrust_to_weight"] == [1.3, 2.3]
    for p in per:
        assert p["settled"] <= p["survived"] and 1.3 <= p["thrust_to_weight"] <= 2.3
