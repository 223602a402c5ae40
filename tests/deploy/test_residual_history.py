"""History residual (ResiP ``--history H``): export with the window input, torch-free runtime over many steps."""

import json

import numpy as np
import pytest
import torch

from deploy.chunked_runtime import load_runner
from deploy.export.residual import export_residual_policy
from deploy.residual_runtime import ResidualPolicyRunner
from deploy.runtime import ModelError
from robot_rl.residual.history import ResidualHistory
from robot_rl.residual.resip import ResidualActor
from tests.deploy.edited_export import edited_export
from tests.deploy.test_chunked import SPEC, _base_steps, _feed, _policy

STEPS = 3


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    d = tmp_path_factory.mktemp("resip_history_export")
    policy = _policy("mlp").eval()
    torch.manual_seed(2)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (16, 16), 0.3, -1.0, False, history=STEPS,
                          history_actions=True)  # reads the pushed actions too, so the test checks them
    with torch.no_grad():  # trained-looking: non-zero window weights and last layer, statistics away from (0, 1)
        actor.net[0].weight.normal_(0.0, 0.3)
        actor.net[-1].weight.normal_(0.0, 0.5)
        actor.history_norm.mean.normal_(0.0, 0.1)
        actor.history_norm.var.uniform_(0.01, 0.2)
    doc = export_residual_policy(d, policy, actor, SPEC, np.random.default_rng(0).uniform(-1, 2, (32, 4)),
                                 {"robot": "t"}, samples=16)
    return d, policy, actor.eval(), doc


def test_export_documents_the_window(composed):
    d, _, _, doc = composed
    comp = json.loads((d / "policy.json").read_text())["composition"]
    assert comp["inputs"] == ["obs", "base_action", "history"]
    assert comp["history"]["steps"] == STEPS and comp["history"]["width"] == 4 + 2
    assert np.asarray(comp["test_vector"]["example_history"]).shape[1:] == (STEPS, 6)
    assert doc["composition"]["verification"]["max_abs_error"] <= 1e-5


def _torch_steps(policy, actor, obs_seq, rng):
    """Torch reference of the runtime: chunks from the same noise, the window of :class:`ResidualHistory`."""
    window = ResidualHistory(1, STEPS, 4, 2)
    out = []
    for t, (o, base) in enumerate(_base_steps(policy, obs_seq, rng)):
        if t == 0:
            window.reset(o)
        with torch.no_grad():
            a = actor.deterministic(o, base, window.window)
            still = torch.cat((o, torch.zeros(1, 2)), -1)[:, None].expand(-1, STEPS, -1)  # "no past"
            memoryless = actor.deterministic(o, base, still)
        window.push(o, a)
        out.append((a[0].numpy(), memoryless[0].numpy()))
    return out


def test_runtime_matches_torch_over_a_sequence_and_restarts_its_window(composed):
    d, policy, actor, _ = composed
    r = load_runner(d, sources={"js": None}, deadline_s=float("inf"), noise_seed=5)
    assert isinstance(r, ResidualPolicyRunner) and r.history_steps == STEPS and r.verify_test_vector() <= 1e-5
    obs_seq = np.random.default_rng(1).uniform(-0.5, 1.5, (11, 2)).astype(np.float32)
    rng = np.random.default_rng(5)  # the runtime's noise stream
    want = _torch_steps(policy, actor, obs_seq, rng)
    reads_window = 0.0
    for t, q in enumerate(obs_seq):
        _feed(r, q, t + 1)
        cmd, reason = r.step(0.0)
        assert reason is None
        np.testing.assert_allclose(cmd, want[t][0], atol=1e-5, rtol=0)
        reads_window = max(reads_window, float(np.abs(want[t][0] - want[t][1]).max()))
    assert reads_window > 1e-2  # the past actually changes the action (not a memoryless residual in disguise)
    # activation starts a new episode: the window restarts from the first observation, as a training reset
    r.activate()
    again = _torch_steps(policy, actor, obs_seq[:5], rng)
    for t, q in enumerate(obs_seq[:5]):
        _feed(r, q, 100 + t)
        cmd, reason = r.step(0.0)
        assert reason is None
        np.testing.assert_allclose(cmd, again[t][0], atol=1e-5, rtol=0)


def test_runtime_refuses_a_window_mismatch(composed, tmp_path):
    d = composed[0]

    def longer(spec):
        spec["composition"]["history"]["steps"] = STEPS + 1
    edited_export(d, tmp_path, longer)
    with pytest.raises(ModelError, match="'history' \\[batch, 4, 6\\]"):
        load_runner(tmp_path, sources={"js": None})
    edited_export(d, tmp_path, lambda spec: spec["composition"].pop("history"))
    with pytest.raises(ModelError, match="takes 'obs'"):
        load_runner(tmp_path, sources={"js": None})
