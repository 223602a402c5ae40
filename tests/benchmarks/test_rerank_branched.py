"""benchmarks/rerank_branched.py: the value learns each candidate's score relative to its state's candidates."""

from types import SimpleNamespace

import torch

from benchmarks.rerank_branched import fit, relative_scores


def test_relative_scores_are_centred_per_state_and_mark_the_states_whose_candidates_differ():
    hist = torch.arange(6.0).view(2, 3)
    chunks = torch.arange(2 * 3 * 4.0).view(2, 3, 4)
    scores = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    data = relative_scores([(hist, chunks, scores)])
    assert data["obs"].shape == (6, 3) and data["chunk"].shape == (6, 4)
    assert torch.equal(data["obs"][:3], hist[0].expand(3, -1)) and torch.equal(data["chunk"][4], chunks[1, 1])
    assert torch.allclose(data["target"], torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0, 0.0]))
    assert data["mixed"].tolist() == [1.0, 0.0]


def test_the_fitted_value_ranks_held_out_candidates_by_what_decided_their_outcome():
    gen = torch.Generator().manual_seed(0)
    states, k = 400, 4
    hist = torch.randn(states, 6, generator=gen)
    chunks = torch.randn(states, k, 3, generator=gen)
    scores = torch.where(chunks[..., 0] > 0, 1.0, -1.0)  # success iff the chunk's first action is positive
    policy = SimpleNamespace(n_obs_steps=2, obs_norm=SimpleNamespace(mid=torch.zeros(3), span=torch.ones(3)))
    value = fit(policy, relative_scores([(hist, chunks, scores)]), steps=400, seed=0)
    test_hist = torch.randn(50, 6, generator=gen)
    good, bad = torch.randn(50, 3, generator=gen).abs(), -torch.randn(50, 3, generator=gen).abs()
    bad[:, 1:] = good[:, 1:]
    assert (value.score(test_hist, good) > value.score(test_hist, bad)).float().mean() > 0.95
