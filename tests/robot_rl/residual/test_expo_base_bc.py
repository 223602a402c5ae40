"""EXPO's base update: the pool of successful windows and the base's imitation steps on it."""

import torch

from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer
from robot_rl.policies.windows import chunk_windows
from robot_rl.residual.base_bc import BaseImitation, SuccessPool
from robot_rl.residual.base_policy import FrozenChunkBase


def ema_diffusion() -> DiffusionPolicy:
    torch.manual_seed(0)
    cfg = DiffusionConfig(denoiser="mlp", mlp_hidden=(16, 16), horizon=3, n_action_steps=2, n_obs_steps=2,
                          num_inference_steps=2, use_ema=True, step_embed_dim=8)
    return DiffusionPolicy(cfg, 2, 1, MinMaxNormalizer(-torch.ones(2) * 5, torch.ones(2) * 5),
                           MinMaxNormalizer(-torch.ones(1) * 5, torch.ones(1) * 5)).eval()


def flags(*bits: int) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.bool)


def play(pool: SuccessPool, steps: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Steps of 2 envs, observation ``[t, 10 t]`` + env, action ``t`` + 100 env; (done, success) per step."""
    for t, (done, success) in enumerate(steps):
        obs = torch.tensor([[t, 10.0 * t], [t + 1.0, 10.0 * t + 1.0]])
        pool.record(obs, torch.tensor([[t], [t + 100.0]]), done, success)


def test_only_episodes_that_succeeded_enter_the_pool_as_bc_windows():
    pool = SuccessPool(2, 2, 1, n_obs_steps=2, horizon=3, capacity=100)
    # env 0: success at step 1, truncated at step 3 (it counts); env 1: fails at step 2, its next episode runs on
    play(pool, [(flags(0, 0), flags(0, 0)), (flags(0, 0), flags(1, 0)), (flags(0, 1), flags(0, 0)),
                (flags(1, 0), flags(0, 0)), (flags(0, 0), flags(0, 0))])
    assert pool.episodes_added == 1 and pool.online == 4 and pool.frames_dropped == 3
    o, a = chunk_windows([torch.tensor([[t, 10.0 * t] for t in range(4)]).numpy()],
                         [torch.arange(4.0)[:, None].numpy()], 2, 3)
    assert torch.equal(pool.obs[:4], torch.as_tensor(o)) and torch.equal(pool.act[:4], torch.as_tensor(a))
    assert pool.act[:4, :, 0].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 3], [3, 3, 3]]  # padded at the end
    assert pool.ep_len.tolist() == [1, 2] and not bool(pool.ep_success.any())  # new episodes under way
    state = pool.state_dict()
    again = SuccessPool(2, 2, 1, n_obs_steps=2, horizon=3, capacity=100)
    again.load_state_dict(state)
    for k, v in again.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_the_ring_drops_the_oldest_windows_and_sampling_covers_demos_and_online():
    demo = (torch.full((2, 2, 2), -1.0), torch.full((2, 3, 1), -1.0))
    pool = SuccessPool(2, 2, 1, n_obs_steps=2, horizon=3, capacity=3, demo=demo)
    play(pool, [(flags(0, 0), flags(0, 0)), (flags(1, 1), flags(1, 1))])  # two 2-step successes: 4 windows
    assert pool.online == 3 and pool.size == 5 and pool.pos == 1
    assert pool.act[:, 0, 0].tolist() == [101.0, 1.0, 100.0]  # env 0's first window (action 0) overwritten
    obs, act = pool.sample(200, torch.Generator().manual_seed(0))
    assert obs.shape == (200, 2, 2) and act.shape == (200, 3, 1)
    assert set(act[:, 0, 0].tolist()) == {-1.0, 1.0, 100.0, 101.0}


def test_the_base_learns_only_from_successful_data():
    policy = ema_diffusion()
    for p in policy.parameters():
        p.requires_grad_(False)  # as the frozen executor leaves it
    before = {k: v.clone() for k, v in policy.state_tensors().items()}
    pool = SuccessPool(2, 2, 1, n_obs_steps=2, horizon=3, capacity=100)
    bc = BaseImitation(policy, pool, lr=1e-2, batch=8, seed=0)
    play(pool, [(flags(0, 0), flags(0, 0)), (flags(1, 1), flags(0, 0))])  # both episodes fail
    assert [bc.step() for _ in range(3)] == [None] * 3 and bc.steps == 0
    for k, v in policy.state_tensors().items():
        assert torch.equal(v, before[k]), k  # a failed episode adds nothing: the base is untouched
    play(pool, [(flags(1, 0), flags(1, 0))])  # env 0 succeeds
    losses = [bc.step()]
    FrozenChunkBase(policy, 1, 0)  # an evaluation between steps freezes the parameters again
    losses += [bc.step() for _ in range(2)]
    assert not any(p.requires_grad for p in policy.parameters())  # frozen for everything but its own steps
    assert all(loss is not None and loss > 0 for loss in losses) and bc.steps == 3
    assert not policy.training  # sampling stays in evaluation mode
    moved = [k for k, v in policy.state_tensors().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("policy.denoiser") for k in moved) and any(k.startswith("ema.") for k in moved)
    assert policy.ema.step == 3
    # the sampler (EMA weights) draws other chunks now
    obs, noise = torch.zeros(1, 2, 2), torch.randn(1, 3, 1, generator=torch.Generator().manual_seed(1))
    fresh = ema_diffusion()
    assert not torch.allclose(policy.sample(obs, noise), fresh.sample(obs, noise))


def test_base_imitation_state_resumes_exactly():
    def make():
        pool = SuccessPool(2, 2, 1, n_obs_steps=2, horizon=3, capacity=100)
        bc = BaseImitation(ema_diffusion(), pool, lr=1e-2, batch=8, seed=3)
        play(pool, [(flags(0, 0), flags(0, 0)), (flags(1, 1), flags(1, 0))])
        return bc

    whole, first = make(), make()
    for _ in range(2):
        whole.step(), first.step()
    tensors, meta = first.state()
    resumed = make()
    resumed.load(tensors, meta)
    assert [whole.step() for _ in range(3)] == [resumed.step() for _ in range(3)]
    for (k, a), (_, b) in zip(whole.policy.state_tensors().items(), resumed.policy.state_tensors().items(),
                              strict=True):
        assert torch.equal(a, b), k
