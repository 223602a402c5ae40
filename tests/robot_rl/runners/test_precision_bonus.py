"""``off_policy.precision_bonus``: ``b * exp(-term / width**2)`` of the stored position term is added to every
stored reward, kept through the curriculum's rewrite, together with ``termination_reward``."""

import pytest
import torch

from robot_rl.runners.off_policy import OffPolicyRunner
from sim.quadrotor import reward_from_terms
from tests.robot_rl.test_training import tiny


def _stored(runner):
    buf = runner.buffer
    n = buf.size
    return buf.data["reward"][:n].reshape(-1), buf.data["reward_terms"][:n], buf.data["terminated"][:n].reshape(-1)


def test_stored_rewards_carry_the_bonus_before_and_after_a_curriculum_step(tmp_path):
    cfg = tiny("sac")
    cfg.off_policy.precision_bonus, cfg.off_policy.precision_width = 3.0, 0.2
    cfg.off_policy.termination_reward = -7.0
    cfg.off_policy.critic_starts = cfg.off_policy.actor_starts = 10**9  # collection only
    cfg.curriculum.every = 800
    runner = OffPolicyRunner(cfg, tmp_path)
    for _ in range(99):
        runner._iteration()
    reward, terms, term = _stored(runner)

    def expected(weights):
        bonus = 3.0 * torch.exp(-terms[:, 0] / 0.04)
        return reward_from_terms(terms, weights).reshape(-1) - 7.0 * term + bonus

    assert float((3.0 * torch.exp(-terms[:, 0] / 0.04)).std()) > 0.01  # the bonus varies over the stored states
    torch.testing.assert_close(reward, expected(runner.curriculum.weights_at(0)))
    runner._iteration()  # stage 1 rewrites every stored reward
    reward, terms, term = _stored(runner)
    torch.testing.assert_close(reward, expected(runner.curriculum.weights_at(1)))


def test_an_unknown_term_is_refused(tmp_path):
    cfg = tiny("sac")
    cfg.off_policy.precision_bonus, cfg.off_policy.precision_term = 1.0, "distance"
    with pytest.raises(ValueError, match="precision_term 'distance' is not a reward term"):
        OffPolicyRunner(cfg, tmp_path)
