"""`robot-rl train/eval/export/sim` on the Panda tasks: SAC without reward terms, contract export, report, videos."""

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")

from deploy import contract  # noqa: E402
from robot_rl.cli import main  # noqa: E402
from sim.video import read_video  # noqa: E402
from tests.sim.test_engine_backends import require  # noqa: E402

SAC = ["--algorithm", "sac", "--task.num-envs", "4", "--task.episode-seconds", "0.4",
       "--off-policy.total-env-steps", "200", "--off-policy.critic-starts", "100", "--off-policy.actor-starts", "100",
       "--off-policy.batch-size", "32", "--sac.actor-hidden", "16", "--sac.critic-hidden", "16",
       "--evaluation.episodes", "6", "--checkpoint-every", "0", "--log-every", "100"]


def test_train_help_lists_the_arm_tasks(capsys):
    main(["train", "--help"])
    tasks = capsys.readouterr().out.split("tasks (")[1]
    for name in ("panda-reach ", "panda-reach-bimodal", "panda-pick-cube", "panda-peg-insert"):
        assert name in tasks


def test_sac_on_a_panda_task_trains_exports_and_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "panda-reach-bimodal", "--seed", "1", "--out", str(run), *SAC])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 200 and summary["export_max_abs_error"] <= 1e-5
    spec = contract.load(run / "export")
    assert spec["action"]["type"] == "ee_delta" and spec["action"]["channels"] == ["x", "y", "z"]
    assert spec["action"]["joints"] == [f"panda_joint{i}" for i in range(1, 8)] and spec["robot"] == "panda"
    assert [c["name"] for c in spec["observation"]] == ["joint_position", "joint_velocity", "ee_position",
                                                        "goal_position"]
    assert spec["training"]["task"] == "panda-reach-bimodal" and spec["control_rate_hz"] == 50.0

    main(["eval", str(run), "--episodes", "5", "--video-episodes", "2"])
    out = capsys.readouterr().out.splitlines()
    held = json.loads(out[-1])
    assert out[-2].startswith("robustness sweep (success, 5 episodes per row): nominal ")
    assert "servo gains ×0.8 " in out[-2] and "action latency +10 ms " in out[-2]
    doc = json.loads((run / "eval.json").read_text())
    # the sweep: no object in the bimodal reach, so gains and latency; at most --episodes episodes per row
    assert [(r["parameter"], r["setting"], r["episodes"]) for r in doc["robustness"]] == [
        ("nominal", "as configured", 5), ("servo_gains", "×0.8", 5), ("servo_gains", "×1.2", 5),
        ("action_latency", "+10 ms", 5)]
    assert doc["robustness"][0]["success"] == doc["success"]  # nominal row = the same 5 held-out episodes
    assert doc["episodes"] == 5 and doc["seed"] == 1_000_003 and held["success"] == np.mean(doc["episode_success"])
    report = (run / "report.md").read_text()
    assert "| episodes | successes | failures | success rate | 95 % interval |" in report
    assert f"| 5 | {sum(doc['episode_success'])} |" in report and "eval.mp4" in report
    assert "## Robustness sweep" in report and "| action_latency | +10 ms |" in report
    frames = read_video(run / "eval.mp4")
    assert len(frames) >= 2 * 10 and frames.shape[1:] == (240, 320, 3)  # 2 episodes x 20 steps, every 2nd
    # the same export in MuJoCo and PyBullet: the transfer table, MuJoCo's column is the plain evaluation
    require("pybullet")
    main(["eval", str(run), "--episodes", "5", "--video-episodes", "0", "--sim", "mujoco", "pybullet"])
    both = json.loads((run / "eval_transfer.json").read_text())
    assert list(both["transfer"]) == ["mujoco", "pybullet"] and both["episode_success"] == doc["episode_success"]
    assert both["transfer"]["pybullet"]["backend"] == "pybullet" and both["transfer"]["pybullet"]["episodes"] == 5
    report = (run / "report_transfer.md").read_text()
    assert "## Sim-to-sim transfer" in report and "| pybullet | pybullet |" in report
    assert both["transfer"]["mujoco"]["robustness"] == doc["robustness"]  # the same sweep episodes
    assert len(both["transfer"]["pybullet"]["robustness"]) == 4
    assert "| simulator | nominal | servo gains ×0.8 | servo gains ×1.2 | action latency +10 ms |" in report
    assert report.count("| pybullet | ") == 3  # transfer table, sweep table, header of the traced episodes
    # the first 4 episodes traced in both, from the same initial states (the task's declared signals)
    traces = both["transfer_traces"]
    assert traces["initial_gap"] <= 1e-6 and len(traces["parting_times_s"]["pybullet"]) == 4
    assert (run / "transfer_trajectories_transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert {"mujoco/ee_position", "pybullet/wall_contact"} <= set(np.load(run / "transfer_trajectories_transfer.npz"))
    assert "## Traces in each simulator" in report and "![transfer_trajectories](transfer_trajectories_transfer.png)" \
        in report


def test_sim_expert_renders_a_video(tmp_path, capsys):
    out = tmp_path / "pick.mp4"
    main(["sim", "panda-pick-cube", "--expert", "--episodes", "1", "--steps", "30", "--out", str(out)])
    text = capsys.readouterr().out
    assert f"video written to {out}" in text and json.loads(text.splitlines()[0])["frames"] == 16
    assert read_video(out).shape == (16, 240, 320, 3)


def test_sim_expert_needs_an_expert(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "quadrotor-hover", "--expert"])
    assert "no scripted expert" in capsys.readouterr().err
