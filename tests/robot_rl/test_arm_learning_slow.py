"""Learning check of the arm half: asymmetric SAC learns the Panda reach from scratch (held-out success ≥ 90 %)."""

import json

import pytest

pytest.importorskip("mujoco")

from robot_rl.checkpoint import load_checkpoint  # noqa: E402
from sim.registry import get_task  # noqa: E402


@pytest.mark.slow
def test_sac_learns_panda_reach_from_scratch(trained_reach_run):
    run, summary = trained_reach_run  # tests/conftest.py: robot-rl train panda-reach-sac --seed 0
    # the exported ONNX policy on 100 held-out episodes (evaluation.seed), random goals in a 25x40x25 cm box
    assert summary["eval"]["success"] >= 0.9 and summary["eval"]["passed"], summary
    doc = json.loads((run / "eval.json").read_text())
    assert doc["episodes"] == 100 and doc["seed"] == 1_000_003 and doc["policy"].startswith("export/policy.onnx")
    # asymmetric: the critics read the privileged group (exact state, goal offset, randomised gains/latency)
    env = get_task("panda-reach").probe()
    tensors, _ = load_checkpoint(run / "checkpoint")
    assert tensors["critic.weights.0"].shape[1] == env.obs_dims["critic"] + env.action_dim
    assert tensors["actor.net.linears.0.weight"].shape[1] == env.obs_dims["policy"] < env.obs_dims["critic"]
