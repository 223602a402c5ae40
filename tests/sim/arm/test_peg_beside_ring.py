"""``PegInsertConfig.beside_ring_fail_depth``: a peg pushed down beside the ring ends the episode as a failure."""

import pytest
import torch

pytest.importorskip("mujoco")

from sim.arm.peg import RING_THICKNESS, PegInsertConfig, PegInsertEnv  # noqa: E402


def _tips(env):
    """Tip states in each env's true hole frame: (radial offset, depth below the rim) in m."""
    c = env.cfg
    outer = c.peg_radius + c.clearance / 2 + RING_THICKNESS  # 22.6 mm
    cases = [(outer + 0.012, 0.015),   # beside the ring, 15 mm below the rim: lost
             (outer + 0.012, 0.006),   # beside the ring, 6 mm below the rim: not yet
             (0.0, 0.015),             # in the hole, 15 mm down (not yet the 20 mm of success)
             (0.0, 0.025),             # inserted: a success, never a failure
             (outer - 0.004, 0.015)]   # over the ring wall (radial inside its outer radius)
    tip = env.hole.copy()
    for i, (r, d) in enumerate(cases):
        tip[i, 0] += r
        tip[i, 2] -= d
    return tip


@pytest.mark.parametrize("depth,expected", [(0.0, [False] * 5), (0.01, [True, False, False, False, False])])
def test_failed_only_below_the_threshold_beside_the_ring(depth, expected):
    env = PegInsertEnv(PegInsertConfig(num_envs=5, beside_ring_fail_depth=depth))
    env.reset(0)
    tip = _tips(env)
    env.peg_tip = lambda q=None: tip
    _, success, failed = env._evaluate()
    assert success.tolist() == [False, False, False, True, False]
    assert failed.tolist() == expected


def test_the_failure_terminates_the_episode_without_success():
    env = PegInsertEnv(PegInsertConfig(num_envs=5, beside_ring_fail_depth=0.01))
    env.reset(0)
    tip = _tips(env)
    env.peg_tip = lambda q=None: tip
    _, _, terminated, truncated, info = env.step(torch.zeros(5, env.action_dim))
    assert terminated.tolist() == [True, False, False, True, False]
    assert info["success"].tolist() == [False, False, False, True, False]
    assert not truncated.any() and info["done_mask"].tolist() == terminated.tolist()


def test_negative_depth_is_refused():
    with pytest.raises(ValueError, match="beside_ring_fail_depth"):
        PegInsertEnv(PegInsertConfig(num_envs=1, beside_ring_fail_depth=-0.01))

