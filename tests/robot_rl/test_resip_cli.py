"""`robot-rl train resip --base RUN`, `--resume`, `robot-rl eval` and `export` on a residual run."""

import json

import pytest
import torch

pytest.importorskip("mujoco")

from deploy.chunked_runtime import load_runner  # noqa: E402
from deploy.residual_runtime import ResidualPolicyRunner  # noqa: E402
from robot_rl.checkpoint import load_checkpoint  # noqa: E402
from robot_rl.cli import main  # noqa: E402
from robot_rl.commands.resip import load_resip  # noqa: E402

BC = ["--steps", "100", "--batch-size", "32", "--diffusion.mlp-hidden", "32", "32", "--diffusion.horizon", "8",
      "--diffusion.n-action-steps", "4", "--diffusion.num-inference-steps", "3", "--checkpoint-every", "0"]
RESIP = ["--num-envs", "4", "--steps-per-env", "8", "--total-env-steps", "64", "--epochs", "1", "--actor-hidden",
         "16", "16", "--critic-hidden", "16", "16", "--log-every", "32", "--checkpoint-every", "32"]


def test_resip_trains_exports_evaluates_and_resumes(tmp_path, capsys):
    main(["demos", "panda-reach", "--episodes", "6", "--out", str(tmp_path / "demos")])
    base = tmp_path / "dp"
    main(["train", "dp-panda-reach", "--demos", str(tmp_path / "demos"), "--out", str(base), "--eval-episodes", "0",
          *BC])
    capsys.readouterr()
    main(["train", "--help"])
    assert "resip" in capsys.readouterr().out
    run = tmp_path / "resip"
    main(["train", "resip", "--base", str(base), "--out", str(run), "--eval-episodes", "4", *RESIP])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 64 and summary["export_max_abs_error"] <= 1e-5
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algorithm"] == "resip" and cfg["task"] == "panda-reach" and cfg["scale"] == 0.1
    doc = json.loads((run / "export" / "policy.json").read_text())
    assert doc["kind"] == "composed" and doc["composition"]["kind"] == "residual"
    assert isinstance(load_runner(run / "export", sources={"state": None}), ResidualPolicyRunner)
    ev = json.loads((run / "eval.json").read_text())
    assert ev["episodes"] == 4 and ev["seed"] == 1_000_003 and 0 <= ev["resip_success"] <= 1
    main(["eval", str(run), "--episodes", "4", "--no-sweep"])
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["resip_success"] == ev["resip_success"] and again["base_success"] == ev["base_success"]
    main(["eval", str(run), "--episodes", "4", "--sim", "ours", "pybullet"])
    both = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sims = both["simulators"]
    assert {k: v for k, v in sims["ours"].items() if k != "robustness"} == {
        "backend": "mujoco", "base_success": ev["base_success"],
        "resip_success": ev["resip_success"]}  # the reference backend: the same numbers
    assert sims["pybullet"]["backend"] == "pybullet" and 0 <= sims["pybullet"]["resip_success"] <= 1
    assert "| pybullet | base + residual |" in (run / "report.md").read_text()
    assert both["transfer_traces"]["initial_gap"] <= 1e-6 and list(both["transfer_traces"]["parting_times_s"]) == [
        "pybullet"]  # base + residual traced in both simulators from the same initial states
    assert (run / "transfer_trajectories.png").is_file()
    for s in sims.values():  # the sweep of base + residual per simulator; its nominal row = the same 4 episodes
        assert s["robustness"][0]["parameter"] == "nominal" and s["robustness"][0]["episodes"] == 4
        assert s["robustness"][0]["success"] == s["resip_success"] and len(s["robustness"]) == 4
    assert "## Robustness sweep of base + residual in pybullet" in (run / "report.md").read_text()
    assert "transfer_trajectories.png" in (run / "report.md").read_text()
    with pytest.raises(SystemExit):
        main(["eval", str(run), "--episodes", "4", "--sim", "isaac"])
    assert "no simulator backend 'isaac'" in capsys.readouterr().err
    main(["train", "--resume", str(run), "--eval-episodes", "0"])
    assert "resuming" in capsys.readouterr().out
    main(["export", str(run)])
    assert "residual actor" in capsys.readouterr().out
    # --keep-best: the run's residual (eval, export) is the actor of its best in-training evaluation
    krun = tmp_path / "resip-best"
    main(["train", "resip", "--base", str(base), "--out", str(krun), "--eval-episodes", "4", "--keep-best",
          "--eval-every", "32", "--selection-episodes", "3", *RESIP])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tensors, meta = load_checkpoint(krun / "checkpoint")
    assert meta["best"]["env_steps"] in (32, 64) and meta["best"]["seed"] == 2_000_003
    assert meta["best"]["episodes"] == 3  # --selection-episodes; --eval-episodes is the evaluation after training
    _, _, actor, _ = load_resip(krun)
    for k, v in actor.state_dict().items():
        assert torch.equal(v, tensors[f"best_actor.{k}"]), k
    assert summary["export_max_abs_error"] <= 1e-5
    ev = json.loads((krun / "eval.json").read_text())
    assert ev["kept"]["env_steps"] == meta["best"]["env_steps"]
    assert json.loads((krun / "export" / "policy.json").read_text())["training"]["kept"] == meta["best"]
    assert "the actor kept at" in (krun / "report.md").read_text()
    # the in-context residual (--history): trained, exported with its window input, evaluated, resumed
    hrun = tmp_path / "resip-history"
    main(["train", "resip", "--base", str(base), "--out", str(hrun), "--eval-episodes", "4", "--history", "3",
          "--history-actions", *RESIP])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["export_max_abs_error"] <= 1e-5 and 0 <= summary["eval"]["resip_success"] <= 1
    comp = json.loads((hrun / "export" / "policy.json").read_text())["composition"]
    assert comp["inputs"] == ["obs", "base_action", "history"] and comp["history"]["steps"] == 3
    assert load_runner(hrun / "export", sources={"state": None}).history_steps == 3
    main(["train", "--resume", str(hrun), "--eval-episodes", "0"])
    assert "resuming" in capsys.readouterr().out


def test_resip_refuses_a_missing_base(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "resip", "--base", str(tmp_path / "nothing")])
    assert "no behaviour-cloning checkpoint" in capsys.readouterr().err
