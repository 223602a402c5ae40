"""Crazyflie adapter (firmware/crazyflie): observation assembly, history timing, PWM mapping, dead-man and
warm-up on the host (ctypes), plus the firmware glue file against stand-in firmware headers."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.export.c_export import export_c
from deploy.export.c_toolchain import HOST_CFLAGS, RLP_DIR, RLP_SOURCES, HostPolicy, build_host_library
from deploy.export.sample_policies import quadrotor_export
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host C compiler gcc not found")
HERE = Path(__file__).parent / "cf"
CF_SRC = Path(__file__).resolve().parents[2] / "firmware" / "crazyflie" / "src"
F3, F4 = ctypes.c_float * 3, ctypes.c_float * 4
OFF, WARMUP, POLICY = 0, 1, 2


class Config(ctypes.Structure):
    _fields_ = [("pos_limit", ctypes.c_float), ("vel_limit", ctypes.c_float), ("deadman_ms", ctypes.c_uint32),
                ("warmup_ms", ctypes.c_uint32), ("warmup_ratio", ctypes.c_uint16), ("decimation", ctypes.c_uint16)]


class Input(ctypes.Structure):
    _fields_ = [("now_ms", ctypes.c_uint32), ("setpoint_ms", ctypes.c_uint32),
                ("setpoint_has_position", ctypes.c_uint32), ("setpoint_pos", F3), ("setpoint_vel", F3),
                ("pos", F3), ("vel", F3), ("quat", F4), ("gyro_dps", F3)]


class Adapter:
    """One rlp_cf_t driven through ctypes with the fake policy of cf_harness.c (or the policy ``policy`` points
    to: the name of a ``const rlp_policy_t *`` in ``lib``)."""

    def __init__(self, lib, policy="fake_policy_ptr", **cfg):
        self.lib = lib
        c = Config()
        lib.rlp_cf_default_config(ctypes.byref(c))
        for k, v in cfg.items():
            setattr(c, k, v)
        self.buf = ctypes.create_string_buffer(lib.rlp_cf_size())
        assert lib.rlp_cf_init(self.buf, ctypes.c_void_p.in_dll(lib, policy), ctypes.byref(c)) == 0
        lib.h_set_flags(self.buf, 1, 1)

    def update(self, inp):
        return self.lib.rlp_cf_update(self.buf, ctypes.byref(inp))

    def step(self, inp, action):
        (ctypes.c_float * 4).in_dll(self.lib, "fake_action")[:] = [float(a) for a in action]
        return self.lib.rlp_cf_step(self.buf, ctypes.byref(inp))

    @property
    def seen_obs(self):
        return np.array((ctypes.c_float * 146).in_dll(self.lib, "fake_seen_obs")[:], np.float32)

    @property
    def history(self):
        return np.ctypeslib.as_array(self.lib.h_history(self.buf), (128,)).copy().reshape(32, 4)

    @property
    def pwm(self):
        return np.ctypeslib.as_array(self.lib.h_pwm(self.buf), (4,)).copy()


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("cf")
    (d / "ptr.c").write_text('#include "rlp.h"\nextern const rlp_policy_t fake_policy;\n'
                             "const rlp_policy_t *fake_policy_ptr = &fake_policy;\n")
    so = d / "libcf.so"
    subprocess.run(["gcc", *HOST_CFLAGS, "-Werror", "-shared", f"-I{RLP_DIR}", f"-I{CF_SRC}", "-o", str(so),
                    str(CF_SRC / "rlp_cf.c"), str(HERE / "cf_harness.c"), str(d / "ptr.c"), *map(str, RLP_SOURCES)],
                   check=True)
    lib = ctypes.CDLL(str(so))
    lib.rlp_cf_size.restype = ctypes.c_size_t
    for name in ("h_pwm", "h_history", "h_origin"):
        getattr(lib, name).restype = ctypes.c_void_p
    lib.h_pwm.restype = ctypes.POINTER(ctypes.c_uint16)
    lib.h_history.restype = ctypes.POINTER(ctypes.c_float)
    lib.rlp_cf_action_to_ratio.restype = ctypes.c_uint16
    lib.rlp_cf_action_to_ratio.argtypes = [ctypes.c_float, ctypes.c_float, ctypes.c_float]
    return lib


def hover_input(now=1000, setpoint=1000, pos=(0.0, 0.0, 0.5), target=(0.0, 0.0, 0.5), has_position=True):
    return Input(now_ms=now, setpoint_ms=setpoint, setpoint_has_position=int(has_position),
                 setpoint_pos=F3(*target), setpoint_vel=F3(0, 0, 0), pos=F3(*pos), vel=F3(0, 0, 0),
                 quat=F4(1, 0, 0, 0), gyro_dps=F3(0, 0, 0))


def test_observation_matches_the_simulator(lib):
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=16, noise=False), seed=3)
    env.reset(seed=3)
    expected = env._observe(fresh=torch.zeros(16, dtype=torch.bool))["policy"].numpy()
    s = env.state.numpy()
    for i in range(16):
        cf = Adapter(lib)
        inp = Input(now_ms=500, setpoint_ms=490, setpoint_has_position=1, setpoint_pos=F3(*env.target[i].tolist()),
                    setpoint_vel=F3(0, 0, 0), pos=F3(*s[i, 0:3]), vel=F3(*s[i, 7:10]), quat=F4(*s[i, 3:7]),
                    gyro_dps=F3(*np.degrees(s[i, 10:13].astype(np.float64))))
        assert cf.update(inp) == POLICY
        assert cf.step(inp, [0, 0, 0, 0]) == 0
        np.testing.assert_allclose(cf.seen_obs[:146], expected[i], atol=1e-6, rtol=0)


def test_position_and_velocity_errors_are_clipped(lib):
    cf = Adapter(lib)
    inp = hover_input(pos=(2.0, -0.3, 0.5))
    inp.vel = F3(5.0, -5.0, 1.0)
    cf.update(inp)
    cf.step(inp, [0, 0, 0, 0])
    np.testing.assert_array_equal(cf.seen_obs[0:3], np.float32([0.5, -0.3, 0.0]))
    np.testing.assert_array_equal(cf.seen_obs[12:15], np.float32([2.0, -2.0, 1.0]))


def test_hover_in_place_without_position_setpoint(lib):
    cf = Adapter(lib)
    inp = hover_input(pos=(1.0, 2.0, 0.3), has_position=False)
    cf.update(inp)
    inp.pos = F3(1.1, 2.0, 0.3)
    cf.step(inp, [0, 0, 0, 0])
    np.testing.assert_allclose(cf.seen_obs[0:3], [0.1, 0.0, 0.0], atol=1e-6)


def test_action_history_advances_every_fifth_call_with_window_mean(lib):
    cf = Adapter(lib)
    inp = hover_input()
    cf.update(inp)
    actions = np.random.default_rng(0).uniform(-1, 1, (13, 4)).astype(np.float32)
    model = np.zeros((32, 4), np.float32)
    for k, a in enumerate(actions):
        assert cf.step(inp, a) == 0
        np.testing.assert_array_equal(cf.seen_obs[18:], model.reshape(-1))  # history the policy saw
        sub = k % 5
        if sub == 0:
            model = np.roll(model, -1, axis=0)
            model[-1] = a
        else:
            model[-1] = (model[-1] * np.float32(sub) + a) / np.float32(sub + 1)
        np.testing.assert_array_equal(cf.history, model)
    # three windows: two complete means and the running mean of the third
    np.testing.assert_allclose(cf.history[-3], actions[0:5].mean(0), atol=1e-6)
    np.testing.assert_allclose(cf.history[-2], actions[5:10].mean(0), atol=1e-6)
    np.testing.assert_allclose(cf.history[-1], actions[10:13].mean(0), atol=1e-6)


def test_action_to_pwm_ratio(lib):
    for a in (-2.0, -1.0, -0.5, 0.0, 0.25, 0.999, 1.0, 3.0):
        expected = int(np.floor(np.float32((min(max(a, -1.0), 1.0) + 1.0) / 2.0 * 65535.0) + 0.5))
        assert lib.rlp_cf_action_to_ratio(a, 0.0, 21702.0) == expected
    assert lib.rlp_cf_action_to_ratio(float("nan"), 0.0, 21702.0) == 0
    # hover RPM of the paper's Crazyflie model -> RPM / 21702 * 65535
    hover_rpm = 10851.0
    assert lib.rlp_cf_action_to_ratio(hover_rpm / 21702.0 * 2 - 1, 0.0, 21702.0) == round(hover_rpm / 21702 * 65535)
    cf = Adapter(lib)
    inp = hover_input()
    cf.update(inp)
    cf.step(inp, [-1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(cf.pwm, [0, 32768, 49151, 65535])


def test_dead_man_falls_back_and_reactivation_resets(lib):
    cf = Adapter(lib)
    modes = []
    for t in range(1000, 1400):
        inp = hover_input(now=t, setpoint=1000, pos=(0.2, 0.0, 0.5), has_position=False)
        modes.append(cf.update(inp))
        if modes[-1] == POLICY and t % 2 == 0:
            cf.step(inp, [0.5, 0.5, 0.5, 0.5])
    modes = np.array(modes)
    assert (modes[:200] == POLICY).all() and (modes[200:] == OFF).all()  # 200 ms dead-man
    np.testing.assert_array_equal(cf.pwm, [0, 0, 0, 0])
    inp = hover_input(now=2000, setpoint=1995, pos=(0.7, 0.0, 0.5), has_position=False)
    assert cf.update(inp) == POLICY and lib.h_calls(cf.buf) == 0
    np.testing.assert_array_equal(cf.history, 0.0)
    np.testing.assert_allclose(np.ctypeslib.as_array(ctypes.cast(lib.h_origin(cf.buf), ctypes.POINTER(ctypes.c_float)),
                                                     (3,)), [0.7, 0.0, 0.5])
    assert cf.update(hover_input(now=5, setpoint=0)) == OFF  # no setpoint ever received


def test_warm_up_then_policy(lib):
    cf = Adapter(lib, warmup_ms=100, warmup_ratio=7000)
    modes = [cf.update(hover_input(now=t, setpoint=t)) for t in range(1000, 1150)]
    assert modes[:100] == [WARMUP] * 100 and modes[100:] == [POLICY] * 50
    cf2 = Adapter(lib, warmup_ms=100, warmup_ratio=7000)
    cf2.update(hover_input())
    np.testing.assert_array_equal(cf2.pwm, [7000] * 4)


def test_disabled_failed_test_or_bad_data_keep_the_stock_controller(lib):
    cf = Adapter(lib)
    lib.h_set_flags(cf.buf, 0, 1)
    assert cf.update(hover_input()) == OFF
    lib.h_set_flags(cf.buf, 1, 0)
    assert cf.update(hover_input()) == OFF
    lib.h_set_flags(cf.buf, 1, 1)
    inp = hover_input()
    assert cf.update(inp) == POLICY
    assert cf.step(inp, [float("nan"), 0, 0, 0]) == -1 and lib.h_mode(cf.buf) == OFF
    inp.quat = F4(float("inf"), 0, 0, 0)
    cf.update(inp)
    assert cf.step(inp, [0, 0, 0, 0]) == -1


def test_firmware_glue_against_stand_in_headers(tmp_path):
    """rlp_controller.c with the generated paper-shaped policy: PID without setpoints, policy forces while
    they stream (first inference at take-over, then 500 Hz), PID again 200 ms after the last one."""
    d = tmp_path / "export"
    quadrotor_export(d)
    export_c(d)
    exe = tmp_path / "glue"
    flags = [*HOST_CFLAGS, "-Werror", "-Wdouble-promotion", "-std=gnu11"]
    subprocess.run(["gcc", *flags, f"-I{HERE / 'stubs'}", f"-I{RLP_DIR}", f"-I{CF_SRC}", f"-I{d / 'c'}", "-o",
                    str(exe), str(CF_SRC / "rlp_controller.c"), str(CF_SRC / "rlp_cf.c"), str(HERE / "cf_glue_sim.c"),
                    str(d / "c" / "policy.c"), *map(str, RLP_SOURCES)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "selftest 1" in out
    rows = [line.split() for line in out if line[:1].isdigit()]
    ticks = np.array([int(r[0]) for r in rows])
    force = np.array([r[1] == "F" for r in rows])
    forces = np.array([[float(v) for v in r[2:]] for r in rows], np.float32)
    active = ticks[force]
    assert active[0] == 100 and active[-1] == 589 and force.sum() == 490  # last setpoint at 390 + 200 ms
    # the first forces are the policy's action for a perfect hover observation with an empty history
    pol = HostPolicy(build_host_library(d / "c", tmp_path / "p.so"))
    obs = np.zeros((1, 146), np.float32)
    obs[0, [3, 7, 11]] = 1.0
    a = pol(obs)[0]
    rpm = (a.clip(-1, 1) + np.float32(1)) * np.float32(0.5 * 21702.0)
    pwm = np.floor(rpm / np.float32(21702) * np.float32(65535) + np.float32(0.5))
    np.testing.assert_array_equal(np.floor(forces[ticks == 100][0] * np.float32(65535)), pwm)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not found")
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_app_compiles_with_the_firmware_flags(tmp_path, quantize):
    """The app's C files with the Crazyflie firmware's warning flags (-Os -Werror -Wdouble-promotion, gnu11)."""
    d = tmp_path / "export"
    quadrotor_export(d, hidden=(16, 16))
    export_c(d, out_dir=d / "c", quantize=quantize)
    flags = ["-Os", "-std=gnu11", "-Wall", "-Wmissing-braces", "-Wdouble-promotion", "-Werror", "-ffp-contract=off",
             "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-ffunction-sections",
             "-fdata-sections", "-fno-strict-aliasing"]
    for src in [CF_SRC / "rlp_controller.c", CF_SRC / "rlp_cf.c", d / "c" / "policy.c", *RLP_SOURCES]:
        subprocess.run(["arm-none-eabi-gcc", *flags, f"-I{HERE / 'stubs'}", f"-I{RLP_DIR}", f"-I{CF_SRC}",
                        f"-I{d / 'c'}", "-c", "-o", str(tmp_path / (src.stem + ".o")), str(src)], check=True)
