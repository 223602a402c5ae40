"""`robot-rl train/eval/export/sim` on a registered task that is not the quadrotor (tests/robot_rl/reach_task)."""

import json

import pytest
import torch

from deploy import contract
from robot_rl.checkpoint import load_checkpoint
from robot_rl.cli import main
from robot_rl.config import TrainConfig, get_training_config, train_config_from_dict
from robot_rl.runs import load_config
from tests.robot_rl.reach_task import PointReachConfig, ReachEvalConfig

APG = ["--algorithm", "apg", "--task.num-envs", "64", "--apg.horizon", "30", "--apg.actor-hidden", "32",
       "--apg.lr", "0.01", "--on-policy.total-env-steps", "96000", "--eval-every", "19200",
       "--eval-episodes-during-training", "32", "--log-every", "9600", "--checkpoint-every", "48000"]


def test_train_help_lists_tasks_and_presets(capsys):
    main(["train", "--help"])
    out = capsys.readouterr().out
    assert "presets (tuned recipes):" in out and "crazyflie-hover " in out and "[task quadrotor-hover]" in out
    tasks = out.split("tasks (")[1]
    assert "quadrotor-hover" in tasks and "point-reach" in tasks and "auto, torch, fused" in tasks


def test_point_reach_trains_evaluates_exports_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "point-reach", "--seed", "0", "--out", str(run), *APG])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # 100 APG updates: the oracle (a = (goal - position) / step) is easy to fit; standing still scores 0 %
    assert summary["eval"]["success"] >= 0.9 and summary["eval"]["passed"]
    assert summary["first_pass"] is not None and summary["first_pass"]["success"] >= 0.9
    assert summary["export_max_abs_error"] <= 1e-5
    spec = contract.load(run / "export")
    assert spec["action"]["type"] == "ee_delta" and spec["robot"] == "point-mass" and "model" not in spec
    assert [c["name"] for c in spec["observation"]] == ["ee_position", "goal_position"]
    assert spec["training"]["task"] == "point-reach" and spec["task"] == "point-reach"
    assert "eval_success" in (run / "metrics.csv").read_text().splitlines()[0]
    cfg = load_config(run)
    assert cfg.task_name == "point-reach" and isinstance(cfg.task, PointReachConfig) and cfg.task.num_envs == 64
    assert isinstance(cfg.evaluation, ReachEvalConfig) and cfg.evaluation.episodes == 64

    assert summary["first_pass"]["seed"] == cfg.evaluation.selection_seed == 2_000_003  # chosen on these
    main(["eval", str(run), "--episodes", "128"])
    held = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert held["success"] >= 0.9 and set(held) == {"success", "mean_return", "passed"}
    doc = json.loads((run / "eval.json").read_text())
    assert doc["seed"] == cfg.evaluation.seed == 1_000_003 and doc["episodes"] == 128  # confirmed on these
    assert "(held out from the in-training evaluations" in (run / "report.md").read_text()

    main(["export", str(run)])
    assert "exported" in capsys.readouterr().out
    main(["train", "--resume", str(run)])  # finished run: resumes at its end and re-exports/evaluates
    assert "resuming" in capsys.readouterr().out


def test_point_reach_off_policy_is_deterministic(tmp_path):
    args = ["--algorithm", "td3", "--task.num-envs", "8", "--off-policy.total-env-steps", "400",
            "--off-policy.critic-starts", "160", "--off-policy.actor-starts", "240", "--off-policy.batch-size", "16",
            "--td3.actor-hidden", "8", "--td3.critic-hidden", "8", "--evaluation.episodes", "8",
            "--checkpoint-every", "0", "--log-every", "200"]
    for name in ("a", "b"):
        main(["train", "point-reach", "--seed", "5", "--out", str(tmp_path / name), *args])
    (ta, _), (tb, _) = (load_checkpoint(tmp_path / n / "checkpoint") for n in ("a", "b"))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_sim_runs_any_task(tmp_path, capsys):
    out = tmp_path / "reach.png"
    main(["sim", "point-reach", "--steps", "40", "--episodes", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(text.splitlines()[0])["episodes_ended"] == 2  # 30-step episodes, 40 steps, 2 envs


def test_configs_round_trip_and_old_runs_load(tmp_path):
    cfg = get_training_config("point-reach")
    assert cfg.curriculum.every == 0 and cfg.preset == "point-reach"
    back = train_config_from_dict(json.loads(cfg.to_json()))
    assert back == cfg
    old = TrainConfig().to_dict()  # a quadrotor run's config.json from before the registry had no task_name
    del old["task_name"]
    assert train_config_from_dict(old) == TrainConfig()
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict() | {"task_name": "panda-nope"}))
    with pytest.raises(ValueError, match="cannot load this run's config: unknown task 'panda-nope'; registered"):
        load_config(tmp_path)
    with pytest.raises(ValueError, match="unknown preset 'nope' \\(and no task of that name\\); presets: .*tasks: "):
        get_training_config("nope")


def test_task_errors_are_one_line(tmp_path, capsys):
    for argv, msg in ((["train", "point-reach", "--env-impl", "fused"],
                       "task 'point-reach' has no env implementation 'fused'; choose from auto, default"),
                      (["sim", "nope"], "unknown task 'nope'; registered:")):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--out", str(tmp_path / "x")] if argv[0] == "train" else argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("robot-rl: error: ") and msg in err


def test_off_policy_runs_a_task_without_reward_terms(tmp_path):
    from robot_rl.runners.off_policy import OffPolicyRunner
    from tests.robot_rl.reach_task import PointReachEnv

    class NoTerms(PointReachEnv):
        reward_term_names = ()

        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            del info["reward_terms"]
            return obs, reward, terminated, truncated, info

    cfg = TrainConfig.for_task("point-reach", algorithm="sac")
    cfg.off_policy.critic_starts = cfg.off_policy.actor_starts = 32
    runner = OffPolicyRunner(cfg, tmp_path, env=NoTerms(PointReachConfig(num_envs=8)))
    for _ in range(6):
        stats = runner._iteration()
    assert runner.buffer.size == 48 and runner.buffer.data["reward_terms"].shape[1] == 0 and "critic_loss" in stats
