"""PolicyRunner: torch-free import, loading checks, observation assembly, safety behaviour (no ROS needed)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.export.examples import ARM_JOINTS, arm_spec, export_arm_example, export_hover_example
from deploy.export.policy import export_policy
from deploy.onnx_io import onnx_session
from deploy.runtime import ModelError, PolicyRunner
from robot_rl.models import MLP
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig

ROOT = Path(__file__).resolve().parents[2]
STATE = {"position": [0.05, -0.02, 0.01], "rotation_matrix": np.eye(3).ravel(), "linear_velocity": [0.1, 0, 0],
         "angular_velocity": [0, 0, 0.2]}


@pytest.fixture(scope="module")
def hover_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hover")
    export_hover_example(d, hidden=(32, 32))
    return d


@pytest.fixture(scope="module")
def arm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("arm")
    export_arm_example(d)
    return d


def sim_state(o):
    """The measured components of a simulator actor observation (its first 18 entries), for :func:`fill`."""
    return {"position": o[0:3], "rotation_matrix": o[3:12], "linear_velocity": o[12:15], "angular_velocity": o[15:18]}


def fill(runner, state=STATE, stamp=1, now=0.0, source="odom"):
    for k, v in state.items():
        runner.view(k)[:] = v
    assert runner.accept(source, stamp, now)


def test_runtime_imports_and_runs_without_torch(hover_dir):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from deploy.runtime import PolicyRunner\nfrom deploy.ros2 import profiles\n"
            f"r = PolicyRunner({str(hover_dir)!r}, sources={{'odom': 0.1}})\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_runner_reproduces_the_simulator_observation_and_policy(tmp_path):
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=1, noise=False), seed=3)  # noise can leave [-1, 1]
    spec = env.export_spec()
    torch.manual_seed(0)
    net = MLP(146, [32, 32], 4, "fast_tanh", "tanh")
    obs = env.reset(seed=3)["policy"]
    export_policy(tmp_path, net.graph(), net, spec, obs.numpy(), {})
    runner = PolicyRunner(tmp_path, sources={"odom": None}, command_unit="normalized")
    for t in range(40):
        o = obs[0].numpy()
        fill(runner, sim_state(o), stamp=t + 1)
        np.testing.assert_array_equal(runner.obs[0], o)  # same history bookkeeping as the simulator
        cmd, reason = runner.step(0.0)
        assert reason is None
        if runner.clamped_steps:  # left the training box (the sim terminates there): the runtime clamps instead
            assert runner.last_clamped == "position" and np.abs(runner.view("position")).max() <= 0.6 + 1e-6
            break
        with torch.no_grad():
            np.testing.assert_allclose(cmd, net(obs).numpy()[0], atol=1e-5)
        obs = env.step(torch.as_tensor(cmd.copy())[None])[0]["policy"]
    assert t > 5


def test_runner_and_onnx_agree_step_by_step_over_100_steps_with_the_robust_history(tmp_path):
    """The robust preset's layout (48-step action history: the state the policy carries between calls) flown 100
    steps: the runtime's observation equals the simulator's and its command equals onnxruntime's to 1e-5."""
    cfg = QuadrotorTaskConfig(num_envs=1, noise=False, action_history=48, init_max_angle_deg=0.0,
                              init_max_linear_velocity=0.0, init_max_angular_velocity=0.0, position_limit=5.0)
    env = QuadrotorHoverEnv(cfg, seed=5)
    torch.manual_seed(1)
    net = MLP(210, [64, 64], 4, "fast_tanh", "tanh")
    with torch.no_grad():  # near hover, reading every input; it drifts, so the box is 5 m: no episode end in 100 steps
        net.linears[-1].weight.mul_(0.05)
        net.linears[-1].bias.fill_(float(np.arctanh(env.hover_action)))
    obs = env.reset(seed=5)["policy"]
    export_policy(tmp_path, net.graph(), net, env.export_spec(), obs.numpy(), {})
    session = onnx_session(tmp_path / "policy.onnx")
    runner = PolicyRunner(tmp_path, sources={"odom": None}, command_unit="normalized")
    commands = []
    for t in range(100):
        o = obs[0].numpy()
        fill(runner, sim_state(o), stamp=t + 1)
        np.testing.assert_array_equal(runner.obs[0], o)  # the history the runtime keeps = the simulator's
        cmd, reason = runner.step(0.0)
        assert reason is None and not runner.clamped_steps
        np.testing.assert_allclose(cmd, session.run(["action"], {"obs": o[None]})[0][0], atol=1e-5)
        commands.append(cmd.copy())
        obs, _, terminated, truncated, _ = env.step(torch.as_tensor(cmd.copy())[None])
        obs = obs["policy"]
        assert not (terminated | truncated).any()
    assert np.ptp(np.array(commands), axis=0).max() > 1e-3  # the commands respond to the state, not a constant


def test_rpm_mapping_safe_command_and_reasons(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    cmd, reason = r.step(0.0)
    assert reason == "no odom input received yet" and np.all(cmd == 0.0)
    fill(r)
    cmd, reason = r.step(0.05)
    a = r.forward_batch(r.obs)  # history holds this step's action now; recompute from the raw action instead
    assert reason is None and np.all((cmd >= 0) & (cmd <= 21702.0))
    np.testing.assert_allclose((cmd / 21702.0) * 2 - 1, r.obs[0, -4:], atol=1e-6)
    assert a.shape == (1, 4)
    cmd, reason = r.step(0.2)
    assert reason.startswith("stale odom input") and np.all(cmd == 0.0)


@pytest.mark.parametrize("component,value,match", [
    ("linear_velocity", [np.nan, 0, 0], "non-finite input in 'linear_velocity'"),
    ("angular_velocity", [np.inf, 0, 0], "non-finite input in 'angular_velocity'"),
    ("position", [1e3, 0, 0], "input 'position'[0] = 1000 outside its plausible range [-100, 100]"),
    ("linear_velocity", [1e6, 0, 0], "input 'linear_velocity'[0] = 1e+06 outside its plausible range [-20, 20]"),
    ("angular_velocity", [0, 0, -1e6], "input 'angular_velocity'[2] = -1e+06 outside its plausible range [-40, 40]"),
])
def test_invalid_input_gives_safe_command(hover_dir, component, value, match):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    fill(r)
    assert r.step(0.0)[1] is None
    r.view(component)[:] = value
    cmd, reason = r.step(0.0)
    assert match in reason and np.all(cmd == 0.0)
    r.view(component)[:] = STATE[component]
    assert r.step(0.0)[1] is None  # faults other than the e-stop clear when the input is good again


def test_out_of_order_stamps_and_estop(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    fill(r, stamp=10)
    assert not r.accept("odom", 10, 0.0) and not r.accept("odom", 9, 0.0)
    assert r.sources["odom"].rejected == 2 and r.accept("odom", 11, 0.0)
    r.estop()
    for _ in range(3):
        cmd, reason = r.step(0.0)
        assert reason == "emergency stop" and np.all(cmd == 0.0)
    r.activate()  # activation does not clear the latch (an e-stop pressed while inactive must hold)
    assert r.step(0.0)[1] == "emergency stop" and r.stats()["estopped"]
    assert r.clear_estop() == "emergency stop"
    assert r.step(0.0)[1] is None and not r.stats()["estopped"]


def test_activation_resets_history_and_rate_limit_starts_from_safe(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1}, max_command_delta=500.0, command_high=15000.0)
    fill(r)
    first, _ = r.step(0.0)
    assert np.all(first <= 500.0 + 1e-3)  # ramps from motors off
    for _ in range(60):
        cmd, _ = r.step(0.0)
    assert np.all(cmd <= 15000.0) and np.any(r.obs[0, -128:] != 0)
    r.activate()
    assert np.all(r.obs[0, -128:] == 0)
    assert np.all(r.step(0.0)[0] <= 500.0 + 1e-3)


def test_model_errors(tmp_path, hover_dir):
    with pytest.raises(ModelError, match="no policy.json"):
        PolicyRunner(tmp_path / "missing")
    bad = tmp_path / "corrupt"
    shutil.copytree(hover_dir, bad)
    (bad / "policy.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        PolicyRunner(bad)
    mism = tmp_path / "mismatch"
    export_arm_example(mism)  # take its ONNX (12 inputs) with the hover policy.json (146)
    shutil.copy(hover_dir / "policy.json", mism / "policy.json")
    with pytest.raises(ModelError, match="network input has width 12"):
        PolicyRunner(mism)
    tv = tmp_path / "tv"
    shutil.copytree(hover_dir, tv)
    doc = json.loads((tv / "policy.json").read_text())
    doc["test_vector"]["example_output"][0][0] += 0.01
    (tv / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="test vector mismatch"):
        PolicyRunner(tv)


def test_arm_delta_hold_limits_rate_and_order(arm_dir):
    order = [2, 0, 1]  # controller joints: joint3, joint1, joint2
    r = PolicyRunner(arm_dir, sources={"js": 0.1}, max_command_delta=0.01, command_low=-0.25, command_high=0.35,
                     output_order=order)
    cmd, reason = r.step(0.0)
    assert cmd is None and reason == "no js input received yet"  # an arm has no safe command before a measurement
    q = np.array([0.1, 0.2, 0.3], np.float32)
    fill(r, {"joint_position": q, "joint_velocity": [0, 0, 0], "goal": [0.5, -0.5, 0.5]}, source="js")
    prev = q.copy()
    for _ in range(30):
        cmd, reason = r.step(0.0)
        assert reason is None
        policy_order = np.empty(3, np.float32)
        policy_order[order] = cmd
        assert np.all(np.abs(policy_order - prev) <= 0.01 + 1e-6)  # first step starts from the measurement
        assert np.all(policy_order >= -0.25 - 1e-6) and np.all(policy_order <= 0.35 + 1e-6)
        # previous_action is the executed command in action units (delta / scale)
        np.testing.assert_allclose(r.obs[0, 9:12], (policy_order - q) / 0.1, atol=1e-5)
        prev = policy_order
    r.view("joint_velocity")[:] = [np.nan, 0, 0]
    last = prev
    for _ in range(40):  # hold the measured position, in controller order, reached within the rate limit
        cmd, reason = r.step(0.0)
        assert "joint_velocity" in reason
        policy_order = np.empty(3, np.float32)
        policy_order[order] = cmd
        assert np.all(np.abs(policy_order - last) <= 0.01 + 1e-6)
        last = policy_order
    np.testing.assert_array_equal(cmd, q[order])
    r.estop()
    np.testing.assert_array_equal(r.step(0.0)[0], q[order])


def test_action_chunk_queue(tmp_path):
    spec = arm_spec(ARM_JOINTS)
    spec["action"]["chunk"] = {"horizon": 3, "execute": 2}
    torch.manual_seed(0)
    net = MLP(12, [16], 9, "tanh", "tanh")
    export_policy(tmp_path, net.graph(), net, spec, np.zeros((4, 12), np.float32), {})
    r = PolicyRunner(tmp_path, sources={"js": None})
    calls = []
    infer = r._infer
    r._infer = lambda feed: calls.append(1) or infer(feed)
    fill(r, {"joint_position": [0.0, 0.0, 0.0], "joint_velocity": [0, 0, 0], "goal": [0.1, 0.1, 0.1]}, source="js")
    chunk = r.forward_batch(r.obs).reshape(3, 3)
    calls.clear()
    first, _ = r.step(0.0)
    np.testing.assert_allclose(first, 0.1 * chunk[0], atol=1e-6)
    second, _ = r.step(0.0)
    np.testing.assert_allclose(second, 0.1 * chunk[1], atol=1e-6)
    r.step(0.0)
    assert len(calls) == 2  # executes 2 of each 3-step chunk, then queries again
