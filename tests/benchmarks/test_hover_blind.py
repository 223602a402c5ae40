"""benchmarks/hover_blind.py and hover_crashes.oracle's ``copies``/``blind_steps``: corrections shared over vehicles
for the first steps, on hand-made starts."""

import json

import pytest
import torch

from benchmarks.hover_crashes import blind_copies, oracle, saves
from benchmarks.hover_planner import episode_env, fly_with_offsets
from tests.benchmarks.test_hover_planner import _task_and_starts


class Mid(torch.nn.Module):
    """Every motor at half command, above any idle floor (so a correction has a gradient): the starts fall."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], 4)


def test_copies_share_the_start_and_take_other_episodes_vehicles():
    init, _, _ = _task_and_starts()
    init["vehicles"]["mass"] = torch.tensor([0.027, 0.030, 0.033])
    init["force"] = torch.arange(9.0).reshape(3, 3)
    idx = torch.tensor([0, 2])
    c = blind_copies(init, idx, copies=4, seed=1)
    assert c["state"].shape == (8, 17)
    torch.testing.assert_close(c["state"], init["state"][idx.repeat(4)], rtol=0, atol=0)
    # copy 0 (the first 2 envs) flies its own episodes; every copy's force and vehicle come from one episode
    torch.testing.assert_close(c["vehicles"]["mass"][:2], init["vehicles"]["mass"][idx], rtol=0, atol=0)
    source = ((c["force"][:, None] == init["force"][None]).all(-1)).float().argmax(-1)
    torch.testing.assert_close(c["vehicles"]["mass"], init["vehicles"]["mass"][source], rtol=0, atol=0)
    assert len(set(source[2:].tolist())) > 1  # the other copies draw other episodes
    torch.testing.assert_close(blind_copies(init, idx, 4, seed=1)["force"], c["force"], rtol=0, atol=0)


def test_a_save_may_not_lose_a_copy_the_policy_keeps():
    # 4 episodes x 3 copies: copy 0 passes in episodes 0, 1, 2; in episode 1 another copy that the policy alone
    # kept now fails; in episode 2 the failing copy was lost anyway; in episode 3 copy 0 fails
    ok = torch.tensor([[True, True, True, False], [True, False, False, True], [True, True, True, True]])
    kept = torch.tensor([[False, False, False, False], [True, True, False, True], [False, False, False, False]])
    assert saves(ok, kept).tolist() == [True, False, True, False]
    assert saves(ok[:1], kept[:1]).tolist() == [True, True, True, False]  # one copy: the oracle's own test


@pytest.mark.parametrize("blind_steps", [0, 30])
def test_one_copy_is_the_oracle_whatever_is_shared(blind_steps):
    init, _, task = _task_and_starts()
    idx = torch.arange(3)
    ref = oracle(Mid(), task, init, idx, horizon=30, iters=20, lr=0.1, log=lambda _: None)
    out = oracle(Mid(), task, init, idx, horizon=30, iters=20, lr=0.1, copies=1, blind_steps=blind_steps,
                 log=lambda _: None)
    # episode 1 (thrust-to-weight 2.2) is saved within the 30 steps; 0 (1.31) is not yet; 2 is lost to any controller
    assert out["saved"].tolist() == ref["saved"].tolist() == [False, True, False]
    torch.testing.assert_close(out["delta"], ref["delta"], rtol=0, atol=0)


def test_a_shared_start_still_saves_and_the_save_flies():
    init, _, task = _task_and_starts()
    idx = torch.arange(3)
    out = oracle(Mid(), task, init, idx, horizon=30, iters=20, lr=0.1, copies=3, blind_steps=10,
                 log=lambda _: None)
    assert out["saved"].tolist() == [False, True, False]
    assert out["delta"][:, 1].abs().max() > 0.1 and out["delta"][:, 0].abs().max() == 0  # only saves are kept
    env, restart = episode_env(task, init, idx[1:2])
    _, alive = fly_with_offsets(Mid(), env, restart, out["delta"][:, 1:2], 1, 30, task.position_limit)
    assert alive.all()  # copy 0's correction, flown on its own vehicle, keeps it inside the bound
    with pytest.raises(ValueError, match="blind_steps"):
        oracle(Mid(), task, init, idx, horizon=30, iters=1, copies=3, blind_steps=31)


def test_the_benchmark_line_of_a_small_run(tmp_path, monkeypatch, capsys):
    from benchmarks import hover_blind
    from robot_rl.presets import crazyflie_hover_robust_gru
    from robot_rl.runs import make_runner

    cfg = crazyflie_hover_robust_gru()
    cfg.task.num_envs, cfg.env_impl = 8, "torch"
    cfg.apg.horizon, cfg.apg.actor_hidden, cfg.apg.recurrent_state = 10, (8,), 8
    cfg.on_policy.total_env_steps, cfg.eval_every, cfg.checkpoint_every = 160, 0, 0
    make_runner(cfg, tmp_path).train()
    monkeypatch.setattr("sys.argv", ["hover_blind.py", str(tmp_path), "--vehicles", "6", "--copies", "2",
                                     "--blind-steps", "3", "--horizon", "20", "--iters", "3", "--verify-draws", "2"])
    hover_blind.main()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["vehicles"], line["copies"], line["blind_steps"]) == (6, 2, 3)
    assert line["policy_crashes"] == round(6 * (1 - line["policy_survival"])) > 0  # two updates: it crashes
    for name in ("", "oracle_"):
        assert 0 <= line[f"{name}saved"] <= line[f"{name}saved_noise_free"] <= line["policy_crashes"]
        assert line[f"{name}reachable"] == (6 - line["policy_crashes"] + line[f"{name}saved"]) / 6
