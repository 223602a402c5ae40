"""C export of a recurrent (GRU) policy: the host build agrees with onnxruntime step by step, carries its state
between calls, resets it, refuses what it cannot write, and its self-test runs the sequence test vector."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from deploy.export.c_export import CExportError, export_c, main
from deploy.export.c_toolchain import HostPolicy, build_host_library
from deploy.export.mlp_reader import UnsupportedGraphError
from deploy.onnx_io import onnx_session
from tests.deploy.recurrent_export import STATE, level_env, make_recurrent_export

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host C compiler gcc not found")


@pytest.fixture(scope="module")
def gru_c(tmp_path_factory):
    """An export with a hidden layer of 30 (not a multiple of 4: padded rows land in the state part) and its C."""
    d = tmp_path_factory.mktemp("gru_c")
    make_recurrent_export(d, hidden=30)
    res = export_c(d)
    return d, res, HostPolicy(build_host_library(d / "c", d / "libpolicy.so"))


def test_generated_c_declares_the_state_and_passes_its_self_test(gru_c):
    d, res, policy = gru_c
    assert res["macs"] == 210 * 30 + 3 * STATE * 30 + 3 * STATE * STATE + 4 * (30 + STATE)
    assert res["state_size"] == STATE and policy.state_size == STATE
    header = (d / "c" / "policy.h").read_text()
    assert f"#define RLP_POLICY_STATE_SIZE {STATE}" in header and "void rlp_policy_commit(void);" in header
    rc, diff = policy.self_test()
    assert rc == 0 and diff <= 1e-5


def test_c_and_onnxruntime_agree_step_by_step_over_100_steps(gru_c):
    """The C policy flies the simulator for 100 steps; every action and the carried state match onnxruntime fed
    its own state_out, to 1e-5."""
    d, _, policy = gru_c
    session = onnx_session(d / "policy.onnx")
    env = level_env()
    obs = env.reset(seed=5)["policy"]
    policy.reset()
    state = np.zeros((1, STATE), np.float32)
    worst = 0.0
    for _ in range(100):
        o = obs[0].numpy()
        got = policy(o[None])[0]
        want, state = session.run(["action", "state_out"], {"obs": o[None], "state_in": state})
        worst = max(worst, float(np.abs(got - want[0]).max()))
        obs, _, terminated, truncated, _ = env.step(torch.as_tensor(got.copy())[None])
        obs = obs["policy"]
        assert not (terminated | truncated).any()
    assert worst <= 1e-5
    assert np.abs(state).max() > 1e-3  # the state did move: the agreement covers it


def test_state_is_carried_and_reset(gru_c):
    d, _, policy = gru_c
    tv = json.loads((d / "policy.json").read_text())["test_vector"]
    seq, want = np.asarray(tv["example_input"], np.float32), np.asarray(tv["example_output"], np.float32)
    policy.reset()
    first = policy(seq)
    np.testing.assert_allclose(first, want, atol=1e-5)
    again = policy(seq)  # no reset: the second pass starts from the state the first one left
    assert np.abs(again[1:] - want[1:]).max() > 1e-4
    policy.reset()
    np.testing.assert_array_equal(policy(seq), first)
    stateless = np.concatenate([(policy.reset(), policy(o[None]))[1] for o in seq])
    assert np.abs(stateless[1:] - want[1:]).max() > 1e-4  # resetting before every call is not the policy


def _edited(d, tmp_path, edit):
    out = tmp_path / "edited"
    out.mkdir(parents=True)
    model = onnx.load(str(d / "policy.onnx"))
    edit(model)
    onnx.save(model, str(out / "policy.onnx"))
    (out / "policy.json").write_text((d / "policy.json").read_text())
    return out


def test_refusals_are_one_line(gru_c, tmp_path):
    d, _, _ = gru_c
    with pytest.raises(CExportError, match="float32 C export only; int8 is for MLPs"):
        export_c(d, out_dir=tmp_path / "i8", quantize="int8")

    def swap_gates(model):  # the z and n rows of the state side swapped: a different cell, same ops and shapes
        for t in model.graph.initializer:
            if t.name == "W_hh":
                w = numpy_helper.to_array(t).copy()
                w[STATE:2 * STATE], w[2 * STATE:] = w[2 * STATE:].copy(), w[STATE:2 * STATE].copy()
                t.CopyFrom(numpy_helper.from_array(w, "W_hh"))

    with pytest.raises(CExportError, match="miss policy.json's test vector"):
        export_c(_edited(d, tmp_path / "a", swap_gates), out_dir=tmp_path / "a" / "c")

    def softsign_gate(model):
        next(n for n in model.graph.node if n.name == "n_gate").op_type = "Softsign"

    with pytest.raises(UnsupportedGraphError, match="unsupported ONNX op 'Softsign' in node 'n_gate'"):
        export_c(_edited(d, tmp_path / "b", softsign_gate), out_dir=tmp_path / "b" / "c")
    assert not (tmp_path / "a" / "c").exists() and not (tmp_path / "b" / "c").exists()


def test_command_line_writes_the_recurrent_c(gru_c, tmp_path, capsys):
    d, res, _ = gru_c
    assert main([str(d), "--out", str(tmp_path / "c")]) == 0
    assert f"({res['macs']} MACs" in capsys.readouterr().out
    assert (tmp_path / "c" / "policy.c").read_text() == (d / "c" / "policy.c").read_text()
    assert main([str(d), "--out", str(tmp_path / "i8"), "--quantize", "int8"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
