"""keep_best: the run's policy is the actor of the best in-training evaluation (passing first, then its lowest
rate), in the runner, in the checkpoint (``load_actor``) and after ``--resume``."""

import pytest
import torch

from robot_rl.runs import load_actor, make_runner
from sim.registry import TaskSpec
from tests.robot_rl.test_training import tiny

# (survival, settle) of the four scripted evaluations at 160 / 320 / 480 / 640 env steps; bars 0.95 / 0.3: the
# third passes, the second has the highest lowest rate, the fourth is the final iterate
SCRIPT = [(0.5, 0.1), (0.9, 0.6), (0.95, 0.3), (0.99, 0.29)]


def _train(tmp_path, monkeypatch, keep_best: bool):
    cfg = tiny("sac", steps=640)
    cfg.eval_every, cfg.checkpoint_every, cfg.keep_best = 160, 0, keep_best
    cfg.evaluation.survival_bar, cfg.evaluation.settle_bar = 0.95, 0.3
    probe = torch.linspace(-1, 1, 8 * 146).reshape(8, 146)
    seen = []

    def fake(self, policy, *args, **kwargs):
        survival, settle = SCRIPT[len(seen)]
        seen.append(policy(probe))
        return {"survival": survival, "settle": settle, "median_final_error_m": 0.1, "episodes": 4, "seed": 0}

    monkeypatch.setattr(TaskSpec, "evaluate", fake)
    runner = make_runner(cfg, tmp_path / "run")
    out = runner.train()
    return cfg, runner, out, probe, seen


def test_keep_best_picks_the_passing_evaluation_and_the_checkpoint_serves_it(tmp_path, monkeypatch):
    cfg, runner, out, probe, seen = _train(tmp_path, monkeypatch, keep_best=True)
    assert len(seen) == 4 and not torch.equal(seen[2], seen[3])  # the actor moved after the third evaluation
    assert out["best"]["env_steps"] == 480 and out["best"]["passed"]
    assert out["best"]["survival"] == 0.95 and out["best"]["settle"] == 0.3
    torch.testing.assert_close(runner.policy_fn(best=True)(probe), seen[2], rtol=0, atol=0)
    torch.testing.assert_close(runner.policy_fn()(probe), seen[3], rtol=0, atol=0)  # training state: the latest
    _, actor, meta = load_actor(tmp_path / "run")
    with torch.no_grad():
        torch.testing.assert_close(actor(probe), seen[2], rtol=0, atol=0)
    assert meta["best"]["env_steps"] == 480
    resumed = make_runner(cfg, tmp_path / "resumed")
    resumed.load(tmp_path / "run" / "checkpoint")
    assert resumed.best == runner.best
    torch.testing.assert_close(resumed.policy_fn(best=True)(probe), seen[2], rtol=0, atol=0)
    torch.testing.assert_close(resumed.policy_fn()(probe), seen[3], rtol=0, atol=0)


def test_without_a_pass_the_highest_lowest_rate_wins_and_off_means_the_latest(tmp_path, monkeypatch):
    SCRIPT[2] = (0.94, 0.3)  # no evaluation passes now: the second (lowest rate 0.6) is the best
    try:
        _, runner, out, probe, seen = _train(tmp_path / "a", monkeypatch, keep_best=True)
    finally:
        SCRIPT[2] = (0.95, 0.3)
    assert out["best"]["env_steps"] == 320 and not out["best"]["passed"]
    torch.testing.assert_close(runner.policy_fn(best=True)(probe), seen[1], rtol=0, atol=0)
    _, runner, out, probe, seen = _train(tmp_path / "b", monkeypatch, keep_best=False)
    assert out["best"] is None and not runner.best_actor
    _, actor, _ = load_actor(tmp_path / "b" / "run")
    with torch.no_grad():
        torch.testing.assert_close(actor(probe), seen[3], rtol=0, atol=0)
    torch.testing.assert_close(runner.policy_fn(best=True)(probe), seen[3], rtol=0, atol=0)


def test_a_tie_on_the_lowest_rate_goes_to_the_higher_sum(tmp_path, monkeypatch):
    saved = list(SCRIPT)
    SCRIPT[:] = [(0.0, 0.0), (0.9, 0.0), (0.5, 0.0), (0.2, 0.0)]  # settle 0 throughout: keep the best survivor
    try:
        _, runner, out, probe, seen = _train(tmp_path, monkeypatch, keep_best=True)
    finally:
        SCRIPT[:] = saved
    assert out["best"]["env_steps"] == 320
    torch.testing.assert_close(runner.policy_fn(best=True)(probe), seen[1], rtol=0, atol=0)


def test_passes_in_a_row_counts_and_stops_at_the_second_pass_in_a_row(tmp_path, monkeypatch):
    """A lone pass (the third of P-F-P-P) does not count; the fourth completes two in a row; the kept actor is the
    better of the passing ones; the count survives ``--resume``."""
    script = [(0.96, 0.35), (0.5, 0.1), (0.96, 0.45), (0.97, 0.4), (0.99, 0.9)]
    cfg = tiny("sac", steps=800)
    cfg.eval_every, cfg.checkpoint_every, cfg.keep_best, cfg.stop_when_passed = 160, 0, True, True
    cfg.passes_in_a_row = 2
    cfg.evaluation.survival_bar, cfg.evaluation.settle_bar = 0.95, 0.3
    n = []

    def fake(self, policy, *args, **kwargs):
        survival, settle = script[len(n)]
        n.append(1)
        return {"survival": survival, "settle": settle, "median_final_error_m": 0.1, "episodes": 4, "seed": 0}

    monkeypatch.setattr(TaskSpec, "evaluate", fake)
    runner = make_runner(cfg, tmp_path / "run")
    out = runner.train(stop_at=480)  # P, F, P: no run of two yet
    assert out["first_pass"] is None and runner.passes_in_a_row == 1
    resumed = make_runner(cfg, tmp_path / "resumed")
    resumed.load(tmp_path / "run" / "checkpoint")
    assert resumed.passes_in_a_row == 1
    out = resumed.train()
    assert out["env_steps"] == 640 and len(n) == 4  # stopped at the second pass in a row, not at the fifth
    assert out["first_pass"]["env_steps"] == 640 and out["first_pass"]["settle"] == 0.4
    assert out["best"]["env_steps"] == 480  # the best passing one (lowest rate 0.45 against 0.35, 0.4)
    cfg.passes_in_a_row = 0
    with pytest.raises(ValueError, match="passes_in_a_row"):
        make_runner(cfg, tmp_path / "zero")
