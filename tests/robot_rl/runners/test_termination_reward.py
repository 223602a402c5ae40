"""``off_policy.termination_reward``: added to the stored reward of terminated transitions (not time-outs), kept
through the curriculum's rewrite of the stored rewards."""

import torch

from robot_rl.runners.off_policy import OffPolicyRunner
from sim.quadrotor import reward_from_terms
from tests.robot_rl.test_training import tiny


def _stored(runner):
    buf = runner.buffer
    n = buf.size
    return buf.data["reward"][:n].reshape(-1), buf.data["reward_terms"][:n], buf.data["terminated"][:n].reshape(-1)


def test_terminal_transitions_carry_the_extra_reward_before_and_after_a_curriculum_step(tmp_path):
    cfg = tiny("sac")
    cfg.task.episode_length = 60  # time-outs too: they must not get it
    cfg.off_policy.termination_reward = -7.0
    cfg.off_policy.critic_starts = cfg.off_policy.actor_starts = 10**9  # collection only
    cfg.curriculum.every = 800
    runner = OffPolicyRunner(cfg, tmp_path)
    resets = 0
    for _ in range(99):  # 792 env steps: curriculum stage 0
        runner._iteration()
        resets += int(runner.env.steps.eq(0).sum())
    reward, terms, term = _stored(runner)
    assert 0 < int(term.sum()) < len(term) and resets >= int(term.sum())
    w0 = runner.curriculum.weights_at(0)
    torch.testing.assert_close(reward, reward_from_terms(terms, w0).reshape(-1) - 7.0 * term)
    runner._iteration()  # crosses 200 env steps: stage 1 rewrites every stored reward
    reward, terms, term = _stored(runner)
    w1 = runner.curriculum.weights_at(1)
    assert w1 != w0
    torch.testing.assert_close(reward, reward_from_terms(terms, w1).reshape(-1) - 7.0 * term)
