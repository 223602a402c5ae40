"""The env contract's compiled step (``BatchedEnv.compiled_step``) against ``step`` on the fused hover env."""

import numpy as np
import pytest
import torch

from sim.core import Unsupported
from sim.quadrotor import QuadrotorTaskConfig
from sim.quadrotor.factory import make_hover_env
from sim.quadrotor.vehicles import VehicleDistribution


def test_compiled_step_continues_step_exactly():
    cfg = QuadrotorTaskConfig(num_envs=6, action_history=3)
    a, b = make_hover_env(cfg, seed=5, impl="fused"), make_hover_env(cfg, seed=5, impl="fused")
    compiled = b.compiled_step()
    g = torch.Generator().manual_seed(0)
    ended = 0
    for t in range(120):
        action = torch.rand(6, 4, generator=g) * 2 - 1
        if t == 60:  # a new weight vector and a checkpoint round trip: the kernel's context follows both
            w = a.reward_weights
            w.position *= 2
            a.set_reward_weights(w)
            b.set_reward_weights(w)
            b.load_state_dict(b.state_dict())
        obs, reward, term, trunc, info = a.step(action)
        if t % 3 == 2:  # interleave the two: each continues the other's state
            obs_b, reward_b, term_b, trunc_b, info_b = b.step(action)
            final_b = info_b["final_obs"]
            done_b = info_b["done_mask"]
            flags_b = torch.stack((term_b, trunc_b, done_b))
            terms_b = info_b["reward_terms"]
        else:
            p, c, reward_b, terms_b, flags, idx, final = compiled.kernel(action.numpy(), compiled.ctx)
            obs_b = {"policy": torch.from_numpy(p), "critic": torch.from_numpy(c)}
            reward_b, terms_b, flags_b = torch.from_numpy(reward_b), torch.from_numpy(terms_b), torch.from_numpy(flags)
            final_b = {k: v.clone() for k, v in obs_b.items()}
            final_b["policy"][idx] = torch.from_numpy(final[:, :p.shape[1]])
            final_b["critic"][idx] = torch.from_numpy(final[:, p.shape[1]:])
            assert np.array_equal(idx, np.flatnonzero(flags[2]))
        ended += int(term.sum())
        assert torch.equal(reward, reward_b) and torch.equal(info["reward_terms"], terms_b)
        assert torch.equal(torch.stack((term, trunc, info["done_mask"])), flags_b)
        for k in ("policy", "critic"):
            assert torch.equal(obs[k], obs_b[k]) and torch.equal(info["final_obs"][k], final_b[k])
    assert ended > 0 and a._head == b._head
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_compiled_step_is_refused_where_there_is_none():
    with pytest.raises(Unsupported, match="compiled step"):
        make_hover_env(QuadrotorTaskConfig(num_envs=2), impl="torch").compiled_step()
    cfg = QuadrotorTaskConfig(num_envs=2, vehicles=VehicleDistribution().widened(0.1))
    with pytest.raises(Unsupported, match="per-env vehicles"):
        make_hover_env(cfg, impl="fused").compiled_step()
