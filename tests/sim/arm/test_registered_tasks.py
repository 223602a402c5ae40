"""The Panda tasks through the task registry: lazy registration, checkpoint state, export contract, videos."""

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from deploy import contract  # noqa: E402
from sim.arm.catalog import ARM_TASK_NAMES  # noqa: E402
from sim.registry import get_task, task_names  # noqa: E402


def test_quadrotor_lookups_do_not_import_mujoco_and_arm_names_are_listed():
    code = ("import sys; from sim.registry import get_task, task_names; get_task('quadrotor-hover'); "
            "names = task_names(); import sim.arm.ik; "
            "print('mujoco' in sys.modules, 'torch' in sys.modules, sorted(n for n in names if 'panda' in n))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and out[1] == "True"
    assert {"panda-reach", "panda-reach-bimodal", "panda-pick-cube", "panda-peg-insert"} <= set(task_names())
    code = "import sys, sim.arm.ik; print('torch' in sys.modules, 'mujoco' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", ARM_TASK_NAMES)
def test_registered_task_has_the_success_protocol_and_a_contract_spec(name):
    spec = get_task(name)
    assert spec.evaluation.config_cls().episodes >= 100 and spec.evaluation.config_cls().seed == 1_000_003
    doc = spec.export_spec()
    env = spec.probe()
    assert doc["robot"] == "panda" and contract.obs_dim(doc) == env.obs_dims["policy"]
    assert doc["action"]["size"] == env.action_dim and doc["action"]["channels"][:3] == ["x", "y", "z"]
    full = {"format": contract.FORMAT, "format_version": contract.FORMAT_VERSION, **doc,
            "test_vector": {"example_input": [[0.0] * contract.obs_dim(doc)],
                            "example_output": [[0.0] * env.action_dim]}}
    contract.validate(full)
    for c in doc["observation"]:  # a plausibility range the runtime checks, and the policy obs inside it
        assert "valid_low" in c and "valid_high" in c
    obs = env.reset(seed=0)["policy"][0].numpy()
    lo = np.concatenate([np.broadcast_to(c["valid_low"], c["size"]) for c in doc["observation"]])
    hi = np.concatenate([np.broadcast_to(c["valid_high"], c["size"]) for c in doc["observation"]])
    assert np.all((lo <= obs) & (obs <= hi))
    names = env.observation_names()
    assert len(names["policy"]) == env.obs_dims["policy"] and len(names["critic"]) == env.obs_dims["critic"]
    assert names["policy"][0] == "joint_position.panda_joint1"


def test_joint_position_export_maps_the_box_to_the_joint_limits():
    spec = get_task("panda-reach")
    cfg = spec.config_cls()
    cfg.action.type = "joint_position"
    act = spec.export_spec(cfg)["action"]
    assert act["type"] == "joint_position" and act["delta"] is False and len(act["joints"]) == 7
    lower = np.array(act["offset"]) - np.array(act["scale"])
    assert lower[3] == pytest.approx(-3.0718) and (np.array(act["offset"]) + act["scale"])[3] == pytest.approx(-0.0698)


def test_checkpoint_state_is_tensors_and_resumes_bit_exactly():
    spec = get_task("panda-pick-cube")
    env = spec.make_env(spec.config_cls(num_envs=3), seed=4)
    for _ in range(5):
        env.step(torch.rand(3, env.action_dim) * 2 - 1)
    state = env.state_dict()
    assert all(isinstance(v, torch.Tensor) and k.startswith("env.") for k, v in state.items())
    actions = torch.rand(4, 3, env.action_dim) * 2 - 1
    first = [env.step(a)[0]["critic"] for a in actions]
    other = spec.make_env(spec.config_cls(num_envs=3), seed=99)
    other.load_state_dict(state | {"unrelated": torch.zeros(1)})
    again = [other.step(a)[0]["critic"] for a in actions]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_factory_seeds_the_episodes():
    spec = get_task("panda-reach")
    a, b, c = (spec.make_env(spec.config_cls(num_envs=2), seed=s).goal.copy() for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_reach_expert_reaches_random_goals():
    spec = get_task("panda-reach")
    env = spec.make_env(spec.config_cls(num_envs=16), seed=0)
    expert = spec.expert(env, seed=1, action_noise=0.1)
    done_ok = []
    for _ in range(env.max_episode_steps):
        _, executed = expert.act()
        _, _, _, _, info = env.step(torch.from_numpy(executed))
        done = info["done_mask"].numpy()
        done_ok += info["success"].numpy()[done].tolist()
        expert.reset(done)
    assert len(done_ok) >= 16 and np.mean(done_ok) == 1.0


def test_video_of_the_expert_has_frames(tmp_path):
    from sim.video import read_video

    spec = get_task("panda-reach")
    out = spec.video(spec, spec.config_cls(), 2, 0, tmp_path / "reach.mp4", max_steps=20, every=4)
    frames = read_video(out["video"])
    assert len(frames) == out["frames"] >= 2 * 4 and frames.shape[1:] == (240, 320, 3)
    assert frames.std() > 5  # an image, not a blank
