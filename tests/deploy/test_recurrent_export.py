"""Recurrent exports (``kind: "recurrent"``): ONNX with the state as input and output, the sequence test vector,
and the runtime that carries the state (the C export: test_recurrent_c.py)."""

import json

import numpy as np
import pytest
import torch

from deploy import contract
from deploy.chunked_runtime import load_runner
from deploy.export.recurrent_policy import run_sequence
from deploy.inputs import ModelError
from deploy.onnx_io import onnx_session
from deploy.recurrent_runtime import RecurrentPolicyRunner
from deploy.runtime import PolicyRunner
from tests.deploy.recurrent_export import STATE, level_env, make_recurrent_export
from tests.deploy.test_runtime import fill, sim_state


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("gru")
    actor, doc = make_recurrent_export(d)
    return d, actor, doc


def test_policy_json_declares_the_state_and_a_sequence_test_vector(exported):
    d, _, doc = exported
    spec = contract.load(d)
    assert spec["kind"] == "recurrent" and contract.is_recurrent(spec)
    assert spec["recurrent"] == {"state_size": STATE, "input": "state_in", "output": "state_out", "initial": "zeros"}
    assert len(spec["test_vector"]["example_input"]) == 8
    assert max(doc["verification"].values()) <= 1e-5
    bad = dict(spec, recurrent={"state_size": 0, "input": "state_in", "output": "state_out", "initial": "zeros"})
    with pytest.raises(contract.ContractError, match="a recurrent policy needs 'recurrent'"):
        contract.validate(bad)


def test_the_test_vector_fails_a_consumer_that_drops_the_state(exported):
    d, _, _ = exported
    spec = contract.load(d)
    session = onnx_session(d / "policy.onnx")
    seq = np.asarray(spec["test_vector"]["example_input"], np.float32)
    want = np.asarray(spec["test_vector"]["example_output"], np.float32)
    chained, _ = run_sequence(session, seq, STATE)
    np.testing.assert_allclose(chained, want, atol=1e-6)
    zero = np.zeros((len(seq), STATE), np.float32)
    stateless = session.run(["action"], {"obs": seq, "state_in": zero})[0]
    assert np.abs(stateless[0] - want[0]).max() <= 1e-6  # the first call starts from zeros either way
    assert np.abs(stateless[1:] - want[1:]).max() > 1e-4  # later calls need the carried state


def test_runtime_and_onnx_agree_step_by_step_over_100_steps_and_the_state_resets(exported):
    d, actor, _ = exported
    env = level_env()
    obs = env.reset(seed=5)["policy"]
    session = onnx_session(d / "policy.onnx")
    runner = load_runner(d, sources={"odom": None}, command_unit="normalized")
    assert isinstance(runner, RecurrentPolicyRunner) and not runner.state.any()
    onnx_state = np.zeros((1, STATE), np.float32)
    torch_state = actor.initial_state(1)
    for t in range(100):
        o = obs[0].numpy()
        fill(runner, sim_state(o), stamp=t + 1)
        np.testing.assert_array_equal(runner.obs[0], o)
        cmd, reason = runner.step(0.0)
        assert reason is None
        want, onnx_state = session.run(["action", "state_out"], {"obs": o[None], "state_in": onnx_state})
        np.testing.assert_allclose(cmd, want[0], atol=1e-5)
        np.testing.assert_allclose(runner.state, onnx_state, atol=1e-5)
        with torch.no_grad():
            ref, torch_state = actor(obs, torch_state)
        np.testing.assert_allclose(cmd, ref[0].numpy(), atol=1e-5)
        obs, _, terminated, truncated, _ = env.step(torch.as_tensor(cmd.copy())[None])
        obs = obs["policy"]
        assert not (terminated | truncated).any()
    assert np.abs(runner.state).max() > 1e-3
    runner.activate()
    assert not runner.state.any() and not runner.obs[0, 18:].any()  # state and history restart together
    runner.step(0.0)
    assert runner.state.any()
    cmd, reason = runner.safe_command("test fault")
    assert reason == "test fault" and not runner.state.any()


def test_stateless_consumers_refuse_a_recurrent_export(exported, tmp_path):
    d, _, _ = exported
    with pytest.raises(ModelError, match="expected one input and one output, got 2 and 2"):
        PolicyRunner(d, sources={"odom": None})
    runner = RecurrentPolicyRunner(d, sources={"odom": None})
    with pytest.raises(ModelError, match="no stateless batch call"):
        runner.forward_batch(np.zeros((1, 210), np.float32))


def test_a_tampered_sequence_is_refused_at_load(exported, tmp_path):
    d, _, _ = exported
    spec = json.loads((d / "policy.json").read_text())
    spec["test_vector"]["example_output"][5][0] += 1e-3
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "policy.onnx").write_bytes((d / "policy.onnx").read_bytes())
    (bad / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="test vector mismatch"):
        load_runner(bad, sources={"odom": None})
