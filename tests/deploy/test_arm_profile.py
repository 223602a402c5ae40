"""The node's ``arm`` profile with a Panda ``ee_delta`` policy, ROS-free: joint states matched by name (fingers
included), FK observations, goal and object ``PoseStamped``s, the arm/gripper command split."""

import json
import shutil
from types import SimpleNamespace as NS

import numpy as np
import pytest

from deploy.export.examples import PANDA_JOINTS, export_ee_reach_example
from deploy.ros2.profiles import ConfigError, NodeConfig, make_profile
from sim.arm.kinematics import Q_READY, QD_LIMIT, tcp_pose
from sim.arm.ros2_control import JOINT_STATE_ORDER

FINGER = 0.015


@pytest.fixture(scope="module")
def reach_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("panda_reach")
    export_ee_reach_example(d, gripper=1.0)
    return d


def joint_state(stamp, q=Q_READY, finger=FINGER, order=JOINT_STATE_ORDER):
    value = {**dict(zip(PANDA_JOINTS, q, strict=True)), "panda_finger_joint1": finger, "panda_finger_joint2": finger}
    return NS(header=NS(stamp=NS(sec=stamp, nanosec=0)), name=list(order), position=[value[n] for n in order],
              velocity=[0.0] * len(order))


def pose_stamped(pos, frame="panda_link0", sec=1, quat=(1.0, 0.0, 0.0, 0.0)):
    return NS(header=NS(stamp=NS(sec=sec, nanosec=0), frame_id=frame),
              pose=NS(position=NS(x=pos[0], y=pos[1], z=pos[2]), orientation=NS(w=quat[0], x=quat[1], y=quat[2],
                                                                                    z=quat[3])))


def panda_cfg(model, **kw):
    return NodeConfig(profile="arm", model_path=str(model), joints=list(PANDA_JOINTS), goal=[0.5, 0.1, 0.3], **kw)


def test_joint_states_by_name_fk_and_the_command_split(reach_dir):
    order = list(reversed(PANDA_JOINTS))  # the controller's joints in another order than the model's
    p = make_profile(NodeConfig(profile="arm", model_path=str(reach_dir), joints=order, goal=[0.5, 0.1, 0.3]))
    assert p.command_topic == "/forward_position_controller/commands"
    assert p.aux_command_topic == "/gripper_controller/commands"
    q = Q_READY + np.linspace(-0.1, 0.1, 7)
    assert p.on_joint_state(joint_state(1, q), 0.0)
    r = p.runner
    np.testing.assert_allclose(r.measured, [*q, 2 * FINGER], atol=1e-6)
    np.testing.assert_allclose(r.view("ee_position"), tcp_pose(q[None])[0][0], atol=1e-6)
    np.testing.assert_allclose(r.view("goal_position"), [0.5, 0.1, 0.3], atol=1e-7)
    cmd, reason = r.step(0.0)
    assert reason is None
    arm, grip = p.fill(NS(), cmd).data, p.fill_aux(NS(), cmd).data
    assert len(arm) == 7 and grip == [pytest.approx(0.04)]  # a = +1: open, 0.08 m -> 0.04 m per finger
    step = np.abs(np.array(arm) - np.asarray(r.measured[:7])[::-1])  # reversed = the controller's order
    assert np.all(step <= (QD_LIMIT * 0.02)[::-1] + 1e-6) and step.max() > 0.01
    assert p.set_live("goal", [0.4, 0.0, 0.2]) is None and "has 3 values" in p.set_live("goal", [1.0])


def test_goal_and_object_pose_topics(reach_dir, tmp_path):
    p = make_profile(panda_cfg(reach_dir, goal_topic="/goal_pose"))
    assert [s.msg_type for s in p.subscriptions()] == ["sensor_msgs/msg/JointState", "geometry_msgs/msg/PoseStamped"]
    p.on_joint_state(joint_state(1), 0.0)
    assert p.runner.step(0.0)[1] == "no goal input received yet"
    assert not p.on_goal(pose_stamped([0.4, 0.0, 0.3], frame="world"), 0.0)  # not the base frame: refused
    assert p.on_goal(pose_stamped([0.4, 0.0, 0.3], frame=""), 0.0)
    assert p.runner.step(0.0)[1] is None
    np.testing.assert_allclose(p.runner.view("goal_position"), [0.4, 0.0, 0.3], atol=1e-7)
    # a model that observes the object needs the tracker topic, and a stale tracker means hold
    model = tmp_path / "obj"
    shutil.copytree(reach_dir, model)
    doc = json.loads((model / "policy.json").read_text())
    doc["observation"][0] = {"name": "object_position", "size": 3, "valid_low": -2.0, "valid_high": 2.0}
    (model / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="object_topic is empty"):
        make_profile(panda_cfg(model))
    p = make_profile(panda_cfg(model, object_topic="/object_pose", object_timeout_s=0.2))
    p.on_joint_state(joint_state(1), 0.0)
    assert p.runner.step(0.0)[1] == "no object input received yet"
    assert p.on_object(pose_stamped([0.5, 0.05, 0.02], quat=(0.9, 0.0, 0.0, 0.436)), 0.0)
    np.testing.assert_allclose(p.runner.view("object_position"), [0.5, 0.05, 0.02], atol=1e-7)
    assert p.runner.step(0.05)[1] is None
    p.on_joint_state(joint_state(2), 0.3)  # the arm is fresh, the tracker is not
    assert "stale object input" in p.runner.step(0.3)[1]


@pytest.mark.parametrize("change,match", [
    ({"joints": PANDA_JOINTS[:6]}, "does not match the model's joints"),
    ({"gripper_controller": ""}, "gripper_controller is empty"),
    ({"gripper_joints": []}, "gripper_joints is empty"),
    ({"goal": [0.1, 0.2]}, "goal_position has 3 values"),
    ({"command_low": [0.0, 0.0]}, "command_low needs 1 or 7 values"),
])
def test_panda_parameter_mismatches_are_one_line_errors(reach_dir, change, match):
    base = {"profile": "arm", "model_path": str(reach_dir), "joints": list(PANDA_JOINTS), "goal": [0.5, 0.1, 0.3]}
    with pytest.raises(ConfigError, match=match) as err:
        make_profile(NodeConfig(**{**base, **change}))
    assert "\n" not in str(err.value)


def test_missing_finger_joint_state_is_ignored(reach_dir):
    p = make_profile(panda_cfg(reach_dir))
    names = [n for n in JOINT_STATE_ORDER if n != "panda_finger_joint2"]
    assert not p.on_joint_state(joint_state(1, order=names), 0.0)  # the gripper width cannot be measured
    assert p.runner.step(0.0)[1] == "no joint_states input received yet"
