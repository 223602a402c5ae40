"""Candidates composition: export (base sampler + value or EXPO selector), torch-free runtime against torch on the
same noise, and a constant value running the base bit for bit."""


import numpy as np
import pytest
import torch

from deploy.candidates_runtime import CandidatesPolicyRunner
from deploy.chunked_runtime import ChunkedPolicyRunner, load_runner
from deploy.export.candidates import ActionSelector, ChunkScorer, _onnx, export_candidates_policy
from deploy.export.chunked import export_chunked_policy
from robot_rl.residual.expo import EXPOAgent, EXPOConfig
from robot_rl.residual.value import ChunkValue, IQLConfig
from tests.deploy.edited_export import edited_export
from tests.deploy.test_chunked import SPEC, E, H, _feed, _policy

K = 3
OBS = np.random.default_rng(0).uniform(-1, 2, (32, 4))


def _agent(policy):
    torch.manual_seed(2)
    agent = EXPOAgent(EXPOConfig(hidden=(16, 16), num_candidates=K, edit_scale=0.3), 2 * 4, 2,
                      (policy.obs_norm.mid.repeat(2), policy.obs_norm.span.repeat(2)))
    with torch.no_grad():  # a trained-looking edit policy: non-zero mean edits
        agent.edit.mean.weight.normal_(0.0, 0.5)
    return agent.eval()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("candidates")
    policy = _policy("mlp").eval()
    agent = _agent(policy)
    torch.manual_seed(3)
    value = ChunkValue(IQLConfig(hidden=(16, 16)), 8, E * 2, E).eval()
    expo = export_candidates_policy(d / "expo", policy, ActionSelector(agent, policy), "action", K, SPEC, OBS,
                                    {"robot": "t"}, samples=16)
    rerank = export_candidates_policy(d / "rerank", policy, ChunkScorer(value, policy), "chunk", K, SPEC, OBS,
                                      {"robot": "t"}, samples=16)
    return d, policy, agent, value, expo, rerank


def test_exports_write_the_composition(exports):
    d, *_, expo, rerank = exports
    assert expo["composition"]["kind"] == rerank["composition"]["kind"] == "candidates"
    assert expo["composition"]["edit"] and not rerank["composition"]["edit"] and expo["composition"]["k"] == K
    assert max(expo["composition"]["verification"]["max_abs_error"],
               rerank["composition"]["verification"]["max_abs_error"]) <= 1e-5
    assert (d / "expo" / "select.onnx").is_file() and (d / "rerank" / "value.onnx").is_file()


def _run(runner, steps=11):
    out = []
    for t, q in enumerate(np.random.default_rng(1).uniform(-0.5, 1.5, (steps, 2)).astype(np.float32)):
        _feed(runner, q, t + 1)
        cmd, reason = runner.step(0.0)
        assert reason is None
        out.append(np.array(cmd))
    return np.stack(out)


def test_expo_runtime_matches_torch_on_the_same_noise(exports):
    d, policy, agent, *_ = exports
    r = load_runner(d / "expo", sources={"js": None}, deadline_s=float("inf"), noise_seed=5)
    assert isinstance(r, CandidatesPolicyRunner) and r.verify_test_vector() <= 1e-5
    got = _run(r)
    rng, crng = np.random.default_rng(5), np.random.default_rng([5, 1])  # the runtime's two noise streams
    select = ActionSelector(agent, policy)
    hist, edited, chosen = None, 0.0, []
    for t, q in enumerate(np.random.default_rng(1).uniform(-0.5, 1.5, (11, 2)).astype(np.float32)):
        o = torch.as_tensor(np.concatenate([q, [0.5, 0.5]]).astype(np.float32))[None]
        hist = o.expand(2, -1)[None].clone() if hist is None else torch.cat((hist[:, 1:], o[:, None]), 1)
        with torch.no_grad():
            if t % E == 0:  # a chunk is due: k chunks, their first actions are the candidates
                first = policy.sample(hist, torch.as_tensor(rng.standard_normal((1, H, 2), dtype=np.float32)))
                extra = policy.sample(hist.repeat(K - 1, 1, 1),
                                      torch.as_tensor(crng.standard_normal((K - 1, H, 2), dtype=np.float32)))
                chunks = torch.cat((first, extra))
                want, idx = select(hist, chunks[None, :, 0])
                chunk = chunks[int(idx) % K]
                chosen.append(int(idx) % K)
            else:  # the chosen chunk runs on: its action of the step (k times) and its edit
                want, _ = select(hist, chunk[t % E].expand(1, K, -1))
            want = want[0].numpy()
        np.testing.assert_allclose(got[t], want, atol=1e-5, rtol=0)
        edited = max(edited, float(np.abs(want - chunk[t % E].numpy()).max()))
    assert edited > 1e-3  # the selection moved away from the base action
    assert any(c != 0 for c in chosen)  # and ran a chunk other than the base's own
    assert r.stats()["other_chunks"] == sum(c != 0 for c in chosen)  # the runner's count of them


def test_constant_value_reranking_runtime_is_the_base(exports, tmp_path):
    d, policy, _, value, *_ = exports
    with torch.no_grad():  # a constant value: every weight of the Q heads zero
        for p in value.q.q.parameters():
            p.zero_()
    export_candidates_policy(tmp_path / "const", policy, ChunkScorer(value, policy), "chunk", K, SPEC, OBS,
                             {"robot": "t"}, samples=8)
    export_chunked_policy(tmp_path / "base", policy, SPEC, OBS, {"robot": "t"})
    kw = {"sources": {"js": None}, "deadline_s": float("inf"), "noise_seed": 7}
    const_runner, real_runner = load_runner(tmp_path / "const", **kw), load_runner(d / "rerank", **kw)
    const = _run(const_runner)
    base = _run(ChunkedPolicyRunner(tmp_path / "base", **kw))
    assert np.array_equal(const, base) and const_runner.stats()["other_chunks"] == 0
    assert not np.array_equal(_run(real_runner), base)  # a real value re-ranks
    assert 0 < real_runner.stats()["other_chunks"] <= real_runner.stats()["chunks"]


def test_refusals(exports, tmp_path):
    d = exports[0] / "rerank"

    def off(spec):
        spec["composition"]["test_vector"]["example_output"][0] += 0.1

    def vibes(spec):
        spec["composition"]["score"] = "vibes"
    with pytest.raises(Exception, match="composition test vector mismatch"):
        load_runner(edited_export(d, tmp_path, off), sources={"js": None})
    with pytest.raises(Exception, match="score 'chunk' or 'action'"):
        load_runner(edited_export(d, tmp_path, vibes), sources={"js": None})


def test_a_per_step_expo_export_is_refused(exports, tmp_path):
    """An EXPO selector of the per-step rule (one output, no chunk index) cannot run the chunk-level policy."""
    d, policy, agent, *_ = exports
    (tmp_path / "policy.onnx").write_bytes((d / "expo" / "policy.onnx").read_bytes())
    (tmp_path / "policy.json").write_text((d / "expo" / "policy.json").read_text())
    select = ActionSelector(agent, policy)
    old = _onnx(_ActionOnly(select), (torch.zeros(1, 2, 4), torch.zeros(1, K, 2)), ["obs", "candidates"], ["action"])
    (tmp_path / "select.onnx").write_bytes(old.SerializeToString())
    with pytest.raises(Exception, match="returns 'action' and 'index'.*re-export"):
        load_runner(tmp_path, sources={"js": None})


class _ActionOnly(torch.nn.Module):
    def __init__(self, select: ActionSelector) -> None:
        super().__init__()
        self.select = select

    def forward(self, obs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return self.select(obs, candidates)[0]


class _ExportedShift(ActionSelector):
    """An :class:`ActionSelector` whose exported graph adds ``shift`` to the scores of the last candidates: the ONNX
    choice then differs from torch's by a known score."""

    def __init__(self, agent: EXPOAgent, policy, shift: float) -> None:
        super().__init__(agent, policy)
        self.register_buffer("bias", torch.linspace(0.0, shift, 2 * K))

    def scores(self, obs: torch.Tensor, candidates: torch.Tensor, wrench=None) -> tuple[torch.Tensor, torch.Tensor]:
        cands, score = super().scores(obs, candidates, wrench)
        return cands, score + self.bias if torch.jit.is_tracing() else score


def test_select_export_tolerates_ties_and_refuses_other_picks(tmp_path):
    """onnxruntime may break a tie (scores within 1e-5) differently from torch; any other difference is refused."""
    policy = _policy("mlp").eval()
    tie = _agent(policy)
    with torch.no_grad():  # a constant Q: all 2k candidates tie exactly in torch
        for p in tie.critic.q.parameters():
            p.zero_()
    doc = export_candidates_policy(tmp_path / "tie", policy, _ExportedShift(tie, policy, 1e-6), "action", K, SPEC,
                                   OBS, {"robot": "t"}, samples=8)
    assert doc["composition"]["verification"]["max_abs_error"] <= 1e-5
    with pytest.raises(Exception, match=r"select.onnx picks other candidates than torch on [1-8] of 8 samples"):
        export_candidates_policy(tmp_path / "other", policy, _ExportedShift(_agent(policy), policy, 10.0), "action",
                                 K, SPEC, OBS, {"robot": "t"}, samples=8)
    assert not (tmp_path / "other" / "policy.json").exists()
