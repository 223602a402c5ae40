""":func:`robot_rl.residual.reward.learner_reward`: the reward ResiP and EXPO both learn from."""

import torch

from robot_rl.residual.reward import learner_reward

# four envs: succeeded, failed (terminated without success), still running, truncated by the time limit
TERMINATED = torch.tensor([True, True, False, False])
SUCCESS = torch.tensor([True, False, False, False])
SHAPED = torch.tensor([0.25, -0.125, 0.5, 0.75], dtype=torch.float64)


def test_sparse_reward_pays_success_and_charges_only_terminal_failures():
    r = learner_reward("sparse", SHAPED, TERMINATED, SUCCESS, fail_penalty=0.5)
    assert r.dtype == torch.float32
    assert r.tolist() == [1.0, -0.5, 0.0, 0.0]
    assert learner_reward("sparse", SHAPED, TERMINATED, SUCCESS).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_dense_reward_is_the_tasks_less_the_penalty_where_it_failed():
    r = learner_reward("dense", SHAPED, TERMINATED, SUCCESS, fail_penalty=0.5)
    assert r.dtype == torch.float32
    assert r.tolist() == [0.25, -0.625, 0.5, 0.75]
    assert learner_reward("dense", SHAPED, TERMINATED, SUCCESS, 0.0).tolist() == [0.25, -0.125, 0.5, 0.75]


def test_success_given_as_float_and_terminated_as_float_mean_the_same():
    r = learner_reward("sparse", SHAPED, TERMINATED.float(), SUCCESS.float(), fail_penalty=2.0)
    assert r.tolist() == [1.0, -2.0, 0.0, 0.0]
