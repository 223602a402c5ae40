"""EXPO's wrench input, training-only task fields and failure penalty (``EXPOTrainConfig.wrench``, ``train_task``,
``fail_penalty``): what Q and the edit policy read, what the training envs are, and exact resume with them."""

import pytest
import torch

pytest.importorskip("mujoco")

from robot_rl.residual.expo import EXPOConfig  # noqa: E402
from robot_rl.residual.expo_inputs import WRENCH_SPAN, agent_obs, agent_obs_norm  # noqa: E402
from robot_rl.runners.expo import CandidatePolicy, EXPORunner, EXPOTrainConfig, load_expo  # noqa: E402


def test_agent_obs_appends_the_raw_wrench_and_its_fixed_scale():
    hist = torch.arange(12.0).view(2, 3, 2)
    wrench = torch.arange(12.0).view(2, 6) * 10
    obs = agent_obs(hist, wrench)
    assert torch.equal(obs, torch.cat((hist.flatten(1), wrench), 1))
    assert torch.equal(agent_obs(hist, None), hist.flatten(1))
    with pytest.raises(ValueError, match=r"must be \[2, 6\]"):
        agent_obs(hist, wrench[:, :5])
    mid, span = agent_obs_norm(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]), 3, wrench=True)
    assert mid.tolist() == [1, 2] * 3 + [0] * 6 and span.tolist() == [3, 4] * 3 + list(WRENCH_SPAN)


def _cfg(expo_base_run, **kw):
    return EXPOTrainConfig(base=str(expo_base_run), num_envs=4, env_steps=48, pretrain_steps=0, batch_size=16,
                           demos="none", expo=EXPOConfig(hidden=(16, 16), num_candidates=2), eval_every=0,
                           checkpoint_every=0, **kw)


def test_wrench_run_stores_the_reading_trains_envs_with_task_fields_and_resumes_exactly(expo_base_run, tmp_path):
    torch.set_num_threads(1)
    kw = {"wrench": True, "train_task": {"success_distance": 0.5}, "fail_penalty": 0.5}
    whole = EXPORunner(_cfg(expo_base_run, **kw), tmp_path / "a")
    assert whole.env.cfg.success_distance == 0.5 and whole.env.cfg.ft_sensor.enabled
    assert whole.task_cfg.success_distance != 0.5  # evaluation keeps the task as registered
    assert whole.cfg.expo.target_range == (-0.5, 1.0)
    obs_dim = whole.base.n_obs_steps * whole.base.obs_dim
    assert whole.agent.critic.q.obs_dim == obs_dim + 6
    whole.train()
    stored = whole.replay.online.data["obs"][:whole.replay.online.size]
    assert stored[:, obs_dim:].abs().sum() > 0  # the readings, not zeros
    assert whole.successes > 0  # the wide success radius of the training envs
    first = EXPORunner(_cfg(expo_base_run, **kw), tmp_path / "b")
    first.train(stop_at=24)
    resumed = EXPORunner(_cfg(expo_base_run, **kw), tmp_path / "c")
    resumed.load(tmp_path / "b" / "checkpoint")
    resumed.train()
    for (name, a), (_, b) in zip(whole.agent.state_dict().items(), resumed.agent.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(whole.replay.online.data["obs"], resumed.replay.online.data["obs"])
    cfg, policy, agent, _ = load_expo(tmp_path / "a")
    assert cfg.wrench and agent.critic.q.obs_dim == obs_dim + 6
    cand = CandidatePolicy(policy, agent, 0, wrench=True)
    assert cand.obs_groups == ("policy", "wrench")
    res = whole.evaluate(2)  # the evaluation env has the sensor and the policy reads it
    assert 0.0 <= res["success"] <= 1.0


def test_fail_penalty_is_charged_on_terminal_failures_only(expo_base_run, tmp_path):
    runner = EXPORunner(_cfg(expo_base_run, fail_penalty=0.5), tmp_path)
    term = torch.tensor([True, True, False, False])
    success = torch.tensor([True, False, False, True])
    r = runner._reward(torch.zeros(4), term, success)
    assert r.tolist() == [1.0, -0.5, 0.0, 1.0]


def test_wrench_refuses_demonstrations_and_a_negative_penalty(expo_base_run, tmp_path):
    with pytest.raises(ValueError, match="demonstrations hold no wrench"):
        EXPORunner(EXPOTrainConfig(base=str(expo_base_run), wrench=True), tmp_path / "a")
    with pytest.raises(ValueError, match="fail-penalty"):
        EXPORunner(_cfg(expo_base_run, fail_penalty=-1.0), tmp_path / "b")
