"""The export contract's arm vocabulary: observation components and the ee_delta action type."""

import copy

import pytest

from deploy import contract


def arm_doc(channels=("x", "y", "z", "gripper"), joints=("j1", "j2")) -> dict:
    obs = [{"name": "joint_position", "size": len(joints)}, {"name": "joint_velocity", "size": len(joints)},
           {"name": "ee_position", "size": 3}, {"name": "ee_rotation_matrix", "size": 9},
           {"name": "gripper_width", "size": 1}, {"name": "object_position", "size": 3},
           {"name": "object_quaternion", "size": 4}, {"name": "goal_position", "size": 3}]
    width = sum(c["size"] for c in obs)
    act = {"type": "ee_delta", "size": len(channels), "low": -1.0, "high": 1.0, "channels": list(channels),
           "position_scale": 0.02, "frame": "base", "joints": list(joints),
           "gripper": {"closed_width": 0.0, "open_width": 0.08}}
    return {"format": contract.FORMAT, "format_version": contract.FORMAT_VERSION, "observation": obs,
            "action": act, "control_rate_hz": 50.0,
            "test_vector": {"example_input": [[0.0] * width], "example_output": [[0.0] * len(channels)]}}


def test_arm_vocabulary_validates():
    doc = contract.validate(arm_doc())
    assert contract.obs_dim(doc) == 2 + 2 + 3 + 9 + 1 + 3 + 4 + 3
    contract.validate(arm_doc(channels=("x", "y", "z")))  # no gripper, no yaw
    yaw = arm_doc(channels=("x", "y", "z", "yaw", "gripper"))
    yaw["action"]["yaw_scale"] = 0.1
    contract.validate(yaw)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["observation"][3].update(size=4), "'ee_rotation_matrix' must have size 9"),
    (lambda d: d["observation"][6].update(size=3), "'object_quaternion' must have size 4"),
    (lambda d: d["observation"][4].update(size=2), "'gripper_width' must have size 1"),
    (lambda d: d["observation"][0].update(size=3), "'joint_position' must have one entry per joint"),
    (lambda d: d["action"].update(channels=["x", "y", "gripper", "z"]), "needs 'channels'"),
    (lambda d: d["action"].update(channels=["x", "y", "z", "gripper", "yaw"]), "needs 'channels'"),
    (lambda d: d["action"].update(position_scale=0.0), "positive 'position_scale'"),
    (lambda d: d["action"].update(gripper={"closed_width": 0.08, "open_width": 0.0}), "closed_width < open_width"),
    (lambda d: d["action"].pop("joints"), "needs the ee_delta action's 'joints'"),
    (lambda d: d["action"].update(frame="tool"), "'frame' must be 'base'"),
])
def test_arm_vocabulary_rejects_bad_specs(edit, message):
    doc = copy.deepcopy(arm_doc())
    edit(doc)
    with pytest.raises(contract.ContractError, match=message):
        contract.validate(doc)


def test_yaw_channel_needs_a_scale():
    with pytest.raises(contract.ContractError, match="yaw_scale"):
        contract.validate(arm_doc(channels=("x", "y", "z", "yaw")))
