"""EXPO's optional rules: the edit entropy bound, a fixed temperature, pessimistic (lower-confidence-bound) scoring
shared by selection, the edit's loss and the export, and the chunk-level Q (whole executed chunks as Q's action,
SMDP backup over the chunk, chunk transitions from rollouts and demonstrations)."""

import numpy as np
import torch
from torch import nn

from deploy.export.candidates import ActionSelector
from robot_rl.residual.edit_policy import EditPolicy
from robot_rl.residual.expo import EXPOAgent, EXPOConfig, commit_chunk, max_edit_entropy, propose_chunks
from robot_rl.residual.expo_replay import PendingChunks, demo_transitions
from robot_rl.residual.q_ensemble import ensemble_score
from robot_rl.runners.expo import CandidatePolicy, make_agent
from tests.robot_rl.residual.test_expo_pieces import _Fn, _Quadratic, _tiny_base, _toy_dataset


def test_no_bounded_edit_exceeds_the_uniform_entropy_and_a_wide_one_nearly_reaches_it():
    torch.manual_seed(0)
    pol = EditPolicy(4, 5, scale=0.2, hidden=(16,))
    obs, base = torch.randn(20000, 4), torch.zeros(20000, 5)
    bound = max_edit_entropy(5, 0.2)
    assert abs(bound - 5 * np.log(0.4)) < 1e-6
    entropies = []
    for log_std in (-3.0, -1.0, 0.0, 0.3, 1.0):
        with torch.no_grad():
            pol.log_std.weight.zero_()
            pol.log_std.bias.fill_(log_std)
            entropies.append(-float(pol.sample(obs, base, torch.Generator().manual_seed(0))[1].mean()))
    assert max(entropies) <= bound + 0.02  # Monte Carlo tolerance
    assert max(entropies) > bound - 0.15 and entropies[0] < bound - 10  # sigma_u ~ 1: nearly uniform; small: far


def _agent(**kw) -> EXPOAgent:
    torch.manual_seed(0)
    return EXPOAgent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=2, edit_scale=0.3, **kw), 4, 2)


def _batch(b: int = 64) -> dict[str, torch.Tensor]:
    return {"obs": torch.randn(b, 4), "action": torch.rand(b, 2) * 2 - 1, "cands": torch.rand(b, 4) * 2 - 1,
            "next_obs": torch.randn(b, 4), "next_cands": torch.rand(b, 4) * 2 - 1, "reward": torch.rand(b),
            "terminated": torch.zeros(b), "valid": torch.ones(b, 1)}


def test_a_fixed_temperature_stays_and_a_learned_one_moves():
    g = torch.Generator().manual_seed(0)
    fixed, learned = _agent(learn_alpha=False, init_alpha=0.05), _agent(init_alpha=0.05)
    for _ in range(5):
        fixed.update(_batch(), g)
        learned.update(_batch(), g)
    assert fixed.log_alpha.item() == np.float32(np.log(0.05))
    assert abs(learned.log_alpha.item() - np.log(0.05)) > 1e-3  # 5 Adam steps of 3e-4


class _Spread(nn.Module):
    """Three members: the first candidate (a[0] < 0) scores 1 on every member; the other (a[0] > 0) 0, 0, 3.3:
    a higher mean (1.1), but the members disagree."""

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        agree = torch.ones(3, len(action))
        spread = torch.tensor([0.0, 0.0, 3.3])[:, None].expand(3, len(action))
        return torch.where(action[:, 0] < 0, agree, spread)


def test_pessimism_prefers_the_candidate_the_members_agree_on():
    q = _Spread()(None, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    torch.testing.assert_close(ensemble_score(q), torch.tensor([1.0, 1.1]))
    torch.testing.assert_close(ensemble_score(q, 1.0), torch.tensor([1.0, 1.1 - float(q[:, 1].std())]))
    base = torch.tensor([[[-0.5, 0.0], [0.5, 0.0]]]).expand(8, 2, 2)
    for pessimism, want in ((0.0, 1), (1.0, 0)):
        agent = _agent(pessimism=pessimism)
        agent.critic.q = _Spread()
        _, idx, _ = agent.select(torch.randn(8, 4), base, stochastic=False)
        assert torch.equal(idx, torch.full((8,), want))


def test_the_export_selects_with_the_pessimistic_score():
    base = _tiny_base(obs_dim=2, act_dim=2)
    agent = _agent(pessimism=1.0)
    agent.critic.q = _Spread()
    sel = ActionSelector(agent, base.policy)
    raw = base.unnormalize_action(torch.tensor([[[-0.5, 0.0], [0.5, 0.0]]]).expand(8, 2, 2))
    _, idx = sel(torch.randn(8, 2, 2), raw)
    assert torch.equal(idx, torch.zeros(8, dtype=torch.long))


class _Disagree(nn.Module):
    """Members ``5 s, -5 s, 0`` with ``s = sum(a)``: mean 0, standard deviation ``5 |s|``."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        s = action.sum(-1)
        return torch.stack((s, -s, 0 * s)) * 5 + self.dummy


def test_edit_loss_reads_the_lower_confidence_bound():
    batch, losses = _batch(), {}
    for pessimism in (0.0, 2.0):
        agent = _agent(pessimism=pessimism)  # same seed: same edit network and samples
        agent.critic.q = _Disagree()
        agent.critic.update_target = lambda tau: None
        agent.critic.target = _Fn(lambda obs, act: torch.zeros(3, len(act)))
        losses[pessimism] = agent.update(batch, torch.Generator().manual_seed(2))["edit_loss"]
    assert losses[2.0] > losses[0.0] + 1.0  # mean Q is 0 either way; the bound subtracts 2 x 5 |sum(a)|


def test_chunk_td_target_discounts_over_the_chunk():
    torch.manual_seed(0)
    agent = EXPOAgent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=2), 4, 6, chunk_steps=3)
    agent.critic.target = _Fn(lambda obs, act: torch.ones(3, len(act)))
    b = 8
    batch = {"next_obs": torch.randn(b, 4), "next_cands": torch.rand(b, 12) * 2 - 1, "reward": torch.zeros(b),
             "terminated": torch.zeros(b)}
    torch.testing.assert_close(agent.td_target(batch), torch.full((b,), 0.99 ** 3))


def test_chunk_level_candidates_are_executed_chunks_and_an_edit_replaces_them():
    base = _tiny_base()  # n_action_steps 2, horizon 4, 2 envs
    n, k = base.n_action_steps, 3
    base.reset(torch.randn(2, 3))
    cands, due, chunks = propose_chunks(base, k)
    assert torch.equal(due, torch.arange(2)) and cands.shape == (2, k, n * 2)
    torch.testing.assert_close(cands, base.normalize_action(chunks[:, :, :n]).flatten(2))
    # env 0: unedited candidate 2 wins (runs as sampled); env 1: the edit of candidate 1 wins
    action = torch.stack((cands[0, 2], torch.full((n * 2,), 0.25)))
    commit_chunk(base, due, chunks, torch.tensor([2, k + 1]), action)
    assert torch.equal(base.chunk[0], chunks[0, 2])
    torch.testing.assert_close(base.chunk[1, :n], base.unnormalize_action(torch.full((n, 2), 0.25)))
    assert torch.equal(base.chunk[1, n:], chunks[1, 1, n:])
    first = base.act()
    base.step(torch.randn(2, 3), torch.zeros(2, dtype=torch.bool))
    cands, due, _ = propose_chunks(base, k)  # mid-chunk: nothing is due, nothing sampled
    assert len(due) == 0 and cands.shape == (0, k, n * 2)
    assert torch.equal(first, base.chunk[:, 0])


def test_untrained_chunk_level_agent_with_one_candidate_executes_the_base_exactly():
    plain, expo = _tiny_base(), _tiny_base()
    torch.manual_seed(1)
    agent = make_agent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=1, q_level="chunk"), expo.policy).eval()
    assert agent.act_dim == 2 * 2 and agent.discount == 0.99 ** 2
    policy = CandidatePolicy(expo.policy, agent, seed=0)
    obs = torch.randn(7, 2, 3)
    for t in range(7):
        if t:
            plain.step(obs[t], torch.zeros(2, dtype=torch.bool))
        else:
            plain.reset(obs[0])
        assert torch.equal(policy(obs[t]), plain.act())


def test_chunk_level_agent_chooses_the_argmax_q_chunk():
    base = _tiny_base()
    torch.manual_seed(1)
    agent = make_agent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=4, q_level="chunk"), base.policy)
    goal = torch.tensor([0.3, -0.4, 0.1, 0.2])
    agent.critic.q = _Quadratic(goal)
    base.reset(torch.randn(2, 3))
    cands, due, chunks = propose_chunks(base, 4)
    action, idx, _ = agent.select(base.history.flatten(1), cands, stochastic=False)
    best = ((cands - goal) ** 2).sum(-1).argmin(1)
    assert torch.equal(idx, best)  # zero edits tie with their candidates: the unedited one wins
    commit_chunk(base, due, chunks, idx, action)
    assert torch.equal(base.chunk, chunks[torch.arange(2), best])


def test_pending_chunks_sum_discounted_rewards_and_close_by_due_or_end():
    p = PendingChunks(3, obs_dim=2, act_dim=4, k=2, gamma=0.5)
    ids = torch.arange(3)
    p.start(ids, torch.arange(6.0).view(3, 2), torch.ones(3, 4), torch.zeros(3, 8))
    no = torch.zeros(3, dtype=torch.bool)
    p.add_reward(torch.tensor([1.0, 0.0, 0.0]))
    p.add_reward(torch.tensor([1.0, 1.0, 0.0]))
    # env 1 succeeds (terminated), env 2 is truncated without success
    t, f = True, False
    ended = p.end(torch.tensor([f, t, t]), torch.tensor([f, t, f]), torch.tensor([f, f, t]))
    assert ended["reward"].tolist() == [0.5, 0.0] and ended["terminated"].tolist() == [1.0, 0.0]
    assert ended["valid"].flatten().tolist() == [1.0, 0.0]
    assert torch.equal(ended["obs"], torch.tensor([[2.0, 3], [4, 5]]))
    assert p.end(torch.tensor([False, True, True]), no, no) is None  # already closed
    closed = p.close(ids, torch.full((3, 2), 9.0), torch.full((3, 8), 7.0))
    assert closed["reward"].tolist() == [1.5] and closed["terminated"].tolist() == [0.0]
    assert closed["valid"].tolist() == [[1.0]] and torch.equal(closed["next_obs"], torch.full((1, 2), 9.0))
    assert p.close(ids, torch.zeros(3, 2), torch.zeros(3, 8)) is None


def test_demo_transitions_span_chunks(tmp_path):
    eps = _toy_dataset(tmp_path / "d", ((5, True), (3, False)))
    base = _tiny_base()
    tr = demo_transitions(tmp_path / "d", base, 3, "sparse", torch.Generator().manual_seed(0), chunk_steps=2,
                          gamma=0.5)
    assert tr["action"].shape == (8, 4) and tr["cands"].shape == (8, 3 * 4)
    a = base.normalize_action(torch.as_tensor(eps[0]["action"]))
    torch.testing.assert_close(tr["action"][1], torch.cat((a[1], a[2])))
    torch.testing.assert_close(tr["action"][4], torch.cat((a[4], a[4])))  # past the end: the last one repeated
    assert tr["reward"].tolist() == [0, 0, 0, 0.5, 1, 0, 0, 0]
    assert tr["terminated"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert tr["valid"].flatten().tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    torch.testing.assert_close(tr["next_obs"][0], tr["obs"][2])
    torch.testing.assert_close(tr["next_cands"][5], tr["cands"][7])


class _Offsets(nn.Module):
    """Three members with offsets 0, 1, -1; candidate 1 (a[0] > 0) scores 0.01 more than candidate 0 on every
    member, candidate 2 (a[1] > 0) 0.3 more on its mean but 0, 0.9, 0 member by member (they disagree)."""

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        off = torch.tensor([0.0, 1.0, -1.0])[:, None]
        gain = torch.where(action[:, 0] > 0, torch.full((3, len(action)), 0.01), torch.zeros(3, len(action)))
        spread = torch.tensor([0.0, 0.9, 0.0])[:, None] * (action[:, 1] > 0).float()
        return off + gain + spread


def _margin_agent(k: int, margin: float) -> EXPOAgent:
    torch.manual_seed(0)
    agent = EXPOAgent(EXPOConfig(num_q=3, hidden=(16, 16), num_candidates=k, select_margin=margin), 4, 2)
    agent.critic.q = _Offsets()  # untrained edits are zero: each edit scores as its candidate
    return agent


def test_margin_keeps_candidate_0_unless_the_members_agree_another_is_better():
    base = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]]]).expand(4, 3, 2)
    for margin, want in ((0.0, 2), (1.0, 1)):
        agent = _margin_agent(3, margin)
        _, idx, _ = agent.select(torch.randn(4, 4), base, stochastic=False)
        assert torch.equal(idx, torch.full((4,), want))
    agent = _margin_agent(2, 1.0)
    only_disagreeing = torch.tensor([[[-0.5, -0.5], [-0.5, 0.5]]]).expand(4, 2, 2)
    _, idx, _ = agent.select(torch.randn(4, 4), only_disagreeing, stochastic=False)
    assert torch.equal(idx, torch.zeros(4, dtype=torch.long))
    base_policy = _tiny_base(obs_dim=2, act_dim=2)
    agent = _margin_agent(3, 1.0)
    _, idx = ActionSelector(agent, base_policy.policy)(torch.randn(4, 2, 2), base_policy.unnormalize_action(base))
    assert torch.equal(idx, torch.full((4,), 1))  # the export applies the same rule
