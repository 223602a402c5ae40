"""The Crazyflie adapter (firmware/crazyflie) flying a generated recurrent (GRU) policy on the host: the state
starts at zero at every take-over and advances once per history window (the training rate), while every call
answers its own observation."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from deploy.export.c_export import export_c
from deploy.export.c_toolchain import HOST_CFLAGS, RLP_DIR, RLP_SOURCES, PolicyDescriptor
from deploy.onnx_io import onnx_session
from tests.deploy.recurrent_export import STATE, make_recurrent_export
from tests.firmware.test_crazyflie_adapter import CF_SRC, HERE, OFF, POLICY, Adapter, Config, hover_input

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host C compiler gcc not found")


@pytest.fixture(scope="module")
def gru_cf(tmp_path_factory):
    d = tmp_path_factory.mktemp("cf_gru")
    make_recurrent_export(d, hidden=30)
    export_c(d, out_dir=d / "c")
    (d / "ptr.c").write_text('#include "policy.h"\nconst rlp_policy_t *rlp_policy_ptr = &rlp_policy;\n')
    so = d / "libcf_gru.so"
    subprocess.run(["gcc", *HOST_CFLAGS, "-shared", f"-I{RLP_DIR}", f"-I{CF_SRC}", f"-I{d / 'c'}", "-o", str(so),
                    str(CF_SRC / "rlp_cf.c"), str(HERE / "cf_harness.c"), str(d / "ptr.c"), str(d / "c" / "policy.c"),
                    *map(str, RLP_SOURCES)], check=True)
    lib = ctypes.CDLL(str(so))
    lib.rlp_cf_size.restype = ctypes.c_size_t
    lib.h_obs.restype = lib.h_action.restype = ctypes.POINTER(ctypes.c_float)
    return lib, onnx_session(d / "policy.onnx")


def _call(cf, inp):
    assert cf.lib.rlp_cf_step(cf.buf, ctypes.byref(inp)) == 0
    obs = np.ctypeslib.as_array(cf.lib.h_obs(cf.buf), (210,)).copy()
    return obs, np.ctypeslib.as_array(cf.lib.h_action(cf.buf), (4,)).copy()


def _flight(cf, t0, calls):
    """``calls`` policy calls 2 ms apart (500 Hz) while the vehicle drifts; (observation, action) of each."""
    out = []
    for k in range(calls):
        inp = hover_input(now=t0 + 2 * k, setpoint=t0 + 2 * k, pos=(0.01 * k, -0.005 * k, 0.5 + 0.002 * k))
        inp.gyro_dps[0] = 3.0 * k
        assert cf.update(inp) == POLICY
        out.append(_call(cf, inp))
    return out


def test_state_commits_once_per_window_and_restarts_at_take_over(gru_cf):
    lib, session = gru_cf
    cf = Adapter(lib, policy="rlp_policy_ptr")  # decimation 5: 500 Hz calls, 100 Hz history and memory
    committed = np.zeros((1, STATE), np.float32)
    first = _flight(cf, 1000, 23)
    for k, (obs, action) in enumerate(first):
        want, nxt = session.run(["action", "state_out"], {"obs": obs[None], "state_in": committed})
        np.testing.assert_allclose(action, want[0], atol=1e-5)
        if k % 5 == 4:  # the window's last call commits
            committed = nxt
    # committing after every call (memory at 500 Hz, five times the training rate) would not reproduce these
    every = np.zeros((1, STATE), np.float32)
    diffs = []
    for obs, action in first:
        want, every = session.run(["action", "state_out"], {"obs": obs[None], "state_in": every})
        diffs.append(np.abs(action - want[0]).max())
    assert max(diffs) > 1e-4
    # dead-man, then a new take-over: the state starts from zero again, like the history
    assert cf.update(hover_input(now=1500, setpoint=1000)) == OFF
    again = _flight(cf, 2000, 5)
    obs, action = again[0]
    want, _ = session.run(["action", "state_out"], {"obs": obs[None], "state_in": np.zeros((1, STATE), np.float32)})
    np.testing.assert_allclose(action, want[0], atol=1e-5)
    for (o1, a1), (o2, a2) in zip(first[:5], again, strict=True):  # the same flight gives the same actions
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(a1, a2)


def test_a_recurrent_descriptor_without_its_functions_is_refused(gru_cf):
    lib, _ = gru_cf
    ptr = ctypes.c_void_p.in_dll(lib, "rlp_policy_ptr").value
    desc = PolicyDescriptor.from_buffer_copy(ctypes.string_at(ptr, ctypes.sizeof(PolicyDescriptor)))
    assert desc.state_size == STATE and desc.reset and desc.commit
    cfg = Config()
    lib.rlp_cf_default_config(ctypes.byref(cfg))
    buf = ctypes.create_string_buffer(lib.rlp_cf_size())
    assert lib.rlp_cf_init(buf, ctypes.byref(desc), ctypes.byref(cfg)) == 0
    desc.commit = None
    assert lib.rlp_cf_init(buf, ctypes.byref(desc), ctypes.byref(cfg)) == -1


def _glue(tmp_path, cdir, cc="gcc", flags=(), link=True):
    """rlp_controller.c (with the rest of the app) against the stand-in firmware headers."""
    srcs = [CF_SRC / "rlp_controller.c", CF_SRC / "rlp_cf.c", cdir / "policy.c", *RLP_SOURCES]
    inc = [f"-I{HERE / 'stubs'}", f"-I{RLP_DIR}", f"-I{CF_SRC}", f"-I{cdir}"]
    if link:
        cmd = [cc, *flags, *inc, "-o", str(tmp_path / "glue"), *map(str, srcs), str(HERE / "cf_glue_sim.c")]
    else:
        cmd = [cc, *flags, *inc, "-c", "-o", str(tmp_path / "controller.o"), str(srcs[0])]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_firmware_glue_flies_a_small_recurrent_policy(tmp_path):
    d = tmp_path / "gru"
    d.mkdir()
    make_recurrent_export(d, hidden=30)
    export_c(d, out_dir=d / "c")
    res = _glue(tmp_path, d / "c", flags=[*HOST_CFLAGS, "-std=gnu11"])
    assert res.returncode == 0, res.stderr
    out = subprocess.run([str(tmp_path / "glue")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "selftest 1" in out  # the sequence self-test passes at boot
    assert sum(line.split()[1] == "F" for line in out if line[:1].isdigit()) == 490


def test_a_policy_too_large_for_the_stabilizer_tick_does_not_build(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    make_recurrent_export(d, hidden=100)  # 27,032 MACs > RLP_CF_MAX_MACS
    res = export_c(d, out_dir=d / "c")
    assert res["macs"] > 24000
    built = _glue(tmp_path, d / "c", flags=[*HOST_CFLAGS, "-std=gnu11"], link=False)
    assert built.returncode != 0 and "policy too large for the stabilizer tick" in built.stderr
    assert _glue(tmp_path, d / "c", flags=[*HOST_CFLAGS, "-std=gnu11", "-DRLP_CF_MAX_MACS=30000"],
                 link=False).returncode == 0


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not found")
def test_recurrent_app_compiles_with_the_firmware_flags(tmp_path):
    d = tmp_path / "gru"
    d.mkdir()
    make_recurrent_export(d, hidden=30)
    export_c(d, out_dir=d / "c")
    flags = ["-Os", "-std=gnu11", "-Wall", "-Wmissing-braces", "-Wdouble-promotion", "-Werror", "-ffp-contract=off",
             "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-fno-strict-aliasing"]
    for src in [CF_SRC / "rlp_cf.c", d / "c" / "policy.c", *RLP_SOURCES]:
        subprocess.run(["arm-none-eabi-gcc", *flags, f"-I{RLP_DIR}", f"-I{CF_SRC}", f"-I{d / 'c'}", "-c", "-o",
                        str(tmp_path / (src.stem + ".o")), str(src)], check=True)
    res = _glue(tmp_path, d / "c", cc="arm-none-eabi-gcc", flags=flags, link=False)
    assert res.returncode == 0, res.stderr
