"""Generated policies on the emulated STM32F405 (Cortex-M4F, QEMU) give the host build's bits exactly."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from deploy.export.c_export import export_c
from deploy.export.c_toolchain import build_host_program, build_m4_elf, run_qemu, write_obs_header
from deploy.export.int8_reference import Int8Policy
from deploy.export.recurrent_policy import run_sequence
from deploy.export.sample_policies import closed_loop_observations, generic_export, quadrotor_export
from deploy.onnx_io import onnx_session
from tests.deploy.recurrent_export import STATE, make_recurrent_export

MISSING = [t for t in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} "
                                "(run firmware/install_toolchain.sh)")


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper")
    obs = quadrotor_export(d)
    seq = closed_loop_observations(d, steps=120)
    write_obs_header(d / "rlp_sequence.h", seq)
    return d, obs, seq


def _outputs(text: str, tag: str) -> np.ndarray:
    rows = [line.split()[2:] for line in text.splitlines() if line.startswith(tag + " ")]
    return np.array([[int(v, 16) for v in row] for row in rows], dtype=np.uint32).view(np.float32)


def _both(cdir, work, include=(), defines=()):
    """Run test_main.c on the host and under QEMU; return both outputs."""
    host = build_host_program(cdir, work / "host", include=include, defines=defines)
    elf = build_m4_elf(cdir, work / "m4.elf", include=include, defines=defines)
    return subprocess.run([str(host)], capture_output=True, text=True, check=True).stdout, run_qemu(elf)


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_paper_actor_on_m4_is_bit_exact(paper, tmp_path, quantize):
    d, obs, seq = paper
    cdir = tmp_path / "c"
    export_c(d, out_dir=cdir, quantize=quantize, calibration=obs if quantize else None)
    host, m4 = _both(cdir, tmp_path, include=[d], defines=["RLP_HAVE_SEQUENCE"])
    assert m4 == host
    assert "selftest 0 " in m4 and m4.strip().endswith("done")
    y_seq, y_test = _outputs(m4, "S"), _outputs(m4, "T")
    assert y_seq.shape == (len(seq), 4)
    if quantize:
        ref = Int8Policy(cdir)
        np.testing.assert_array_equal(y_seq.view(np.uint32), ref(seq).view(np.uint32))
    else:
        sess = onnx_session(d / "policy.onnx")
        assert np.abs(y_seq - sess.run(None, {"obs": seq})[0]).max() <= 1e-6
        assert np.abs(y_test - sess.run(None, {"obs": obs[:8]})[0]).max() <= 1e-6


@pytest.mark.parametrize("activation,output,hidden", [("elu", "identity", [12, 9]), ("tanh", "clip", [10, 7])])
def test_odd_shapes_on_m4_are_bit_exact(tmp_path, activation, output, hidden):
    """Odd sizes exercise the kernel tails (input remainders 1-3 pairs, padded rows, odd inputs)."""
    d = tmp_path / "exp"
    obs = generic_export(d, 21, hidden, 3, activation, output, seed=5)
    for quantize in (None, "int8"):
        cdir = d / (quantize or "float")
        export_c(d, out_dir=cdir, quantize=quantize, calibration=obs if quantize else None)
        host, m4 = _both(cdir, tmp_path)
        assert m4 == host and "selftest 0 " in m4


def test_recurrent_policy_on_m4_is_bit_exact(tmp_path):
    """A GRU policy: each episode (the test vector, a 40-step sequence) from the zero state, committing every
    call; M4F = host bit for bit, and both follow onnxruntime fed its own state."""
    d = tmp_path / "gru"
    d.mkdir()
    make_recurrent_export(d, hidden=30)
    rng = np.random.default_rng(3)
    seq = np.asarray(json.loads((d / "policy.json").read_text())["test_vector"]["example_input"], np.float32)
    seq = np.concatenate([seq, seq[-1] + rng.normal(0.0, 0.05, (32, seq.shape[1])).astype(np.float32)])
    write_obs_header(d / "rlp_sequence.h", seq)
    export_c(d, out_dir=d / "c")
    host, m4 = _both(d / "c", tmp_path, include=[d], defines=["RLP_HAVE_SEQUENCE"])
    assert m4 == host and "selftest 0 " in m4
    want, _ = run_sequence(onnx_session(d / "policy.onnx"), seq, STATE)
    assert np.abs(_outputs(m4, "S") - want).max() <= 1e-5
    assert np.abs(_outputs(m4, "T") - want[:8]).max() <= 1e-5
