"""TD3's explicit update (hand-written forward/backward, numba elementwise kernels) against plain autograd."""

import pytest
import torch

from robot_rl.algorithms import td3_explicit
from robot_rl.algorithms.td3 import TD3, TD3Config
from tests.robot_rl.test_fused_updates import assert_same, batch, pair


@pytest.mark.parametrize("activation", ["fast_tanh", "tanh", "relu"])
@pytest.mark.parametrize(("independent", "hidden", "critics"), [(True, (32, 32), 2), (False, (16, 24, 8), 3)])
def test_explicit_update_matches_plain_over_20_updates(activation, independent, hidden, critics):
    def make(fused):
        cfg = TD3Config(actor_hidden=hidden, critic_hidden=hidden[::-1], activation=activation, fused=fused,
                        independent_batches=independent, num_critics=critics, policy_delay=2)
        return TD3(cfg, 5, 9, 3, torch.Generator().manual_seed(7))

    plain, fused = pair(make)
    assert td3_explicit.applies(fused)
    for i in range(20):  # critic-only and critic + actor updates; the target noise drawn on both paths
        b, ab = batch(plain.batch_rows(64), seed=i), batch(64, seed=100 + i)
        out_p, out_f = plain.update(b, actor_batch=ab), fused.update(b, actor_batch=ab)
        assert out_p.keys() == out_f.keys()
        for k in out_p:
            torch.testing.assert_close(out_f[k], out_p[k], rtol=1e-6, atol=1e-6)
        assert_same(plain, fused)
    assert fused._explicit is not None and "actor_loss" in out_p
    assert torch.equal(fused.gen.get_state(), plain.gen.get_state())


def test_explicit_update_without_actor_and_elu_falls_back():
    algo = TD3(TD3Config(actor_hidden=(8,), critic_hidden=(8,), fused=True), 5, 9, 3, torch.Generator())
    actor = [p.detach().clone() for p in algo.actor.parameters()]
    out = algo.update(batch(algo.batch_rows(16)), train_actor=False)
    out = algo.update(batch(algo.batch_rows(16)), train_actor=False)
    assert "actor_loss" not in out and algo.num_updates == 2
    assert all(torch.equal(a, b) for a, b in zip(actor, algo.actor.parameters(), strict=True))
    elu = TD3(TD3Config(actor_hidden=(8,), critic_hidden=(8,), activation="elu", fused=True), 5, 9, 3)
    assert not td3_explicit.applies(elu)
    elu.update(batch(elu.batch_rows(16)))
    assert elu._explicit is None


def test_explicit_update_on_replay_samples_reads_the_critic_input_in_place():
    """Sampled rows hold critic_obs and action side by side: the critic's input is a view, same results."""
    from robot_rl.algorithms.td3_explicit import ExplicitTD3
    from robot_rl.storage.replay import ReplayBuffer

    buf = ReplayBuffer.for_env(256, 5, 9, 3, 2)
    g = torch.Generator().manual_seed(0)
    buf.add(**{k: torch.randn(200, *([w] if w else []), generator=g) for k, w in
               [("policy_obs", 5), ("critic_obs", 9), ("action", 3), ("reward_terms", 2), ("reward", 0),
                ("next_policy_obs", 5), ("next_critic_obs", 9), ("terminated", 0)]})

    def make(fused):
        return TD3(TD3Config(actor_hidden=(16, 16), critic_hidden=(16, 16), fused=fused), 5, 9, 3,
                   torch.Generator().manual_seed(7))

    plain, fused = pair(make)
    for _ in range(6):
        b, ab = buf.sample(plain.batch_rows(32), g), buf.sample(32, g)
        x = ExplicitTD3._critic_input(b["critic_obs"], b["action"])
        assert x.data_ptr() == b["critic_obs"].data_ptr()
        assert torch.equal(x, torch.cat((b["critic_obs"], b["action"]), -1))
        plain.update(b, actor_batch=ab)
        fused.update(b, actor_batch=ab)
        assert_same(plain, fused)
