"""benchmarks/rerank_oracle.py: the simulated continuations leave no trace (env, base and noise restored), and the
best-scoring candidate runs."""

import torch

from benchmarks import rerank_oracle


def test_tied_scores_run_the_plain_base_exactly_although_every_candidate_was_simulated(expo_base_run, monkeypatch):
    real = rerank_oracle._score
    calls = []

    def simulated_then_tied(env, base, chunks, steps, seed):
        calls.append(real(env, base, chunks, steps, seed))  # steps the env and the base, draws their noise
        return torch.zeros(base.num_envs)

    plain = rerank_oracle.run(expo_base_run, episodes=4, k=1, lookahead=3, seed=0)
    monkeypatch.setattr(rerank_oracle, "_score", simulated_then_tied)
    record = []
    tied = rerank_oracle.run(expo_base_run, episodes=4, k=3, lookahead=3, seed=0, record=record)
    assert calls and tied["replans"] > 0 and plain["replans"] == 0
    hist, executed, scores = record[0]  # every env at the first replanning: histories, 3 candidates, 3 scores
    assert hist.shape[0] == executed.shape[0] == scores.shape[0] == 4
    assert executed.shape[1] == scores.shape[1] == 3 and not scores.any()
    assert tied["episode_success"] == plain["episode_success"]
    assert tied["episode_length"] == plain["episode_length"]
    assert tied["episode_return"] == plain["episode_return"]  # the same trajectories, bit for bit


def test_the_best_scoring_candidate_runs(expo_base_run, monkeypatch):
    trials, executed, inside = [], [], [False]
    real_score, real_act = rerank_oracle._score, rerank_oracle.FrozenChunkBase.act

    def third_wins(env, base, chunks, steps, seed):
        inside[0] = True
        try:
            real_score(env, base, chunks, steps, seed)
        finally:
            inside[0] = False
        trials.append(chunks.clone())
        return torch.full((base.num_envs,), 1.0 if len(trials) % 3 == 0 else 0.0)

    def act(self, chunks=None):
        if chunks is not None and not inside[0]:
            executed.append(chunks.clone())
        return real_act(self, chunks)

    monkeypatch.setattr(rerank_oracle, "_score", third_wins)
    monkeypatch.setattr(rerank_oracle.FrozenChunkBase, "act", act)
    rerank_oracle.run(expo_base_run, episodes=2, k=3, lookahead=2, seed=0)
    assert executed and len(trials) == 3 * len(executed)
    assert torch.equal(executed[0], trials[2]) and not torch.equal(trials[2], trials[0])  # every env due at first
    for r, chunk in enumerate(executed):  # later: an env whose episode ended keeps candidate 0
        changed = (chunk != trials[3 * r]).flatten(1).any(1)
        assert torch.equal(chunk[changed], trials[3 * r + 2][changed])
