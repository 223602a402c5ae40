"""benchmarks/raptor_policy.py: RAPTOR's published foundation policy sees our observation in its own layout, keeps
its GRU state between calls, and flies our L2F task with the right rotor order."""

from dataclasses import replace

import numpy as np
import pytest
import torch

QuadrotorPolicy = pytest.importorskip("foundation_policy").QuadrotorPolicy

from benchmarks.raptor_policy import RaptorPolicy  # noqa: E402
from robot_rl.presets import crazyflie_hover_robust_gru  # noqa: E402
from sim.quadrotor.evaluation import evaluate  # noqa: E402


def test_raptor_sees_the_state_and_the_last_action_and_carries_its_state():
    policy = RaptorPolicy()
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(3, 18 + 48 * 4, generator=gen) * 0.3
    own = np.concatenate((obs[:, :18].numpy(), obs[:, -4:].numpy()), axis=1).astype(np.float64)
    by_hand = QuadrotorPolicy()  # a second copy of the package's network, fed the 22 values by hand
    by_hand.reset()
    first = policy(obs)
    assert first.shape == (3, 4) and first.dtype == torch.float32
    np.testing.assert_allclose(first.numpy(), np.clip(by_hand.evaluate_step(own), -1, 1), atol=1e-6)
    second = policy(obs)  # the same input, a different GRU state: another action
    assert float((second - first).abs().max()) > 1e-4
    policy.begin_episodes(3)
    np.testing.assert_allclose(policy(obs).numpy(), first.numpy(), atol=1e-7)
    with pytest.raises(ValueError, match="action history"):
        policy(obs[:, :20])


def test_raptor_hovers_the_paper_model_from_level_still_starts():
    """Given three other rotor orders it crashes every episode; in ours it holds the paper model."""
    task = replace(crazyflie_hover_robust_gru().task, episode_length=300, init_max_angle_deg=0.0,
                   init_max_linear_velocity=0.0, init_max_angular_velocity=0.0)
    out = evaluate(RaptorPolicy(), task, 16, seed=5)
    assert out["survival"] == 1.0
    assert out["median_final_error_m"] < 0.1, out["median_final_error_m"]
