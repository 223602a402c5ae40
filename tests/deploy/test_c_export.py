"""C export: graph reading, errors, host-compiled float C vs onnxruntime, int8 C vs the numpy reference."""

import json
import shutil

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from deploy.export.c_export import export_c, main
from deploy.export.c_toolchain import HostPolicy, build_host_library
from deploy.export.int8_reference import Int8Policy, expf, tanhf
from deploy.export.mlp_reader import UnsupportedGraphError, read_mlp
from deploy.export.sample_policies import generic_export, quadrotor_export
from deploy.onnx_io import onnx_session

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="host C compiler gcc not found")


@pytest.fixture(scope="module")
def paper_export(tmp_path_factory):
    """The paper's actor shape (146-64-64-4, fast tanh, tanh output), random weights, real observations."""
    d = tmp_path_factory.mktemp("paper")
    obs = quadrotor_export(d)
    return d, obs


def _ort(d, obs):
    return onnx_session(d / "policy.onnx").run(None, {"obs": np.asarray(obs, np.float32)})[0]


def test_reader_recovers_layers_and_fast_tanh(paper_export):
    d, obs = paper_export
    spec = read_mlp(d / "policy.onnx")
    assert [layer.activation for layer in spec.layers] == ["fast_tanh", "fast_tanh", "identity"]
    assert spec.output == "tanh" and spec.macs == 146 * 64 + 64 * 64 + 64 * 4
    np.testing.assert_allclose(spec.forward(obs), _ort(d, obs), atol=1e-5)


def _graph_with(node_op: str, tmp_path):
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "W")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    nodes = [helper.make_node("Gemm", ["obs", "W", "b"], ["h"], name="gemm0", transB=1),
             helper.make_node(node_op, ["h"], ["action"], name="odd")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["b", 3])],
                          [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["b", 2])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("op", ["Sigmoid", "Softmax", "Relu"])
def test_unsupported_op_is_a_one_line_error_naming_it(op, tmp_path):
    with pytest.raises(UnsupportedGraphError) as err:
        read_mlp(_graph_with(op, tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and (f"'{op}'" in msg) and "supported:" in msg


def test_matmul_add_is_accepted():
    w, b = np.arange(6, dtype=np.float32).reshape(3, 2), np.array([1.0, -1.0], np.float32)
    nodes = [helper.make_node("MatMul", ["obs", "W"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["z"]),
             helper.make_node("Identity", ["z"], ["action"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["b", 3])],
                          [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["b", 2])],
                          [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    spec = read_mlp(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    np.testing.assert_array_equal(spec.layers[0].weight, w.T)
    np.testing.assert_array_equal(spec.forward(np.ones((1, 3))), [[7.0, 8.0]])


def test_export_c_refuses_unsupported_graph(paper_export, tmp_path):
    d, _ = paper_export
    shutil.copy(d / "policy.json", tmp_path / "policy.json")
    onnx.save(_graph_with("Sigmoid", tmp_path), tmp_path / "policy.onnx")
    with pytest.raises(UnsupportedGraphError, match="'Sigmoid'"):
        export_c(tmp_path)
    assert main([str(tmp_path)]) == 2


def test_generated_files_are_plain_c99(paper_export):
    d, _ = paper_export
    res = export_c(d)
    src = (d / "c" / "policy.c").read_text()
    assert res["out_dir"] == str(d / "c") and res["macs"] == 13696
    assert "static const float RLP_L0" in src and "malloc" not in src and "math.h" not in src
    assert "0x1." in src  # weights as exact hexadecimal floating constants
    hdr = (d / "c" / "policy.h").read_text()
    assert "#define RLP_POLICY_OBS_DIM 146" in hdr and "#define RLP_POLICY_RPM_MAX 0x1.5318p+14f" in hdr


def test_numpy_mirrors_of_exp_and_tanh_are_accurate():
    x = np.linspace(-12, 12, 20001, dtype=np.float32)
    np.testing.assert_allclose(tanhf(x), np.tanh(x.astype(np.float64)), atol=2.5e-7, rtol=0)
    neg = np.linspace(-80, 0, 5001, dtype=np.float32)
    np.testing.assert_allclose(expf(neg), np.exp(neg.astype(np.float64)), rtol=3e-7, atol=1e-38)


@needs_gcc
def test_host_c_matches_onnxruntime(paper_export, tmp_path):
    d, obs = paper_export
    export_c(d, out_dir=tmp_path / "c")
    pol = HostPolicy(build_host_library(tmp_path / "c", tmp_path / "libpolicy.so"))
    assert pol.self_test()[0] == 0
    rnd = np.random.default_rng(3).normal(0.0, 1.0, (500, 146)).astype(np.float32)
    for x in (obs, rnd):
        assert np.abs(pol(x) - _ort(d, x)).max() <= 1e-6


@needs_gcc
def test_int8_c_matches_numpy_reference_bit_for_bit(paper_export, tmp_path):
    d, obs = paper_export
    res = export_c(d, out_dir=tmp_path / "c8", quantize="int8", calibration=obs)
    assert res["max_action_error_vs_float"] < 0.01
    pol = HostPolicy(build_host_library(tmp_path / "c8", tmp_path / "libint8.so"))
    ref = Int8Policy(tmp_path / "c8")
    assert pol.self_test() == (0, 0.0)
    rnd = np.random.default_rng(4).normal(0.0, 1.0, (300, 146)).astype(np.float32)
    for x in (obs, rnd):
        np.testing.assert_array_equal(pol(x).view(np.uint32), ref(x).view(np.uint32))
    report = json.loads((tmp_path / "c8" / "quantization.json").read_text())
    assert report["input_fbits"] == 9 and 32767 * 2.0**-9 >= 35.0 and report["calibration_samples"] == len(obs) + 8


def test_int8_policy_is_a_batched_numpy_function(paper_export):
    d, obs = paper_export
    pol = Int8Policy(d, calibration=obs)  # quantises policy.onnx directly
    out = pol(obs)
    assert out.shape == (len(obs), 4) and out.dtype == np.float32
    np.testing.assert_array_equal(pol(obs[0]), out[0])
    assert np.abs(out - _ort(d, obs)).max() < 0.01


@needs_gcc
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(in_dim=st.integers(1, 23), hidden=st.lists(st.integers(1, 13), min_size=1, max_size=2),
       out_dim=st.integers(1, 6), activation=st.sampled_from(["relu", "tanh", "elu", "fast_tanh"]),
       output=st.sampled_from(["tanh", "clip", "identity"]), seed=st.integers(0, 1000))
def test_random_mlp_shapes_export_and_match(tmp_path_factory, in_dim, hidden, out_dim, activation, output, seed):
    d = tmp_path_factory.mktemp("rnd")
    obs = generic_export(d, in_dim, hidden, out_dim, activation, output, seed)
    export_c(d)
    export_c(d, quantize="int8", calibration=obs)
    pol = HostPolicy(build_host_library(d / "c", d / "f.so"))
    assert np.abs(pol(obs) - _ort(d, obs)).max() <= 1e-6
    pol8 = HostPolicy(build_host_library(d / "c_int8", d / "i.so"))
    np.testing.assert_array_equal(pol8(obs).view(np.uint32), Int8Policy(d / "c_int8")(obs).view(np.uint32))
    assert pol.self_test()[0] == 0 and pol8.self_test()[0] == 0


def test_module_entry_point(paper_export, tmp_path, capsys):
    d, obs = paper_export
    np.save(tmp_path / "calib.npy", obs)
    assert main([str(d), "--out", str(tmp_path / "o"), "--quantize", "int8",
                 "--calibration", str(tmp_path / "calib.npy")]) == 0
    assert "int8: max action error vs float" in capsys.readouterr().out
    assert (tmp_path / "o" / "policy.c").is_file() and (tmp_path / "o" / "int8_params.npz").is_file()


@needs_gcc
def test_longer_action_history_flows_through_export_and_c(tmp_path):
    """crazyflie-hover-robust's 48-step history: 210 inputs in policy.json, the C export and its self-test."""
    obs = quadrotor_export(tmp_path / "exp", action_history=48)
    spec = json.loads((tmp_path / "exp" / "policy.json").read_text())
    hist = next(c for c in spec["observation"] if c["name"] == "action_history")
    assert obs.shape[1] == 210 and hist["steps"] == 48 and hist["size"] == 192
    export_c(tmp_path / "exp", out_dir=tmp_path / "c")
    pol = HostPolicy(build_host_library(tmp_path / "c", tmp_path / "libpolicy.so"))
    assert pol.self_test()[0] == 0
    assert np.abs(pol(obs) - _ort(tmp_path / "exp", obs)).max() <= 1e-6
