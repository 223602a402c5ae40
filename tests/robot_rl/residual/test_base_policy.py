import pytest
import torch

from robot_rl.policies.rollout import evaluate_chunked
from robot_rl.residual.base_policy import FrozenChunkBase
from tests.robot_rl.residual.toy import ToyReachEnv, tiny_diffusion


class RecordingEnv(ToyReachEnv):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.actions = []

    def step(self, action):
        self.actions.append(action.clone())
        return super().step(action)


def test_actions_equal_evaluate_chunked_with_same_noise():
    policy = tiny_diffusion()
    env = RecordingEnv(num_envs=5, seed=0)
    evaluate_chunked(env, policy, episodes=5, seed=3, noise_seed=7)
    ref = torch.stack(env.actions)
    env2 = ToyReachEnv(num_envs=5, seed=0)
    base = FrozenChunkBase(policy, 5, seed=7)
    obs = env2.reset(3)["policy"]
    base.reset(obs)
    got, first_done = [], None
    for t in range(len(ref)):
        a = base.act()
        got.append(a)
        obs, _, _, _, info = env2.step(a)
        if bool(info["done_mask"].any()):
            first_done = t
            break
        base.step(obs["policy"], info["done_mask"])
    assert first_done is not None and first_done >= 4  # more than one chunk compared
    assert torch.equal(torch.stack(got), ref[: first_done + 1])


def test_chunk_phase_per_env_after_staggered_resets():
    policy = tiny_diffusion()
    base = FrozenChunkBase(policy, 3, seed=0)
    obs = torch.rand(3, 4) - 0.5
    base.reset(obs)
    seen_due = []
    for t in range(7):
        seen_due.append(base.due().tolist())
        base.act()
        done = torch.tensor([False, t == 1, t == 3])
        obs = torch.rand(3, 4) - 0.5
        base.step(obs, done)
        if t == 3:  # env 2 restarted: its history is the new observation only
            assert torch.equal(base.history[2], obs[2].expand(2, -1))
    # execute = 3: env 0 replans every 3 steps; env 1 restarted after step 1, env 2 after step 3
    assert [d[0] for d in seen_due] == [True, False, False, True, False, False, True]
    assert [d[1] for d in seen_due] == [True, False, True, False, False, True, False]
    assert [d[2] for d in seen_due] == [True, False, False, True, True, False, False]
    assert base.phase.tolist() == [1, 2, 0] and base.due().tolist() == [False, False, True]


def test_act_is_idempotent_and_candidate_chunks_start_with_the_bases_own():
    base, plain = FrozenChunkBase(tiny_diffusion(), 4, seed=1), FrozenChunkBase(tiny_diffusion(), 4, seed=1)
    obs = torch.rand(4, 4) - 0.5
    base.reset(obs)
    plain.reset(obs)
    before = base.state_dict()
    due, cands = base.candidate_chunks(5)
    assert torch.equal(due, torch.arange(4)) and cands.shape == (4, 5, 6, 2)
    assert not torch.allclose(cands[:, 1], cands[:, 2])  # independent noise per candidate
    after = base.state_dict()
    for k in ("history", "chunk", "phase", "chunk_due"):
        assert torch.equal(before[k], after[k])
    a = plain.act()
    assert torch.equal(cands[:, 0, 0], a)  # chunk 0 is what the base alone samples
    assert torch.equal(base.act(cands[:, 2]), cands[:, 2, 0]) and torch.equal(base.act(), cands[:, 2, 0])
    assert len(base.candidate_chunks(3)[0]) == 0  # nothing due: nothing sampled


def test_given_chunks_replace_sampling_and_history_shifts():
    base = FrozenChunkBase(tiny_diffusion(), 2, seed=0)
    o0 = torch.rand(2, 4) - 0.5
    base.reset(o0)
    chunks = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)
    assert torch.equal(base.act(chunks), chunks[:, 0])
    o1 = torch.rand(2, 4)
    base.step(o1, torch.zeros(2, dtype=torch.bool))
    assert torch.equal(base.history, torch.stack((o0, o1), 1))
    assert torch.equal(base.act(), chunks[:, 1])


def test_state_dict_resume_continues_bit_identically():
    torch.manual_seed(0)
    obs = [torch.rand(3, 4) - 0.5 for _ in range(12)]
    dones = [torch.rand(3) < 0.2 for _ in range(12)]

    def run(base, steps):
        return [(base.act(), base.step(obs[t], dones[t]))[0] for t in steps]

    a = FrozenChunkBase(tiny_diffusion(), 3, seed=4)
    a.reset(obs[0])
    full = run(a, range(12))
    b = FrozenChunkBase(tiny_diffusion(), 3, seed=4)
    b.reset(obs[0])
    run(b, range(5))
    c = FrozenChunkBase(tiny_diffusion(), 3, seed=99)
    c.load_state_dict(b.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(full[5:], run(c, range(5, 12)), strict=True))


def test_frozen_and_normalisers():
    policy = tiny_diffusion()
    base = FrozenChunkBase(policy, 2, seed=0)
    assert not any(p.requires_grad for p in policy.parameters()) and not policy.training
    a = torch.tensor([[0.5, -0.25]])
    assert torch.allclose(base.unnormalize_action(base.normalize_action(a)), a)
    assert (base.obs_dim, base.action_dim, base.n_obs_steps, base.horizon, base.n_action_steps) == (4, 2, 2, 6, 3)
    with pytest.raises(ValueError, match="observations must be"):
        base.reset(torch.zeros(3, 4))
    base.reset(torch.zeros(2, 4))
    with pytest.raises(RuntimeError, match="before act"):
        base.step(torch.zeros(2, 4), torch.zeros(2, dtype=torch.bool))
