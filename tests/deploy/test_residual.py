"""Residual composition: export (base sampler + residual actor), torch-free runtime, loader dispatch."""

import json

import numpy as np
import pytest
import torch

from deploy.chunked_runtime import ChunkedPolicyRunner, load_runner
from deploy.export.residual import export_residual_policy
from deploy.residual_runtime import ResidualPolicyRunner
from deploy.runtime import ModelError
from robot_rl.residual.resip import ResidualActor
from tests.deploy.edited_export import edited_export
from tests.deploy.test_chunked import SPEC, _base_steps, _feed, _policy


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    d = tmp_path_factory.mktemp("resip_export")
    policy = _policy("mlp").eval()
    torch.manual_seed(1)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (16, 16), 0.3, -1.0, False)
    with torch.no_grad():  # a trained-looking residual: non-zero last layer
        actor.net[-1].weight.normal_(0.0, 0.5)
    doc = export_residual_policy(d, policy, actor, SPEC, np.random.default_rng(0).uniform(-1, 2, (32, 4)),
                                 {"robot": "t"}, samples=16)
    return d, policy, actor, doc


def test_export_writes_composition(composed):
    d, _, actor, doc = composed
    assert doc["kind"] == "composed" and doc["composition"]["kind"] == "residual"
    assert doc["composition"]["scale"] == 0.3 and (d / "residual.onnx").is_file() and (d / "policy.onnx").is_file()
    assert doc["composition"]["verification"]["max_abs_error"] <= 1e-5
    assert json.loads((d / "policy.json").read_text())["composition"]["network"] == "residual.onnx"


def test_runtime_matches_torch_on_the_same_noise(composed):
    d, policy, actor, _ = composed
    r = load_runner(d, sources={"js": None}, deadline_s=float("inf"), noise_seed=5)
    assert isinstance(r, ResidualPolicyRunner) and r.verify_test_vector() <= 1e-5
    rng = np.random.default_rng(5)  # the runtime's noise stream
    obs_seq = np.random.default_rng(1).uniform(-0.5, 1.5, (11, 2)).astype(np.float32)
    differs = 0.0
    for t, (q, (o, base)) in enumerate(zip(obs_seq, _base_steps(policy, obs_seq, rng), strict=True)):
        _feed(r, q, t + 1)
        cmd, reason = r.step(0.0)
        assert reason is None
        with torch.no_grad():
            want = actor.deterministic(o, base)[0].numpy()
        np.testing.assert_allclose(cmd, want, atol=1e-5, rtol=0)
        differs = max(differs, float(np.abs(want - base[0].numpy()).max()))
    assert differs > 1e-2  # the residual changed the base's actions
    assert r.stats()["chunks"] == 3


def test_loader_dispatch_and_refusals(composed, tmp_path):
    d = composed[0]
    with pytest.raises(ModelError, match="composition 'residual'"):
        ChunkedPolicyRunner(d, sources={"js": None})
    def teleport(spec):
        spec["composition"]["kind"] = "teleport"

    def off(spec):
        spec["composition"]["test_vector"]["example_output"][0][0] += 0.1
    with pytest.raises(ModelError, match="unknown composition kind 'teleport'"):
        load_runner(edited_export(d, tmp_path, teleport), sources={"js": None})
    with pytest.raises(ModelError, match="residual test vector mismatch"):
        load_runner(edited_export(d, tmp_path, off), sources={"js": None})
    edited_export(d, tmp_path, lambda spec: None)
    (tmp_path / "residual.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_runner(tmp_path, sources={"js": None})
