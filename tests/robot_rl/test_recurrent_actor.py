"""The recurrent (GRU) actor: its state, APG through it, resume, and evaluation with memory."""

import re
from pathlib import Path

import pytest
import torch

from robot_rl.algorithms.apg import APG, APGConfig
from robot_rl.config import get_preset
from robot_rl.models.recurrent import GRUActor, StatefulPolicy
from robot_rl.runs import make_runner
from tests.robot_rl.test_training import tiny

ROOT = Path(__file__).resolve().parents[2]


def recurrent_cfg(steps=320):
    cfg = tiny("apg", steps=steps)
    cfg.apg.recurrent_state = 8
    cfg.task.episode_length = 15  # several episode ends inside the run's windows
    return cfg


def test_gru_actor_carries_a_state_that_changes_its_actions():
    torch.manual_seed(0)
    actor = GRUActor(6, 16, 8, 2)
    obs = torch.randn(4, 6)
    a0, s1 = actor(obs, actor.initial_state(4))
    a1, _ = actor(obs, s1)
    assert s1.shape == (4, 8) and actor.initial_state(4).abs().max() == 0
    assert (a0 - a1).abs().max() > 1e-4  # same observation, another state: another action
    assert a0.abs().max() < 1


def test_stateful_policy_needs_begin_episodes_and_restarts_from_zero():
    torch.manual_seed(0)
    policy = StatefulPolicy(GRUActor(6, 16, 8, 2))
    obs = torch.randn(3, 6)
    with pytest.raises(ValueError, match=r"begin_episodes\(3\)"):
        policy(obs)
    policy.begin_episodes(3)
    first = [policy(obs) for _ in range(5)]
    policy.begin_episodes(3)
    again = [policy(obs) for _ in range(5)]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (first[0] - first[4]).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"begin_episodes\(2\)"):
        policy(obs[:2])


def test_apg_recurrent_config_errors():
    with pytest.raises(ValueError, match="apg.recurrent_state: need > 0 and one actor_hidden layer"):
        APG(APGConfig(actor_hidden=(16, 16), recurrent_state=8), 6, 2)
    actor = APG(APGConfig(actor_hidden=(16,), recurrent_state=8), 6, 2, init_action=0.3).actor
    assert isinstance(actor, GRUActor)
    torch.testing.assert_close(actor(torch.zeros(1, 6), actor.initial_state(1))[0], torch.full((1, 2), 0.3),
                               atol=0.02, rtol=0)  # starts near the init action, like the MLP


def test_apg_trains_the_recurrent_weights_and_zeroes_the_state_of_ended_episodes(tmp_path):
    cfg = recurrent_cfg()
    runner = make_runner(cfg, tmp_path / "run")
    actor = runner.algo.actor
    before = actor.cell.weight_hh.detach().clone()
    runner._iteration()
    assert (actor.cell.weight_hh - before).abs().max() > 0  # the gradient reaches the memory
    assert runner.state.abs().max() > 0 and not runner.state.requires_grad
    # the env's step counter is 0 right after an auto-reset (15-step episodes end at the third window's last
    # step): those envs' state must be zero, the others' not
    checked = 0
    for _ in range(3):
        runner._iteration()
        fresh = torch.as_tensor(runner.env.steps) == 0
        if fresh.any():
            assert runner.state[fresh].abs().max() == 0
            checked += 1
        assert runner.state[~fresh].abs().amax(-1).min() > 0 if (~fresh).any() else True
    assert checked


def test_recurrent_apg_resumes_exactly(tmp_path):
    cfg = recurrent_cfg(steps=320)
    whole = make_runner(cfg, tmp_path / "whole")
    whole.train()
    part = make_runner(cfg, tmp_path / "part")
    part.train(stop_at=160)
    resumed = make_runner(cfg, tmp_path / "part")
    resumed.load(tmp_path / "part" / "checkpoint")
    resumed.train()
    torch.testing.assert_close(resumed.state, whole.state, rtol=0, atol=0)
    for a, b in zip(resumed.algo.actor.parameters(), whole.algo.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_in_training_evaluation_flies_the_recurrent_policy_with_a_fresh_state(tmp_path):
    cfg = recurrent_cfg()
    runner = make_runner(cfg, tmp_path / "run")
    runner._iteration()
    first, second = runner.evaluate_now(4), runner.evaluate_now(4)
    assert first["final_errors_m"] == second["final_errors_m"]


def test_the_gru_preset_is_the_robust_preset_with_a_recurrent_actor_the_crazyflie_app_runs():
    gru, mlp = get_preset("crazyflie-hover-robust-gru"), get_preset("crazyflie-hover-robust")
    assert (gru.apg.actor_hidden, gru.apg.recurrent_state) == ((32,), 32)
    h, s, obs = 32, 32, 18 + 4 * gru.task.action_history
    macs = obs * h + 3 * s * h + 3 * s * s + 4 * (h + s)  # c_recurrent.GRUSpec.macs
    limit = re.search(r"#define RLP_CF_MAX_MACS (\d+)", (ROOT / "firmware/crazyflie/src/rlp_controller.c").read_text())
    assert macs == 13120 and macs <= int(limit.group(1))
    gru.apg.actor_hidden, gru.apg.recurrent_state, gru.preset = (64, 64), 0, mlp.preset
    assert gru == mlp


def test_train_export_and_eval_a_recurrent_run(tmp_path):
    """``robot-rl train`` end to end: the run exports ``kind: "recurrent"``, and the export and the checkpoint
    evaluate to the same episodes, twice (each evaluation starts from the zero state)."""
    from deploy import contract
    from robot_rl.commands.evaluate import resolve_policy
    from robot_rl.commands.train import run_training
    from sim.quadrotor.evaluation import evaluate

    cfg = recurrent_cfg()
    run = tmp_path / "run"
    run_training(cfg, run)
    spec = contract.load(run / "export")
    assert spec["kind"] == "recurrent" and spec["recurrent"]["state_size"] == 8
    assert len(spec["test_vector"]["example_input"]) == 8
    onnx, what = resolve_policy(run, "onnx")
    torch_policy, what_torch = resolve_policy(run, "checkpoint")
    assert "recurrent" in what_torch
    results = [evaluate(p, cfg.task, 6, seed=11)["final_errors_m"] for p in (onnx, onnx, torch_policy)]
    assert results[0] == results[1]
    for a, b in zip(results[0], results[2], strict=True):
        assert (a is None) == (b is None) and (a is None or abs(a - b) < 1e-4)
