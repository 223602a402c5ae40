"""The numba collection step (acting in one call, the replay row write) against the torch path."""

import pytest
import torch

from robot_rl.algorithms.td3 import TD3, TD3Config
from robot_rl.models.mlp import MLP
from robot_rl.models.mlp_act import NumbaActor
from robot_rl.storage.replay import ReplayBuffer


@pytest.mark.parametrize("activation", ["fast_tanh", "tanh", "relu"])
@pytest.mark.parametrize("output", ["tanh", "identity", "clip"])
def test_numba_actor_matches_the_module(activation, output):
    torch.manual_seed(0)
    mlp = MLP(23, (16, 8), 3, activation, output)
    with torch.no_grad():  # spread the pre-activations over the fast tanh's clamp too
        mlp.linears[0].weight.mul_(6.0)
    x, noise = torch.randn(5, 23), torch.randn(5, 3)
    act = NumbaActor(mlp)
    with torch.no_grad():
        torch.testing.assert_close(act(x), mlp(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(act(x, noise, 0.3), (mlp(x) + noise * 0.3).clamp(-1, 1), rtol=1e-6, atol=1e-6)
        mlp.linears[1].bias.add_(0.5)  # in-place writes (optimizer, Polyak, checkpoint load) are seen
        torch.testing.assert_close(act(x), mlp(x), rtol=1e-6, atol=1e-6)
        mlp.linears[1].weight.data = mlp.linears[1].weight * 2  # so is a new storage
        torch.testing.assert_close(act(x), mlp(x), rtol=1e-6, atol=1e-6)


def test_td3_fused_act_draws_the_plain_noise_stream():
    algos = []
    for fused in (False, True):
        torch.manual_seed(1)
        algos.append(TD3(TD3Config(actor_hidden=(16, 16), fused=fused), 7, 9, 4, torch.Generator().manual_seed(3)))
    plain, fused = algos
    assert fused._numba_actor is not None and plain._numba_actor is None
    for i in range(5):
        obs = torch.randn(2, 7, generator=torch.Generator().manual_seed(i))
        explore = i != 2
        torch.testing.assert_close(fused.act(obs, explore), plain.act(obs, explore), rtol=1e-6, atol=1e-6)
    assert torch.equal(fused.gen.get_state(), plain.gen.get_state())


def test_replay_row_write_equals_the_torch_write():
    fast = ReplayBuffer.for_env(8, 3, 2, 2, 2)
    slow = ReplayBuffer.for_env(8, 3, 2, 2, 2)
    slow._np = None  # the torch.cat path
    g = torch.Generator().manual_seed(0)
    for n in (1, 3, 3, 2):  # the last write wraps: the torch path does it for both
        rows = {"policy_obs": torch.randn(n, 3, generator=g), "critic_obs": torch.randn(n, 2, generator=g),
                "action": torch.randn(n, 2, generator=g), "reward_terms": torch.randn(n, 2, generator=g),
                "reward": torch.randn(n, generator=g), "next_policy_obs": torch.randn(n, 3, generator=g),
                "next_critic_obs": torch.randn(n, 2, generator=g), "terminated": torch.ones(n)}
        if n == 3:  # other dtypes are cast by the copy as .to() casts them
            rows["reward"], rows["terminated"] = rows["reward"].double() * 1e-3, rows["terminated"].bool()
        fast.add(**rows)
        slow.add(**rows)
        assert torch.equal(fast.table, slow.table) and (fast.pos, fast.size) == (slow.pos, slow.size)
    assert fast.size == 8 and fast.table.abs().sum() > 0
    grad = {k: v.requires_grad_() if k == "action" else v for k, v in rows.items()}
    fast.pos = slow.pos = 0
    fast.add(**grad)  # a tensor requiring grad goes through the torch write
    slow.add(**grad)
    assert torch.equal(fast.table, slow.table)
