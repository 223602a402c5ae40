"""EXPO pieces: Q ensemble + REDQ target, bounded edits, argmax-Q selection shared by acting and the backup,
whole-chunk candidates (an untrained one-candidate agent is the base), the two-part replay and demonstration
transitions."""

import numpy as np
import torch
from torch import nn

from robot_rl.data import write_dataset
from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.edit_policy import EditPolicy
from robot_rl.residual.expo import EXPOAgent, EXPOConfig, commit, propose
from robot_rl.residual.expo_replay import ExpoReplay, demo_transitions, transition_dims
from robot_rl.residual.q_ensemble import QEnsemble, QWithTarget, redq_min
from robot_rl.runners.expo import CandidatePolicy


class _Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.fn(obs, action)


class _Quadratic(nn.Module):
    """Q(s, a) = -||a - goal||^2, the same for every member (a known argmax)."""

    def __init__(self, goal: torch.Tensor, n: int = 3) -> None:
        super().__init__()
        self.goal, self.n = goal, n

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return -((action - self.goal) ** 2).sum(-1).expand(self.n, -1)


def test_redq_min_is_the_min_of_a_random_subset_and_the_full_min_at_subset_n():
    q = torch.tensor([[1.0, 5.0], [3.0, 2.0], [0.0, 9.0], [4.0, 4.0]])
    assert torch.equal(redq_min(q, 4), torch.tensor([0.0, 2.0]))
    g = torch.Generator().manual_seed(3)
    idx = torch.randperm(4, generator=torch.Generator().manual_seed(3))[:2]
    assert torch.equal(redq_min(q, 2, g), q[idx].min(0).values)


def test_q_ensemble_members_differ_and_target_follows_by_polyak():
    torch.manual_seed(0)
    qt = QWithTarget(QEnsemble(4, 5, 2, (16, 16)))
    obs, act = torch.randn(7, 5), torch.rand(7, 2) * 2 - 1
    out = qt.q(obs, act)
    assert out.shape == (4, 7) and not torch.allclose(out[0], out[1])
    assert torch.equal(qt.target(obs, act), out)
    before = [p.clone() for p in qt.target.parameters()]
    with torch.no_grad():
        for p in qt.q.parameters():
            p.add_(1.0)
    qt.update_target(0.25)
    for b, t in zip(before, qt.target.parameters(), strict=True):
        torch.testing.assert_close(t, b + 0.25)


def test_edits_are_bounded_and_start_at_zero():
    torch.manual_seed(0)
    pol = EditPolicy(6, 3, scale=0.1, hidden=(32,))
    obs, base = torch.randn(500, 6), torch.rand(500, 3) * 1.6 - 0.8
    assert torch.equal(pol(obs, base), base)  # zero-initialised mean head: the mean edit is 0
    with torch.no_grad():
        pol.mean.bias.fill_(50.0)  # saturate: edits reach the bound, never beyond
        pol.log_std.bias.fill_(1.0)
    with torch.no_grad():
        edited, logp = pol.sample(obs, base, torch.Generator().manual_seed(1))
    assert float((edited - base).abs().max()) <= 0.1 + 1e-6
    assert float((edited - base).abs().max()) > 0.099 and torch.isfinite(logp).all()
    assert float(pol.sample(obs, torch.ones(500, 3))[0].detach().max()) <= 1.0  # clamped to the normalised range


def _agent(k: int = 3, a: int = 2, obs_dim: int = 4) -> EXPOAgent:
    torch.manual_seed(0)
    return EXPOAgent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=k, edit_scale=0.3), obs_dim, a)


def test_selection_executes_the_argmax_q_candidate():
    agent = _agent()
    goal = torch.tensor([0.5, -0.2])
    agent.critic.q = _Quadratic(goal)
    base = torch.rand(64, 3, 2) * 2 - 1
    obs = torch.randn(64, 4)
    action, idx, cands = agent.select(obs, base, stochastic=True, generator=torch.Generator().manual_seed(0))
    assert cands.shape == (64, 6, 2) and torch.equal(cands[:, :3], base)
    best = ((cands - goal) ** 2).sum(-1).argmin(1)
    assert torch.equal(idx, best) and torch.equal(action, cands[torch.arange(64), best])
    assert bool((idx >= 3).any()) and bool((idx < 3).any())  # edits and unedited candidates both win somewhere


def test_constant_q_selects_the_base_action():
    agent = _agent()
    agent.critic.q = _Fn(lambda obs, act: torch.zeros(3, len(act)))
    base = torch.rand(10, 3, 2) * 2 - 1
    action, idx, _ = agent.select(torch.randn(10, 4), base, stochastic=True)
    assert torch.equal(idx, torch.zeros(10, dtype=torch.long)) and torch.equal(action, base[:, 0])


def test_td_backup_uses_the_same_selection_as_acting():
    agent = _agent()
    goal = torch.tensor([0.3, 0.3])
    agent.critic.q = _Quadratic(goal)
    agent.critic.target = _Fn(lambda obs, act: act.sum(-1).expand(3, -1) * 10.0) # a different, known target
    b = 32
    batch = {"next_obs": torch.randn(b, 4), "next_cands": torch.rand(b, 6) * 2 - 1, "reward": torch.rand(b),
             "terminated": (torch.rand(b) < 0.3).float()}
    y = agent.td_target(batch, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    chosen, _, _ = agent.select(batch["next_obs"], batch["next_cands"].view(b, 3, 2), True, g)
    want = batch["reward"] + 0.99 * (1 - batch["terminated"]) * chosen.sum(-1) * 10.0
    torch.testing.assert_close(y, want)
    # and it is the argmax of the online Q, not of the target
    nxt = batch["next_cands"].view(b, 3, 2)
    assert ((chosen - goal) ** 2).sum(-1).le(((nxt - goal) ** 2).sum(-1).min(1).values + 1e-7).all()


def test_update_fits_a_fixed_reward():
    agent = _agent()
    b = 128
    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(b, 4), "action": torch.rand(b, 2) * 2 - 1, "cands": torch.rand(b, 6) * 2 - 1,
             "next_obs": torch.randn(b, 4), "next_cands": torch.rand(b, 6) * 2 - 1, "reward": torch.ones(b),
             "terminated": torch.ones(b), "valid": torch.ones(b, 1)}
    first = agent.update(batch, g)["q_loss"]
    for _ in range(200):
        last = agent.update(batch, g)
    assert last["q_loss"] < 0.05 * first and abs(last["q_mean"] - 1.0) < 0.1


def test_replay_mixes_demonstrations_and_online_data():
    dims = transition_dims(2, 1, 1)
    rep = ExpoReplay(dims, capacity=10, demo_capacity=20)
    def fill(buf, value, n):
        buf.add(**{k: torch.full((n, d), value) for k, d in dims.items()}, reward=torch.full((n,), value),
                terminated=torch.zeros(n))
    fill(rep.demo, 1.0, 20)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(rep.sample(8, 0.5, g)["reward"], torch.ones(8))  # no online data yet: all demos
    fill(rep.online, 2.0, 15)  # wraps the ring
    r = rep.sample(8, 0.25, g)["reward"]
    assert int((r == 1).sum()) == 2 and int((r == 2).sum()) == 6


def _tiny_base(obs_dim=3, act_dim=2):
    torch.manual_seed(0)
    cfg = DiffusionConfig(denoiser="mlp", mlp_hidden=(16,), horizon=4, n_action_steps=2, n_obs_steps=2,
                          num_inference_steps=2, use_ema=False)
    return FrozenChunkBase(DiffusionPolicy(cfg, obs_dim, act_dim), num_envs=2, seed=0)


def _toy_dataset(path, episodes: tuple[tuple[int, bool], ...]) -> list[dict]:
    """A LeRobot dataset at ``path`` of random episodes (length, succeeded: success on the last frame); returns them."""
    rng = np.random.default_rng(0)
    eps = []
    for n, ok in episodes:
        eps.append({"observation.state": rng.standard_normal((n, 3)).astype(np.float32),
                    "action": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                    "next.reward": rng.standard_normal(n).astype(np.float32),
                    "next.success": np.arange(n) == n - 1 if ok else np.zeros(n, bool)})
    write_dataset(path, eps, fps=50, task="toy")
    return eps


def test_demo_transitions_link_next_states_and_stop_at_truncation(tmp_path):
    eps = _toy_dataset(tmp_path / "d", ((4, True), (3, False)))
    base = _tiny_base()
    tr = demo_transitions(tmp_path / "d", base, 3, "sparse", torch.Generator().manual_seed(0))
    assert tr["obs"].shape == (7, 6) and tr["cands"].shape == (7, 6)
    o = torch.as_tensor(eps[0]["observation.state"])
    torch.testing.assert_close(tr["obs"][0], torch.cat((o[0], o[0])))  # history padded with the first frame
    torch.testing.assert_close(tr["next_obs"][1], torch.cat((o[1], o[2])))
    torch.testing.assert_close(tr["next_cands"][:3], tr["cands"][1:4])
    assert tr["reward"].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert tr["terminated"].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert tr["valid"].flatten().tolist() == [1, 1, 1, 1, 1, 1, 0]
    assert float(tr["cands"].abs().max()) <= 1.0 + 1e-6


def test_td_targets_clip_to_the_return_range():
    agent = _agent()
    agent.cfg.target_range = (0.0, 1.0)
    agent.critic.target = _Fn(lambda obs, act: torch.full((3, len(act)), -0.5))
    b = 8
    batch = {"next_obs": torch.randn(b, 4), "next_cands": torch.rand(b, 6) * 2 - 1,
             "reward": torch.tensor([0, 0, 1, 1, 2, 0, 0, 0.5]), "terminated": torch.zeros(b)}
    torch.testing.assert_close(agent.td_target(batch), torch.tensor([0, 0, 0.505, 0.505, 1, 0, 0, 0.005]))


def _untrained_on(base, k):
    torch.manual_seed(1)
    return EXPOAgent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=k), base.n_obs_steps * base.obs_dim,
                     base.action_dim).eval()


def test_untrained_agent_with_one_candidate_executes_the_base_exactly():
    plain, expo = _tiny_base(), _tiny_base()
    policy = CandidatePolicy(expo.policy, _untrained_on(expo, 1), seed=0)
    obs = torch.randn(7, 2, 3)
    for t in range(7):  # three chunk boundaries (n_action_steps 2)
        if t:
            plain.step(obs[t], torch.zeros(2, dtype=torch.bool))
        else:
            plain.reset(obs[0])
        assert torch.equal(policy(obs[t]), plain.act())


def test_chunks_are_chosen_whole_and_run_to_their_end():
    base = _tiny_base()
    k = 4
    agent = _untrained_on(base, k)
    goal = torch.tensor([0.3, -0.4])
    agent.critic.q = _Quadratic(goal)  # a known argmax among the k first actions
    base.reset(torch.randn(2, 3))
    for t in range(6):
        cands, due, chunks = propose(base, k)
        action, idx, _ = agent.select(base.history.flatten(1), cands, stochastic=False)
        if t % 2 == 0:  # every env's chunk is due: k fresh chunks, the one whose first action wins is started
            assert torch.equal(due, torch.arange(2)) and torch.equal(cands, base.normalize_action(chunks[:, :, 0]))
            best = ((cands - goal) ** 2).sum(-1).argmin(1)
            assert torch.equal(idx % k, best)
            commit(base, due, chunks, idx)
            assert torch.equal(base.chunk, chunks[torch.arange(2), best])
            started = base.chunk.clone()
        else:  # mid-chunk: the candidates are the running chunk's action, nothing is sampled
            assert len(due) == 0 and torch.equal(cands, base.normalize_action(started[:, 1])[:, None].expand(-1, k, -1))
            commit(base, due, chunks, idx)
            assert torch.equal(base.chunk, started)
        torch.testing.assert_close(base.unnormalize_action(action), base.chunk[torch.arange(2), base.phase])
        base.step(torch.randn(2, 3), torch.zeros(2, dtype=torch.bool))
