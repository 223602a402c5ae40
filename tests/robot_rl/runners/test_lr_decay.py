"""Off-policy learning-rate decay (``off_policy.lr_decay_start``): linear to ``lr_final_fraction`` of the configured
rates by the end, actor and critics only, and a resumed run reaches the same weights."""

import pytest
import torch

from robot_rl.runs import make_runner
from tests.robot_rl.test_training import tiny


def _cfg():
    cfg = tiny("sac", steps=640)
    cfg.off_policy.lr_decay_start, cfg.off_policy.lr_final_fraction = 320, 0.1
    cfg.sac.actor_lr, cfg.sac.critic_lr, cfg.sac.alpha_lr = 1e-3, 2e-3, 3e-3
    return cfg


def _lrs(runner):
    return {name: opt.param_groups[0]["lr"] for name, opt in runner.algo.optimizers().items()}


def test_rates_fall_linearly_from_the_start_to_the_fraction(tmp_path):
    runner = make_runner(_cfg(), tmp_path / "a")
    runner.train(stop_at=320)
    assert _lrs(runner) == {"actor_opt": 1e-3, "critic_opt": 2e-3, "alpha_opt": 3e-3}
    runner.train(stop_at=480)  # half way from 320 to 640: 1 - 0.5 * 0.9 of the rates
    lrs = _lrs(runner)
    assert lrs["actor_opt"] == pytest.approx(0.55e-3) and lrs["critic_opt"] == pytest.approx(1.1e-3)
    runner.train()
    lrs = _lrs(runner)
    assert lrs["actor_opt"] == pytest.approx(1e-4) and lrs["critic_opt"] == pytest.approx(2e-4)
    assert lrs["alpha_opt"] == 3e-3  # the temperature keeps adapting at its own rate
    off = _cfg()
    off.off_policy.lr_decay_start = 0
    plain = make_runner(off, tmp_path / "off")
    plain.train()
    assert _lrs(plain) == {"actor_opt": 1e-3, "critic_opt": 2e-3, "alpha_opt": 3e-3}
    differs = [not torch.equal(a, b) for a, b in zip(runner.actor.parameters(), plain.actor.parameters(), strict=True)]
    assert any(differs)


def test_resume_with_decay_reaches_the_same_weights(tmp_path):
    full = make_runner(_cfg(), tmp_path / "a")
    full.train()
    part = make_runner(_cfg(), tmp_path / "b")
    part.train(stop_at=480)
    del part
    resumed = make_runner(_cfg(), tmp_path / "b")
    resumed.load(tmp_path / "b" / "checkpoint")
    resumed.train()
    for (k, a), (_, b) in zip(full.actor.state_dict().items(), resumed.actor.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
