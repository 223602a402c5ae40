"""``ResiPConfig.fail_penalty`` and ``train_task``: a terminal failure costs reward; the training envs' task fields."""

import pytest
import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import ResiPConfig
from robot_rl.runners.resip import ResiPRunner, train_task_config
from tests.robot_rl.residual.toy import BiasedChunkPolicy, ToyReachEnv


class ToyFailEnv(ToyReachEnv):
    """:class:`ToyReachEnv` whose episodes also end, as failures, once the point leaves the box |p| < 0.3."""

    def step(self, action):
        self.p = self.p + 0.1 * action.clamp(-1, 1)
        self.t += 1
        success = (self.p - self.goal).norm(dim=1) < self.radius
        lost = (self.p.abs() > 0.3).any(1) & ~success
        terminated = success | lost
        truncated = (self.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        self.counts += torch.tensor([int(success.sum()), int(lost.sum())])
        obs = self._obs()
        info = {"final_obs": obs, "done_mask": done, "success": success}
        if done.any():
            self._reset(done)
            obs = self._obs()
        return obs, success.float(), terminated, truncated, info

def _iteration(tmp_path, penalty):
    n = 8
    cfg = ResiPConfig(base="toy", seed=0, num_envs=n, steps_per_env=16, log_every=0, checkpoint_every=0,
                      fail_penalty=penalty)
    env = ToyFailEnv(n, seed=0)
    env.counts = torch.zeros(2, dtype=torch.long)
    runner = ResiPRunner(cfg, tmp_path, env=env, base=FrozenChunkBase(BiasedChunkPolicy(offset=(0.6, 0.0)), n, 0))
    out = runner._iteration()
    return out["reward"] * n * 16, env.counts.tolist()


def test_penalty_is_paid_once_per_terminal_failure(tmp_path):
    total0, (succ0, lost0) = _iteration(tmp_path / "a", 0.0)
    total, (succ, lost) = _iteration(tmp_path / "b", 0.5)
    assert (succ, lost) == (succ0, lost0) and lost > 0  # the same rollout: the penalty only changes the reward
    assert total0 == pytest.approx(succ0, abs=1e-4)
    assert total == pytest.approx(succ - 0.5 * lost, abs=1e-4)


def test_negative_penalty_is_refused():
    with pytest.raises(ValueError, match="fail-penalty"):
        ResiPConfig(base="x", fail_penalty=-1.0).check()


def test_train_task_sets_fields_of_the_training_envs_only():
    cfg = ResiPConfig(base="x", task="panda-peg-insert", wrench=True, num_envs=4,
                      train_task={"beside_ring_fail_depth": 0.01})
    tc = train_task_config(cfg)
    assert (tc.beside_ring_fail_depth, tc.num_envs, tc.ft_sensor.enabled) == (0.01, 4, True)
    with pytest.raises(ValueError, match="no config field 'bogus'"):
        train_task_config(ResiPConfig(base="x", task="panda-peg-insert", train_task={"bogus": 1.0}))
