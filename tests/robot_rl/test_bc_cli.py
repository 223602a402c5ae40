"""`robot-rl train dp-<task>/mse-<task>`, `--resume`, `robot-rl eval` and `export` on behaviour-cloning runs."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from robot_rl.checkpoint import load_checkpoint  # noqa: E402
from robot_rl.cli import main  # noqa: E402
from robot_rl.commands.bc import ChunkExecutor, load_bc_config  # noqa: E402
from robot_rl.runners.bc import BCRunner  # noqa: E402
from tests.sim.test_engine_backends import require  # noqa: E402

TINY = ["--steps", "200", "--batch-size", "32", "--diffusion.mlp-hidden", "32", "32", "--diffusion.horizon", "8",
        "--diffusion.n-action-steps", "4", "--diffusion.num-inference-steps", "3", "--mse.hidden", "32", "32",
        "--mse.horizon", "8", "--mse.n-action-steps", "4", "--checkpoint-every", "100", "--log-every", "50"]


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("bc") / "demos"
    main(["demos", "panda-reach", "--episodes", "8", "--out", str(out)])
    return out


def test_chunk_executor_replans_every_execute_steps_from_a_padded_history():
    calls = []

    def sample(hist):
        calls.append(hist.copy())
        return np.arange(len(calls) * 10, len(calls) * 10 + 6, dtype=np.float32)[None, :, None].repeat(2, 0)

    ex = ChunkExecutor(sample, observation_steps=2, execute=3)
    acts = [float(ex(torch.full((2, 1), float(t)))[0, 0]) for t in range(7)]
    assert acts == [10, 11, 12, 20, 21, 22, 30]
    assert [c[0, :, 0].tolist() for c in calls] == [[0, 0], [2, 3], [5, 6]]


def test_dp_preset_trains_exports_evaluates_and_resumes(demos, tmp_path, capsys):
    main(["train", "--help"])
    assert "dp-panda-pick-cube" in capsys.readouterr().out
    run = tmp_path / "dp"
    main(["train", "dp-panda-reach", "--demos", str(demos), "--out", str(run), "--eval-episodes", "8",
          "--video-episodes", "1", *TINY])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 200 and summary["export_max_abs_error"] <= 1e-5
    doc = json.loads((run / "export" / "policy.json").read_text())
    assert doc["kind"] == "chunked" and doc["chunk"]["execute"] == 4 and doc["chunk"]["steps"] == 3
    ev = json.loads((run / "eval.json").read_text())
    assert ev["episodes"] == 8 and len(ev["episode_success"]) == 8 and ev["seed"] == 1_000_003
    assert "policy.onnx" in ev["policy"] and ev["success"] == pytest.approx(np.mean(ev["episode_success"]))
    assert (run / "eval.mp4").stat().st_size > 0 and (run / "loss.png").is_file()
    assert "| 8 |" in (run / "report.md").read_text()
    # `robot-rl eval` alone: the same held-out episodes and sampler noise give the same numbers
    main(["eval", str(run), "--episodes", "8", "--video-episodes", "0"])
    again = json.loads((run / "eval.json").read_text())
    assert again["episode_success"] == ev["episode_success"] and again["mean_return"] == ev["mean_return"]
    # its robustness sweep: a sampler reset per row, so deterministic and its nominal row is the evaluation
    assert again["robustness"] == ev["robustness"] and [r["parameter"] for r in ev["robustness"]] == [
        "nominal", "servo_gains", "servo_gains", "action_latency"]
    assert ev["robustness"][0]["success"] == ev["success"] and ev["robustness"][0]["episodes"] == 8
    assert "| servo_gains | ×1.2 |" in (run / "report.md").read_text()
    # `--sim mujoco pybullet`: a fresh sampler per simulator, MuJoCo's column is the plain evaluation
    require("pybullet")
    main(["eval", str(run), "--episodes", "8", "--video-episodes", "0", "--sim", "mujoco", "pybullet"])
    both = json.loads((run / "eval_transfer.json").read_text())
    assert list(both["transfer"]) == ["mujoco", "pybullet"] and both["episode_success"] == ev["episode_success"]
    assert both["transfer"]["pybullet"]["episodes"] == 8 and 0 <= both["transfer"]["pybullet"]["success"] <= 1
    assert "| pybullet | pybullet |" in (run / "report_transfer.md").read_text()
    assert both["transfer_traces"]["initial_gap"] <= 1e-6  # the same initial states, traced in both
    assert "transfer_trajectories_transfer.png" in (run / "report_transfer.md").read_text()
    assert (run / "transfer_trajectories_transfer.npz").is_file()
    assert both["transfer"]["mujoco"]["robustness"] == ev["robustness"]
    assert "robustness sweep in pybullet (success, 8 episodes per row): nominal " in capsys.readouterr().out
    # resume: stop a run of the same config at step 100, continue it through the CLI: the same weights
    cfg = load_bc_config(run)
    part = tmp_path / "part"
    BCRunner(cfg, part).train(stop_at=100)
    main(["train", "--resume", str(part), "--eval-episodes", "0"])
    capsys.readouterr()
    full, _ = load_checkpoint(run / "checkpoint")
    resumed, meta = load_checkpoint(part / "checkpoint")
    assert meta["step"] == 200
    for k, v in full.items():
        assert np.array_equal(v.numpy(), resumed[k].numpy()), k
    with pytest.raises(SystemExit):
        main(["train", "dp-panda-reach", "--demos", str(demos), "--out", str(run)])  # never overwrites
    assert "already holds a run" in capsys.readouterr().err


def test_mse_preset_evaluates_from_the_checkpoint(demos, tmp_path, capsys):
    run = tmp_path / "mse"
    main(["train", "mse-panda-reach", "--demos", str(demos), "--out", str(run), "--eval-episodes", "8",
          "--video-episodes", "0", *TINY])
    ev = json.loads((run / "eval.json").read_text())
    assert ev["kind"] == "mse" and "checkpoint" in ev["policy"] and ev["episodes"] == 8
    assert not (run / "export").exists()


def test_dp_preset_without_demos_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        main(["train", "dp-panda-pick-cube"])
    assert "needs --demos DIR" in capsys.readouterr().err
