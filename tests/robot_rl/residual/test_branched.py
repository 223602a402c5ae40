"""Branched base rollouts and their value: the simulated continuations leave no trace (env, base and noise
restored), the best-scoring candidate runs, and the fitted value ranks one state's candidates by their outcome."""

from types import SimpleNamespace

import pytest
import torch

from robot_rl.residual import branched
from robot_rl.residual.branched import BranchedConfig, fit_branch_value, relative_scores, stack_record
from robot_rl.runners.bc import load_policy


def _rollouts(run, episodes, k, lookahead, record=None):
    policy, meta = load_policy(run)
    return branched.best_of_k_rollouts(policy, meta["config"]["task"], episodes, k, lookahead, seed=0, env_seed=5,
                                       record=record)


def test_tied_scores_run_the_plain_base_exactly_although_every_candidate_was_simulated(expo_base_run, monkeypatch):
    real = branched.score_continuations
    calls = []

    def simulated_then_tied(env, base, chunks, steps, seed):
        calls.append(real(env, base, chunks, steps, seed))  # steps the env and the base, draws their noise
        return torch.zeros(base.num_envs)

    plain = _rollouts(expo_base_run, 4, 1, 3)
    monkeypatch.setattr(branched, "score_continuations", simulated_then_tied)
    record = []
    tied = _rollouts(expo_base_run, 4, 3, 3, record)
    assert calls and tied["replans"] > 0 and plain["replans"] == 0
    hist, executed, scores = record[0]  # every env at the first replanning: histories, 3 candidates, 3 scores
    assert hist.shape[0] == executed.shape[0] == scores.shape[0] == 4
    assert executed.shape[1] == scores.shape[1] == 3 and not scores.any()
    assert tied["episode_success"] == plain["episode_success"]
    assert tied["episode_length"] == plain["episode_length"]
    assert tied["episode_return"] == plain["episode_return"]  # the same trajectories, bit for bit


def test_the_best_scoring_candidate_runs(expo_base_run, monkeypatch):
    trials, executed, inside = [], [], [False]
    real_score, real_act = branched.score_continuations, branched.FrozenChunkBase.act

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

    monkeypatch.setattr(branched, "score_continuations", third_wins)
    monkeypatch.setattr(branched.FrozenChunkBase, "act", act)
    _rollouts(expo_base_run, 2, 3, 2)
    assert executed and len(trials) == 3 * len(executed)
    assert torch.equal(executed[0], trials[2]) and not torch.equal(trials[2], trials[0])  # every env due at first
    for r, chunk in enumerate(executed):  # later: an env whose episode ended keeps candidate 0
        changed = (chunk != trials[3 * r]).flatten(1).any(1)
        assert torch.equal(chunk[changed], trials[3 * r + 2][changed])


def test_relative_scores_are_centred_per_state_and_mark_the_states_whose_candidates_differ():
    hist = torch.arange(6.0).view(2, 3)
    chunks = torch.arange(2 * 3 * 4.0).view(2, 3, 4)
    scores = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    data = relative_scores(stack_record([(hist[:1], chunks[:1], scores[:1]), (hist[1:], chunks[1:], scores[1:])]))
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
    data = relative_scores({"hist": hist, "chunks": chunks, "scores": scores})
    value = fit_branch_value(policy, data, BranchedConfig(), steps=400, seed=0)
    test_hist = torch.randn(50, 6, generator=gen)
    good, bad = torch.randn(50, 3, generator=gen).abs(), -torch.randn(50, 3, generator=gen).abs()
    bad[:, 1:] = good[:, 1:]
    assert (value.score(test_hist, good) > value.score(test_hist, bad)).float().mean() > 0.95


def test_vgps_with_the_branched_value_trains_reuses_its_data_evaluates_and_exports_from_the_cli(
        expo_base_run, tmp_path, capsys):
    import json

    from robot_rl.checkpoint import load_checkpoint
    from robot_rl.cli import main

    torch.set_num_threads(1)
    run = tmp_path / "vgps"
    args = ["train", "vgps", "--base", str(expo_base_run), "--out", str(run), "--value", "branched", "--k", "3",
            "--branched.episodes", "3", "--branched.lookahead", "4", "--branched.hidden", "16", "16", "--steps", "20"]
    with pytest.raises(SystemExit):  # one line, before anything is written
        main([*args, "--k", "1"])
    assert "--value branched needs --k >= 2" in capsys.readouterr().err and not run.exists()
    main([*args, "--eval-episodes", "4"])
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    data, meta = load_checkpoint(run / "branched_data")
    states = len(data["scores"])
    assert data["chunks"].shape[:2] == (states, 3) and data["hist"].shape[0] == states > 0
    assert meta["stats"]["env_steps_simulated"] == res["rollout_env_steps"] > 3 * 4 * 3  # K x lookahead x envs, each
    assert res["value"] == "branched" and res["branched_states"] == states and res["eval"]["k"] == 3
    main(["eval", str(run), "--episodes", "4"])
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == res["eval"]
    assert "the value fitted to branched base rollouts picks one" in (run / "report.md").read_text()
    assert again["gained"] <= 4 * again["rerank_success"] and again["lost"] <= 4 * again["base_success"]
    first = load_checkpoint(run / "value")[0]
    main([*args, "--eval-episodes", "0"])  # the same data options: nothing simulated again, the same value
    assert "branched data from" in capsys.readouterr().out
    for k, v in load_checkpoint(run / "value")[0].items():
        assert torch.equal(v, first[k]), k
    main([*args[:-2], "--steps", "5", "--branched.lookahead", "2", "--eval-episodes", "0"])  # other data options
    assert "branched data from" not in capsys.readouterr().out
    assert load_checkpoint(run / "branched_data")[1]["options"]["lookahead"] == 2
    main(["export", str(run)])
    assert "value.onnx, k = 3" in capsys.readouterr().out
    policy_json = json.loads((run / "export" / "policy.json").read_text())
    assert policy_json["composition"]["score"] == "chunk" and policy_json["training"]["config"]["value"] == "branched"


def test_residual_lifts_rerank_row_is_a_vgps_run_with_the_branched_value(expo_base_run, tmp_path):
    from robot_rl.commands.vgps import is_vgps_run, lift
    from robot_rl.residual.rerank import RerankPolicy

    torch.set_num_threads(1)
    small = {"k": 2, "value": "branched", "steps": 5, "branched": {"episodes": 2, "lookahead": 2, "hidden": [16]}}
    row = lift("panda-reach", expo_base_run, 3, 0, tmp_path / "rr", **small)
    assert row["env_steps"] == 0 and row["value"] == "branched" and row["k"] == 2 and 0 <= row["success"] <= 1
    assert row["value_env_steps"] >= 2 * 2 * 2 and is_vgps_run(tmp_path / "rr")
    assert (tmp_path / "rr" / "branched_data.safetensors").is_file()
    policy = row["make_policy"]()
    assert isinstance(policy, RerankPolicy) and policy.k == 2
    with pytest.raises(ValueError, match="is a base for panda-reach, not panda-pick-cube"):
        lift("panda-pick-cube", expo_base_run, 3, 0, tmp_path / "rr", **small)
