"""End to end on the MuJoCo Panda: expert demonstrations -> diffusion policy -> closed-loop pick success."""

import pytest
import torch

from robot_rl.data import write_dataset
from robot_rl.data.collect import collect_demos
from robot_rl.policies.presets import bc_preset
from robot_rl.policies.rollout import evaluate_chunked
from robot_rl.runners.bc import BCRunner, load_policy

pytest.importorskip("mujoco")


@pytest.mark.slow
def test_diffusion_policy_learns_pick_cube_from_100_demos(tmp_path):
    from sim.arm import ARM_TASKS
    from sim.arm.experts import make_expert

    torch.set_num_threads(1)
    cfg_cls, env_cls = ARM_TASKS["panda-pick-cube"]
    env = env_cls(cfg_cls(num_envs=16))
    demos, _ = collect_demos(env, make_expert(env, seed=1, action_noise=0.1), 100, seed=0)
    demo_dir = write_dataset(tmp_path / "demos", demos, fps=50, task="panda-pick-cube")
    cfg = bc_preset("dp-panda-pick-cube", str(demo_dir), seed=0)
    cfg.steps = 1500
    BCRunner(cfg, tmp_path / "run").train()
    policy, _ = load_policy(tmp_path / "run")
    result = evaluate_chunked(env_cls(cfg_cls(num_envs=25)), policy, 50, seed=1000)  # held-out env seeds
    assert result["success_rate"] >= 0.85, result
