"""EXPO's stop at ``target_success``: ``passes_in_a_row`` evaluations in a row, and a stopped run extended to a
stricter stop reproduces an uninterrupted run with it."""

import pytest
import torch

pytest.importorskip("mujoco")

from robot_rl.residual.expo import EXPOConfig  # noqa: E402
from robot_rl.runners.expo import EXPORunner, EXPOTrainConfig, check_resume_config  # noqa: E402

SCRIPT = [0.9, 0.5, 0.85, 0.9, 0.95, 0.2, 0.3, 0.4]  # selection success of the evaluation at env steps 8, 16, ...


def _runner(base, path, passes=1, **over):
    fields = {"num_envs": 4, "env_steps": 64, "pretrain_steps": 2, "batch_size": 16, "eval_every": 8,
              "checkpoint_every": 0, "target_success": 0.8, "passes_in_a_row": passes} | over
    cfg = EXPOTrainConfig(base=str(base), expo=EXPOConfig(hidden=(16, 16), num_candidates=2), **fields)
    runner = EXPORunner(cfg, path)
    # the script is indexed by env steps, so a resumed runner reads the same evaluations an uninterrupted one does
    runner.evaluate = lambda episodes, **_: {"success": SCRIPT[runner.env_steps // 8 - 1], "mean_episode_length": 9.0}
    return runner


def test_the_run_stops_at_the_last_of_the_passes_in_a_row(expo_base_run, tmp_path):
    torch.set_num_threads(1)
    one = _runner(expo_base_run, tmp_path / "one").train()
    assert one["env_steps"] == one["env_steps_to_target"] == 8  # the first evaluation passes
    two = _runner(expo_base_run, tmp_path / "two", passes=2)
    out = two.train()
    assert out["env_steps"] == out["env_steps_to_target"] == 32  # 0.9 | 0.5 | 0.85, 0.9: the 2nd in a row
    assert two.passes_in_a_row == 2
    assert _runner(expo_base_run, tmp_path / "three", passes=3).train()["env_steps_to_target"] == 40
    with pytest.raises(ValueError, match="--passes-in-a-row: need >= 1, got 0"):
        _runner(expo_base_run, tmp_path / "zero", passes=0)


def test_a_stopped_run_extended_to_two_passes_matches_an_uninterrupted_one(expo_base_run, tmp_path):
    torch.set_num_threads(1)
    whole = _runner(expo_base_run, tmp_path / "whole", passes=2)
    whole.train()
    _runner(expo_base_run, tmp_path / "run").train()  # stops at 8 with one pass
    go_on = _runner(expo_base_run, tmp_path / "run", passes=2)
    go_on.load(tmp_path / "run" / "checkpoint", extend=True)
    assert go_on.env_steps == 8 and go_on.first_pass is None and go_on.passes_in_a_row == 1
    out = go_on.train()
    assert out["env_steps_to_target"] == whole.first_pass == 32 and go_on.updates == whole.updates
    for (name, a), (_, b) in zip(whole.agent.state_dict().items(), go_on.agent.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # the stricter run's checkpoint keeps its count: loading it again under the same rule stays stopped
    again = _runner(expo_base_run, tmp_path / "run", passes=2)
    again.load(tmp_path / "run" / "checkpoint")
    assert again.first_pass == 32 and again.passes_in_a_row == 2


def test_a_resume_refuses_another_config_and_extend_only_a_stricter_stop(expo_base_run, tmp_path):
    torch.set_num_threads(1)
    _runner(expo_base_run, tmp_path / "run", passes=2).train()
    ckpt = tmp_path / "run" / "checkpoint"
    with pytest.raises(ValueError, match="saved with batch_size=16, this run has batch_size=8 .a resume keeps"):
        _runner(expo_base_run, tmp_path / "b", passes=2, batch_size=8).load(ckpt, extend=True)
    with pytest.raises(ValueError, match="saved with passes_in_a_row=2, this run has passes_in_a_row=3"):
        _runner(expo_base_run, tmp_path / "c", passes=3).load(ckpt)  # a plain resume: the same config only
    with pytest.raises(ValueError, match="saved with passes_in_a_row=2, this run has passes_in_a_row=1"):
        _runner(expo_base_run, tmp_path / "d", passes=1).load(ckpt, extend=True)  # looser: it would have stopped


def test_a_field_the_saved_config_lacks_is_the_default_of_its_time():
    now = EXPOTrainConfig(base="b", fail_penalty=0.0).to_dict()
    saved = {k: v for k, v in now.items() if k not in ("fail_penalty", "passes_in_a_row")}
    saved["expo"] = {k: v for k, v in now["expo"].items() if k != "select_margin"}
    check_resume_config(saved, now, extend=False)  # a checkpoint from before these fields resumes
    saved["expo"]["edit_scale"] = 0.5
    with pytest.raises(ValueError, match=r"saved with expo.edit_scale=0.5, this run has expo.edit_scale=0.2"):
        check_resume_config(saved, now, extend=True)
