"""A residual that reads a wrist force/torque sensor: export (``wrench`` input), torch-free runtime, input checks."""

import json

import numpy as np
import pytest
import torch

from deploy.chunked_runtime import load_runner
from deploy.export.policy import ExportError
from deploy.export.residual import export_residual_policy
from deploy.runtime import ModelError
from robot_rl.residual.resip import WRENCH_DIM, ResidualActor
from sim.arm.config import ArmWristFT
from sim.arm.wrench import wrench_contract
from tests.deploy.edited_export import edited_export
from tests.deploy.test_chunked import SPEC, _base_steps, _feed, _policy

SOURCES = {"js": None, "wrench": None}


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    d = tmp_path_factory.mktemp("resip_wrench_export")
    policy = _policy("mlp").eval()
    torch.manual_seed(1)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (16, 16), 0.3, -1.0, False, wrench_dim=WRENCH_DIM)
    actor.wrench_norm.update(torch.randn(256, WRENCH_DIM) * torch.tensor([5, 5, 20, 0.3, 0.3, 0.05]) - 8)
    with torch.no_grad():  # a trained-looking residual: non-zero last layer and wrench weights
        actor.net[-1].weight.normal_(0.0, 0.5)
        actor.net[0].weight[:, -WRENCH_DIM:].normal_(0.0, 0.5)
    doc = export_residual_policy(d, policy, actor, SPEC, np.random.default_rng(0).uniform(-1, 2, (32, 4)),
                                 {"robot": "t"}, samples=16, wrench=wrench_contract(ArmWristFT(), 50.0))
    return d, policy, actor, doc


def test_export_declares_the_wrench_input(composed):
    d, _, actor, doc = composed
    comp = json.loads((d / "policy.json").read_text())["composition"]
    assert comp["inputs"] == ["obs", "base_action", "wrench"] and comp["wrench"]["size"] == 6
    assert comp["wrench"]["names"][2] == "force.z" and comp["wrench"]["filter"]["cutoff_hz"] == 10.0
    assert len(comp["test_vector"]["example_wrench"][0]) == 6
    assert doc["composition"]["verification"]["max_abs_error"] <= 1e-5
    with pytest.raises(ExportError, match="wrench"):
        export_residual_policy(d / "x", composed[1], actor, SPEC, np.zeros((8, 4)), {"robot": "t"}, samples=4)


def test_runtime_matches_torch_with_the_wrench(composed):
    d, policy, actor, _ = composed
    r = load_runner(d, sources=SOURCES, deadline_s=float("inf"), noise_seed=5)
    assert r.verify_test_vector() <= 1e-5
    rng = np.random.default_rng(5)  # the runtime's noise stream
    obs_seq = np.random.default_rng(1).uniform(-0.5, 1.5, (9, 2)).astype(np.float32)
    wrenches = (np.random.default_rng(2).normal(0, 1, (9, 6)) * [5, 5, 20, 0.3, 0.3, 0.05] - 8).astype(np.float32)
    moved = 0.0
    steps = zip(obs_seq, wrenches, _base_steps(policy, obs_seq, rng), strict=True)
    for t, (q, w, (o, base)) in enumerate(steps):
        _feed(r, q, t + 1)
        assert r.accept("wrench", t + 1, received=0.0)
        r.wrench[0] = w
        cmd, reason = r.step(0.0)
        assert reason is None
        with torch.no_grad():
            want = actor.deterministic(o, base, None, torch.as_tensor(w)[None])[0].numpy()
            same_without = actor.deterministic(o, base, None, torch.as_tensor(w)[None] * 0 - 8)[0].numpy()
        np.testing.assert_allclose(cmd, want, atol=1e-5, rtol=0)
        moved = max(moved, float(np.abs(want - same_without).max()))
    assert moved > 1e-3  # the wrench changed the actions


def test_runtime_refuses_missing_or_bad_wrench(composed):
    d = composed[0]
    with pytest.raises(ModelError, match="'wrench' source"):
        load_runner(d, sources={"js": None})
    r = load_runner(d, sources=SOURCES, deadline_s=float("inf"), noise_seed=5)
    _feed(r, np.zeros(2, np.float32), 1)
    cmd, reason = r.step(0.0)
    assert "no wrench input received yet" in reason
    for t, bad in enumerate((np.nan, 5000.0)):
        assert r.accept("wrench", t + 1, received=0.0)
        r.wrench[0] = [0, 0, bad, 0, 0, 0]
        _feed(r, np.zeros(2, np.float32), t + 2)
        cmd, reason = r.step(0.0)
        assert "wrench reading not finite or outside" in reason and np.isfinite(cmd).all()
    r.wrench[0] = [0, 0, -8, 0, 0, 0]
    _feed(r, np.zeros(2, np.float32), 9)
    assert r.accept("wrench", 9, received=0.0)
    assert r.step(0.0)[1] is None


def test_the_test_vector_check_needs_and_reads_the_example_wrench(composed, tmp_path):
    def drop(spec):
        del spec["composition"]["test_vector"]["example_wrench"]

    def move(spec):  # another wrench, the same expected output: the check must notice
        spec["composition"]["test_vector"]["example_wrench"][0][2] += 40.0
    with pytest.raises(ModelError, match="composition.test_vector needs .*example_wrench"):
        load_runner(edited_export(composed[0], tmp_path / "missing", drop), sources=SOURCES)
    with pytest.raises(ModelError, match="residual test vector mismatch"):
        load_runner(edited_export(composed[0], tmp_path / "moved", move), sources=SOURCES)


def test_arm_profile_subscribes_to_the_broadcasters_wrench(composed):
    from types import SimpleNamespace as NS

    from deploy.ros2.profiles import NodeConfig, make_profile

    p = make_profile(NodeConfig(profile="arm", model_path=str(composed[0]), joints=["j1", "j2"], goal=[0.5, 0.5]))
    subs = {s.topic: s.msg_type for s in p.subscriptions()}
    assert subs["/force_torque_sensor_broadcaster/wrench_filtered"] == "geometry_msgs/msg/WrenchStamped"
    assert p.runner.sources["wrench"].timeout == 0.1

    def wrench_msg(sec, frame="ft_sensor", f=(0.5, -0.25, -7.9), t=(0.01, 0.02, 0.0)):
        return NS(header=NS(stamp=NS(sec=sec, nanosec=0), frame_id=frame),
                  wrench=NS(force=NS(x=f[0], y=f[1], z=f[2]), torque=NS(x=t[0], y=t[1], z=t[2])))

    js = NS(header=NS(stamp=NS(sec=1, nanosec=0)), name=["j2", "j1"], position=[0.2, 0.1], velocity=[0.0, 0.0])
    assert p.on_joint_state(js, 0.0)
    assert p.runner.step(0.0)[1] == "no wrench input received yet"
    assert not p.on_wrench(wrench_msg(1, frame="panda_hand"), 0.0)  # another frame: refused, nothing written
    assert np.isnan(p.runner.wrench).all()
    assert p.on_wrench(wrench_msg(2), 0.0)
    np.testing.assert_allclose(p.runner.wrench[0], [0.5, -0.25, -7.9, 0.01, 0.02, 0.0], atol=1e-6)
    js.header.stamp.sec = 2
    assert p.on_joint_state(js, 0.0) and p.runner.step(0.0)[1] is None
