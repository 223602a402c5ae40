"""Value-guided re-ranking: a constant value is the base bit for bit, the best-scored chunk runs, and the IQL
transitions of an episode carry the right returns, terminations and next states."""

import numpy as np
import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.rerank import RerankPolicy, rerank_act, train_value
from robot_rl.residual.value import IQLConfig, chunk_windows_rl
from tests.robot_rl.residual.toy import ToyReachEnv, tiny_diffusion


class _Score:
    def __init__(self, fn):
        self.fn = fn

    def score(self, obs, chunk):
        return self.fn(obs, chunk)


def _run(value, k, steps=10, n=5):
    env = ToyReachEnv(num_envs=n, seed=1)
    base = FrozenChunkBase(tiny_diffusion(), n, seed=3)
    obs = env.reset(1)["policy"]
    base.reset(obs)
    actions = []
    for _ in range(steps):
        a = rerank_act(base, value, k)
        actions.append(a)
        obs, _, _, _, info = env.step(a)
        base.step(obs["policy"], info["done_mask"])
    return torch.stack(actions)


def test_constant_value_reranking_is_the_base_exactly():
    plain = _run(None, 1)
    const = _run(_Score(lambda o, c: torch.zeros(len(c))), k=4)
    assert torch.equal(plain, const)
    assert not torch.equal(plain, _run(_Score(lambda o, c: c.sum(-1)), k=4))  # a real value changes it


def test_reranking_executes_the_best_scored_chunk():
    base = FrozenChunkBase(tiny_diffusion(), 6, seed=0)
    base.reset(torch.rand(6, 4) - 0.5)
    twin = FrozenChunkBase(tiny_diffusion(), 6, seed=0)
    twin.reset(base.history[:, -1].clone())
    target = 0.3
    value = _Score(lambda o, c: -((c - target) ** 2).sum(-1))
    rerank_act(base, value, 5)
    # the same candidates, drawn from the twin's identical generators
    first = twin.policy.predict_chunk(twin.history, twin.generator)[:, None]
    rest = twin.policy.predict_chunk(twin.history.repeat_interleave(4, 0), twin.candidate_generator).view(6, 4, 6, 2)
    cands = torch.cat((first, rest), 1)
    err = ((twin.normalize_action(cands[:, :, :3]).flatten(2) - target) ** 2).sum(-1)
    torch.testing.assert_close(base.chunk, cands[torch.arange(6), err.argmin(1)])


def test_chunk_transitions_returns_terminations_and_truncation():
    obs = np.arange(5, dtype=np.float32)[:, None]
    act = np.arange(5, dtype=np.float32)[:, None] / 10
    rew = np.array([0, 0, 0, 0, 1.0])
    tr = chunk_windows_rl(obs, act, rew, True, n_obs_steps=2, n=3, gamma=0.5)
    np.testing.assert_allclose(tr["ret"], [0, 0, 0.25, 0.5, 1.0])
    assert tr["terminated"].tolist() == [False, False, True, True, True]
    assert tr["valid"].tolist() == [True] * 5
    np.testing.assert_allclose(tr["obs"][1], [0, 1])
    np.testing.assert_allclose(tr["next_obs"][0], [2, 3])
    np.testing.assert_allclose(tr["chunk"][3], [0.3, 0.4, 0.4])  # past the end the last action repeats
    cut = chunk_windows_rl(obs, act, 0 * rew, False, n_obs_steps=2, n=3, gamma=0.5)
    assert cut["valid"].tolist() == [True, True, False, False, False] and not cut["terminated"].any()


def test_iql_value_prefers_the_chunks_that_succeeded():
    rng = np.random.default_rng(0)
    eps = []
    for i in range(40):  # one-step episodes: positive actions succeed, negative ones fail (both terminate)
        good = i % 2 == 0
        a = rng.uniform(0.2, 1, (1, 2)) * (1 if good else -1)
        eps.append({"obs": rng.uniform(-0.5, 0.5, (1, 4)).astype(np.float32), "act": a.astype(np.float32),
                    "rew": np.array([1.0 if good else 0.0]), "terminated": True})
    policy = tiny_diffusion()
    policy.n_action_steps = 1
    value = train_value(policy, eps, IQLConfig(hidden=(32, 32)), steps=300, seed=0, batch_size=32)
    obs = torch.rand(50, 8) - 0.5
    with torch.no_grad():
        hi, lo = value.score(obs, torch.full((50, 2), 0.6)), value.score(obs, torch.full((50, 2), -0.6))
    assert float((hi - lo).min()) > 0.5


def test_a_reset_step_policy_replays_its_first_evaluation():
    """An evaluation resets a policy first; a re-ranking policy reused for a second evaluation (a robustness row)
    must then start every env afresh with the same base noise, not continue the previous episodes."""

    def rollout(policy, steps=6):
        env = ToyReachEnv(num_envs=4, seed=2)
        obs, actions = env.reset(2)["policy"], []
        for _ in range(steps):
            actions.append(policy(obs))
            obs = env.step(actions[-1])[0]["policy"]
        return torch.stack(actions)

    policy = RerankPolicy(tiny_diffusion(), _Score(lambda o, c: c.sum(-1)), k=3, seed=5)
    first = rollout(policy)
    assert not torch.equal(first, rollout(policy))  # without a reset it continues the old chunks and noise
    policy.reset()
    assert torch.equal(first, rollout(policy))
