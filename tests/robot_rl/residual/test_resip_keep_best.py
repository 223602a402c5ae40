"""ResiP's ``keep_best``: the run's residual is the actor of its best in-training evaluation, kept through
checkpoints, and refused without evaluations."""

import pytest
import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import ResiPConfig
from robot_rl.runners.resip import ResiPRunner
from tests.robot_rl.residual.toy import ToyReachEnv, tiny_diffusion

SCRIPT = [0.3, 0.7, 0.5, 0.7, 0.2]  # the selection successes the stub evaluation returns, one per evaluation


def _runner(path, keep_best=True):
    cfg = ResiPConfig(base="toy", task="toy", seed=0, num_envs=8, steps_per_env=16, log_every=0, checkpoint_every=0,
                      eval_every=128, total_env_steps=5 * 128, keep_best=keep_best, actor_lr=1e-2)
    runner = ResiPRunner(cfg, path, env=ToyReachEnv(8, seed=0), base=FrozenChunkBase(tiny_diffusion(), 8, seed=0))
    snapshots = []

    def scripted(episodes, selection=False, **_):  # records the actor each evaluation saw
        assert selection and episodes == cfg.eval_episodes
        snapshots.append({k: v.clone() for k, v in runner.actor.state_dict().items()})
        return {"success": SCRIPT[len(snapshots) - 1], "episodes": episodes, "seed": 2_000_003}

    runner.evaluate = scripted
    return runner, snapshots


def test_keeps_the_earliest_best_evaluation_and_resumes_with_it(tmp_path):
    runner, snaps = _runner(tmp_path / "full")
    out = runner.train()
    assert len(snaps) == 5 and out["best"]["success"] == 0.7 and out["best"]["env_steps"] == 256  # not the 4th
    kept = runner.kept_actor().state_dict()
    for k, v in snaps[1].items():
        assert torch.equal(kept[k], v), k
    last = runner.actor.state_dict()
    assert any(not torch.equal(last[k], v) for k, v in snaps[1].items())  # training went on past the kept actor
    # stopped after the best evaluation and resumed: the same kept actor, and the later 0.7 does not replace it
    part, _ = _runner(tmp_path / "part")
    part.train(stop_at=3 * 128)
    resumed, rsnaps = _runner(tmp_path / "part")
    resumed.load(tmp_path / "part" / "checkpoint")
    assert resumed.best["env_steps"] == 256
    rsnaps += [None, None, None]  # the evaluations already run before the stop
    resumed.train()
    assert {k: v for k, v in resumed.best.items() if k != "train_time_s"} == {
        k: v for k, v in out["best"].items() if k != "train_time_s"}  # wall time differs
    for k, v in kept.items():
        assert torch.equal(resumed.kept_actor().state_dict()[k], v), k


def test_without_keep_best_the_run_is_its_last_actor(tmp_path):
    runner, _ = _runner(tmp_path, keep_best=False)
    out = runner.train()
    assert out["best"] is None and runner.kept_actor() is runner.actor


def test_keep_best_needs_evaluations():
    with pytest.raises(ValueError, match="--keep-best keeps the actor of the best in-training evaluation"):
        ResiPConfig(base="toy", keep_best=True).check()
