"""End to end on the MuJoCo Panda: expert demonstrations -> diffusion policy -> closed-loop pick success."""

import pytest
import torch

from robot_rl.policies.rollout import evaluate_chunked
from robot_rl.runners.bc import load_policy

pytest.importorskip("mujoco")


@pytest.mark.slow
def test_diffusion_policy_learns_pick_cube_from_100_demos(trained_pick_dp):
    """100 demonstrations (``robot-rl demos``), 1500 training steps (the session fixture ``trained_pick_dp``)."""
    from sim.arm import ARM_TASKS

    torch.set_num_threads(1)
    run, _ = trained_pick_dp
    cfg_cls, env_cls = ARM_TASKS["panda-pick-cube"]
    policy, _ = load_policy(run)
    result = evaluate_chunked(env_cls(cfg_cls(num_envs=25)), policy, 50, seed=1000)  # held-out env seeds
    assert result["success_rate"] >= 0.85, result
