"""robot-rl-node over real DDS: one quadrotor node and one arm node, driven by one peer process (peer.py).

Both nodes start from the example YAML files (``--ros-args --params-file launch/config/*.yaml``) with a few
``-p`` overrides; the peer runs every scenario once and the tests below check its recordings against the
runtime's own output for the same inputs.
"""

import json
import math
import shutil
import subprocess
import time
from types import SimpleNamespace as NS

import numpy as np
import pytest

from deploy.export.examples import export_arm_example, export_hover_example
from deploy.ros2.profiles import NodeConfig, make_profile

from .conftest import NODE_EXE, ROOT, interrupt, node_env, ros_env

QUAD_NODE, ARM_NODE = "/rrl_test/robot_rl_node", "/robot_rl_node"
STATE = {"pos": [0.05, -0.03, 1.02], "quat": [0.9998, 0.0, 0.02, 0.0], "lin": [0.1, 0.0, -0.05],
         "ang": [0.0, 0.1, 0.0]}
ARM_JOINTS = ["joint3", "joint1", "joint2"]  # controller order differs from the model's joint1..3
JOINT_STATE = {"name": ["gripper", "joint2", "joint1", "joint3"], "position": [0.01, 0.2, 0.1, 0.3],
               "velocity": [0.0, 0.0, 0.0, 0.0]}
QUAD_PERIOD, TIMEOUT = 0.01, 0.1


@pytest.fixture(scope="module")
def run(ros_venv, tmp_path_factory):
    d = tmp_path_factory.mktemp("ros2")
    export_hover_example(d / "good", hidden=(32, 32))
    export_arm_example(d / "arm")
    shutil.copytree(d / "good", d / "corrupt")
    (d / "corrupt" / "policy.onnx").write_bytes(b"\x08\x07garbage")
    shutil.copytree(d / "good", d / "norpm")
    doc = json.loads((d / "norpm" / "policy.json").read_text())
    del doc["action"]["rpm_max"]
    (d / "norpm" / "policy.json").write_text(json.dumps(doc))
    shutil.copytree(d / "good", d / "mismatch")
    shutil.copy(d / "arm" / "policy.onnx", d / "mismatch" / "policy.onnx")
    env, procs, logs = ros_env(), [], {}
    common = ["-p", "diagnostics_period_s:=0.1", "-p", f"input_timeout_s:={TIMEOUT}"]
    for key, args in (("quad", ["--params-file", str(ROOT / "launch/config/quadrotor.yaml"), "-r", "__ns:=/rrl_test",
                                "-p", f"model_path:={d / 'missing'}", "-p", "target:=[0.0, 0.0, 1.0]"]),
                      ("arm", ["--params-file", str(ROOT / "launch/config/arm.yaml")])):
        logs[key] = open(d / f"{key}.log", "w+")
        procs.append(subprocess.Popen([str(NODE_EXE), "--ros-args", *args, *common], stdout=logs[key],
                                      stderr=subprocess.STDOUT, env=node_env(), cwd=d))
    cfg = {"quad": {"node": QUAD_NODE, "ns": "/rrl_test", "sensor_rate_hz": 50.0, "state": STATE,
                    "models": {k: str(d / k) for k in ("good", "corrupt", "mismatch", "norpm")}},
           "arm": {"node": ARM_NODE, "model": str(d / "arm"), "joints": ARM_JOINTS,
                   "controller": "forward_position_controller", "joint_state": JOINT_STATE, "sensor_rate_hz": 100.0}}
    (d / "cfg.json").write_text(json.dumps(cfg))
    try:
        peer = subprocess.run([str(ros_venv), str(ROOT / "tests/ros2/peer.py"), str(d / "cfg.json"),
                               str(d / "out.json")], capture_output=True, text=True, env=env, timeout=150)
    finally:
        interrupt(*procs)
    text = {k: (f.seek(0), f.read())[1] for k, f in logs.items()}
    assert (d / "out.json").exists(), f"peer failed:\n{peer.stderr[-3000:]}"
    out = json.loads((d / "out.json").read_text())
    for key in ("quad", "arm"):
        assert "exception" not in out[key], f"{out[key]['exception']}\npeer:\n{peer.stderr[-2000:]}\nnode:\n{text[key]}"
    return NS(out=out, logs=text, models=d)


def expected_quad(model, n):
    """The runtime's first ``n`` commands on the constant odometry ``STATE`` (a recurrent export carries its state
    from step to step)."""
    cfg = NodeConfig(model_path=str(model), target=[0.0, 0.0, 1.0], input_timeout_s=TIMEOUT,
                     command_low=[0.0], command_high=[21702.0])
    p = make_profile(cfg)
    v3 = lambda v: NS(x=v[0], y=v[1], z=v[2])  # noqa: E731
    q = STATE["quat"]
    msg = NS(header=NS(stamp=NS(sec=1, nanosec=0), frame_id="odom"), child_frame_id="base_link",
             pose=NS(pose=NS(position=v3(STATE["pos"]), orientation=NS(w=q[0], x=q[1], y=q[2], z=q[3]))),
             twist=NS(twist=NS(linear=v3(STATE["lin"]), angular=v3(STATE["ang"]))))
    p.on_odometry(msg, 0.0)
    return np.array([p.runner.step(0.0)[0].copy() for _ in range(n)])


def is_safe_quad(cmd):
    return all(c == 0.0 for c in cmd)


def test_yaml_params_loaded(run):
    q, a = run.out["quad"]["params"], run.out["arm"]["params"]
    assert q["profile"] == "quadrotor_motors" and q["odom_topic"] == "odom" and q["twist_frame"] == "child"
    assert q["command_high"] == [21702.0] and q["max_command_delta"] == [math.inf]
    assert a["profile"] == "arm" and a["joints"] == ["joint1", "joint2", "joint3"] and a["max_command_delta"] == [0.02]


@pytest.mark.parametrize("case,match", [("missing", "no policy.json"), ("corrupt", "cannot load ONNX model"),
                                        ("mismatch", "network input has width 12"),
                                        ("norpm", "a motor_rpm action needs 'action.rpm_max'"),
                                        ("rate", "control_rate_hz 50 differs from the model's 100 Hz")])
def test_wrong_model_refused_at_configure(run, case, match):
    r = run.out["quad"][case]
    assert r["ok"] is False and r["state"] == "unconfigured"
    assert match in r["error"] and "\n" not in r["error"]
    assert "configure refused: " in run.logs["quad"] and match in run.logs["quad"]


def test_commands_at_control_rate_match_the_runtime(run):
    q = run.out["quad"]
    assert q["configure"] and q["matched"] and q["activate"]
    times = np.array([t for t, _ in q["nominal"]])
    cmds = np.array([c for _, c in q["nominal"]], dtype=np.float32)
    assert 80 <= len(cmds) <= 110, f"{len(cmds)} commands in 1 s at 100 Hz"
    assert abs(np.median(np.diff(times)) - QUAD_PERIOD) < 0.003
    np.testing.assert_array_equal(cmds, expected_quad(run.models / "good", len(cmds)))  # bit-identical float32


def test_out_of_order_stamp_is_dropped(run):
    q = run.out["quad"]
    assert q["out_of_order"] and not any(is_safe_quad(c) for _, c in q["out_of_order"])
    assert int(q["rejected"]) >= 1


def test_nan_input_gives_safe_command_then_recovers(run):
    q = run.out["quad"]
    late = [c for _, c in q["nan"][5:]]
    assert late and all(is_safe_quad(c) for c in late)
    assert "non-finite input in 'linear_velocity'" in q["nan_reason"]
    assert not is_safe_quad(q["nan_recovered"][-1][1])


def test_stale_input_gives_safe_command_within_one_period(run):
    q = run.out["quad"]
    first_safe = next(dt for dt, c in q["stale"] if is_safe_quad(c))
    assert first_safe <= TIMEOUT + 2 * QUAD_PERIOD + 0.05, f"safe after {first_safe * 1e3:.0f} ms"
    assert all(is_safe_quad(c) for dt, c in q["stale"] if dt > TIMEOUT + 0.1)
    assert not is_safe_quad(q["stale_recovered"][-1][1])


def test_emergency_stop_latches_across_activation_until_cleared(run):
    q = run.out["quad"]
    assert q["estop_call"] and q["estop_diag"] == "True"
    after = [c for dt, c in q["estop"] if dt > 0.05]
    assert len(after) > 10 and all(is_safe_quad(c) for c in after)
    assert q["reactivate"] == [True, True]
    assert q["still_latched"] and all(is_safe_quad(c) for _, c in q["still_latched"])
    assert q["clear_while_active"] is False  # clearing needs an inactive node
    assert q["inactive_estop"] == [True, True, True, True]
    assert q["inactive_latched"] and all(is_safe_quad(c) for _, c in q["inactive_latched"])
    assert q["cleared"] == [True, True, True]
    assert q["after_reactivate"] and not is_safe_quad(q["after_reactivate"][-1][1])
    assert "[ERROR]" in run.logs["quad"] and "e-stop latched (emergency stop)" in run.logs["quad"]


def test_live_target_applies_and_configure_parameters_are_refused(run):
    q = run.out["quad"]
    assert q["live_target"] is True and q["refused_param"] is False
    assert "parameter change refused: parameter max_command_delta is read at configure" in run.logs["quad"]
    assert "parameter target applied live" in run.logs["quad"]
    assert q["live_window"] and not is_safe_quad(q["live_window"][-1][1])


def test_future_stamp_does_not_block_later_odometry(run):
    q = run.out["quad"]
    assert int(q["future_stamps"]) >= 1
    late = [c for dt, c in q["after_future"]][5:]
    assert late and not any(is_safe_quad(c) for c in late)


def test_deactivate_and_shutdown_send_one_safe_command(run):
    q = run.out["quad"]
    for key in ("deactivate", "shutdown"):  # a tick in flight may land before the transition; then silence
        assert q[f"{key}_ok"] and [c for _, c in q[key] if is_safe_quad(c)] == [[0.0] * 4]
        assert q[key][-1][0] < 0.05 and is_safe_quad(q[key][-1][1])
    assert q["final_state"] == "finalized"
    assert float(q["timing"]["rate_hz"]) > 90


def test_arm_profile_end_to_end(run):
    a = run.out["arm"]
    assert a["wrong_joints"]["ok"] is False and "does not match the model's joints" in a["wrong_joints"]["error"]
    assert a["configure"] and a["matched"] and a["activate"]
    cmds = np.array([c for _, c in a["nominal"]])
    assert 40 <= len(cmds) <= 56, f"{len(cmds)} commands in 1 s at 50 Hz"
    cfg = NodeConfig(profile="arm", model_path=str(run.models / "arm"), joints=ARM_JOINTS, goal=[0.5, -0.3, 0.2],
                     command_low=[-2.8], command_high=[2.8], max_command_delta=[0.02], input_timeout_s=TIMEOUT)
    p = make_profile(cfg)
    js = JOINT_STATE
    p.on_joint_state(NS(header=NS(stamp=NS(sec=1, nanosec=0)), **js), 0.0)
    want = np.array([p.runner.step(0.0)[0].copy() for _ in range(len(cmds))])
    np.testing.assert_array_equal(cmds.astype(np.float32), want)
    measured = np.array([0.3, 0.1, 0.2])  # joint3, joint1, joint2 from JOINT_STATE
    assert np.all(np.abs(cmds[0] - measured) <= 0.02 + 1e-6)  # first command starts from the measured state
    nan = np.array([c for _, c in a["nan"]])  # safe = hold the measured position, reached within the rate limit
    assert np.all(np.abs(np.diff(nan, axis=0)) <= 0.02 + 1e-6)  # (the policy's targets are <= 0.1 rad from it)
    hold = list(nan[6:]) + [c for _, c in a["stale"][-5:]]
    assert hold and all(np.allclose(c, measured, atol=1e-6) for c in hold)
    assert a["deactivate_ok"] and a["deactivate"][-1][0] < 0.05  # nothing after the deactivation's hold command
    assert np.allclose(a["deactivate"][-1][1], measured, atol=1e-6) and len(a["deactivate"]) <= 3
    assert "safe command sent (node exit)" in run.logs["arm"]  # SIGINT on an inactive node: one more hold


def test_nodes_exit_cleanly(run):
    time.sleep(0)  # the fixture has stopped both nodes with SIGINT
    for key in ("quad", "arm"):
        assert "Traceback" not in run.logs[key], run.logs[key][-2000:]
