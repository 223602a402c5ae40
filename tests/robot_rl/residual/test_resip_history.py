"""ResiP ``history = H``: the window buffer, zero-init identity, what the actor reads, resume, old configs."""

import pytest
import torch

from robot_rl.residual.history import ResidualHistory
from robot_rl.residual.resip import ResidualActor, ResiPConfig
from tests.robot_rl.residual.test_resip import _runner
from tests.robot_rl.residual.toy import assert_runs_as_the_base, tiny_diffusion


def test_window_starts_still_and_shifts_oldest_first():
    h = ResidualHistory(2, 3, 2, 1)
    h.reset(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(h.window[1], torch.tensor([[3.0, 4.0, 0.0]] * 3))  # first observation, zero action
    h.push(torch.tensor([[5.0, 6.0], [7.0, 8.0]]), torch.tensor([[0.5], [-0.5]]))
    assert torch.equal(h.window[0], torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0], [5.0, 6.0, 0.5]]))
    h.reset(torch.tensor([[9.0, 9.0], [0.0, 1.0]]), torch.tensor([False, True]))
    assert torch.equal(h.window[1], torch.tensor([[0.0, 1.0, 0.0]] * 3))
    assert torch.equal(h.window[0, -1], torch.tensor([5.0, 6.0, 0.5]))  # env 0 untouched
    with pytest.raises(ValueError, match="actions must be"):
        h.push(torch.zeros(2, 2), torch.zeros(2, 2))


def test_zero_init_history_residual_is_the_base_bit_for_bit():
    policy = tiny_diffusion()
    policy.act_norm.mid.fill_(0.1)
    policy.act_norm.span.fill_(0.7)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (32, 32), 0.1, -1.0, False, history=4,
                          history_actions=True)
    with torch.no_grad():
        actor.history_norm.mean.normal_()
    oa = assert_runs_as_the_base(policy, actor)
    assert actor.net[0].in_features == 4 + 2 + 4 * (4 + 2)
    with pytest.raises(ValueError, match="reads a history of 4 steps"):
        actor(oa, torch.zeros(6, 2))


def test_history_actor_starts_as_the_memoryless_actor_of_the_same_seed(tmp_path):
    plain, hist = _runner(tmp_path / "a"), _runner(tmp_path / "b", history=3, history_actions=True)
    w, wh = plain.actor.net[0].weight, hist.actor.net[0].weight
    assert wh.shape == (w.shape[0], 6 + 3 * 6)
    assert torch.equal(wh[:, :6], w) and torch.count_nonzero(wh[:, 6:]) == 0
    assert torch.equal(hist.actor.net[0].bias, plain.actor.net[0].bias)
    for k, v in plain.algo.critic.state_dict().items():  # no extra random draws: the critic starts the same too
        assert torch.equal(v, hist.algo.critic.state_dict()[k]), k


def test_rollout_windows_hold_the_executed_steps_and_restart_on_done(tmp_path):
    runner = _runner(tmp_path, n=4, history=3, history_actions=True)
    seen = {}
    update = runner.algo.update
    runner.algo.update = lambda batch: seen.update(batch) or update(batch)
    steps = []
    step = runner.env.step

    def record(action):
        out = step(action)
        steps.append((runner.obs["policy"].clone(), action.clone(), out[3] | out[2]))
        return out

    runner.env.step = record
    runner._iteration()
    hist = seen["history"].view(16, 4, 3, 6)
    for t in range(1, 16):
        obs, action, done = steps[t - 1]
        want = torch.cat((obs, action), -1)  # the row the step before appended ...
        first = torch.cat((steps[t][0], torch.zeros(4, 2)), -1)  # ... or, after a reset, the new episode's start
        for e in range(4):
            assert torch.equal(hist[t, e, -1], first[e] if done[e] else want[e])
            if done[e]:
                assert torch.equal(hist[t, e], first[e].expand(3, -1))
    assert bool(torch.stack([s[2] for s in steps]).any())  # the toy episodes (25 steps) ended within the rollout
    assert int(runner.actor.history_norm.count) == 16 * 4  # the running statistics saw every rollout window


def test_history_resume_continues_bit_identically(tmp_path):
    def make(d):
        r = _runner(tmp_path / d, history=2)
        r.cfg.total_env_steps = 3 * 128
        return r

    full = make("full")
    full.train()
    part = make("part")
    part.train(stop_at=128)
    resumed = make("part")
    resumed.load(tmp_path / "part" / "checkpoint")
    resumed.train()
    for k, v in full.algo.actor.state_dict().items():
        assert torch.equal(v, resumed.algo.actor.state_dict()[k]), k
    assert torch.equal(full.history.window, resumed.history.window)


def test_window_without_actions_reads_only_the_past_observations():
    policy = tiny_diffusion()
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (8,), 0.1, -1.0, False, history=2, history_actions=False)
    assert actor.net[0].in_features == 4 + 2 + 2 * 4
    obs, an, window = torch.randn(3, 4), torch.randn(3, 2), torch.randn(3, 2, 6)
    with torch.no_grad():
        actor.net[0].weight.normal_()
        actor.net[-1].weight.normal_()
        other = window.clone()
        other[..., 4:] += 1.0  # only the past actions differ
        assert torch.equal(actor(obs, an, window), actor(obs, an, other))
        other[..., :4] += 0.1
        assert not torch.allclose(actor(obs, an, window), actor(obs, an, other))


def test_configs_without_history_stay_memoryless():
    d = ResiPConfig(base="b").to_dict()
    del d["history"]  # a run written before the option existed
    assert ResiPConfig.from_dict(d).history == 0
    with pytest.raises(ValueError, match="--history must be >= 0"):
        ResiPConfig(base="b", history=-1).check()
