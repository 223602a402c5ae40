"""The Panda tasks: contract, observation groups, determinism, bad actions, experts."""

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from sim.arm import ARM_TASKS  # noqa: E402
from sim.arm.config import ArmObsNoise  # noqa: E402
from sim.arm.experts import evaluate_expert, make_expert  # noqa: E402

VOCAB = {"joint_position", "joint_velocity", "ee_position", "ee_rotation_matrix", "gripper_width",
         "object_position", "object_quaternion", "goal_position"}


def _make(name, n=2, **kw):
    cfg_cls, env_cls = ARM_TASKS[name]
    return env_cls(cfg_cls(num_envs=n, **kw))


@pytest.mark.parametrize("name", sorted(ARM_TASKS))
def test_contract_and_spec(name):
    env = _make(name)
    obs = env.reset(0)
    spec = env.export_spec()
    assert {c["name"] for c in spec["observation"]} <= VOCAB
    assert sum(c["size"] for c in spec["observation"]) == obs["policy"].shape[1] == env.obs_dims["policy"]
    assert obs["critic"].shape[1] > obs["policy"].shape[1]
    obs, rew, term, trunc, info = env.step(torch.zeros(2, env.action_dim))
    assert rew.shape == (2,) and term.dtype == torch.bool and info["success"].dtype == torch.bool
    assert set(info) >= {"final_obs", "done_mask", "success"}


@pytest.mark.parametrize("name", sorted(ARM_TASKS))
def test_noise_only_in_policy_group(name):
    """The policy group is noisy and the critic exact: without noise the policy prefix equals the critic's."""
    env = _make(name)
    clean = _make(name, noise=ArmObsNoise(0.0, 0.0, 0.0, 0.0, 0.0))
    if name == "panda-peg-insert":
        clean.cfg.hole_noise = clean.cfg.hole_jitter = 0.0
    for e in (env, clean):
        e.reset(3)
    o1, o2 = env._observe(), clean._observe()
    np.testing.assert_array_equal(o1["critic"], o2["critic"])  # noise never reaches the critic
    assert not np.allclose(o1["policy"], o2["policy"])
    k = o2["policy"].shape[1] if name != "panda-peg-insert" else o2["policy"].shape[1] - 3
    np.testing.assert_allclose(o2["policy"][:, :k], o2["critic"][:, :k], atol=1e-12)
    if name == "panda-peg-insert":  # the critic holds the true hole, the policy only its noisy estimate
        assert np.abs(o1["policy"][:, -3:] - env.hole).max() > 1e-4
        np.testing.assert_allclose(o1["critic"][:, 14 + 3:14 + 6], env.hole)


def test_determinism_per_seed_and_threads():
    runs = []
    for threads in (1, 2, 1):
        cfg_cls, env_cls = ARM_TASKS["panda-pick-cube"]
        cfg = cfg_cls(num_envs=4)
        cfg.sim.num_threads = threads
        env = env_cls(cfg)
        env.reset(7)
        gen = torch.Generator().manual_seed(0)
        for _ in range(15):
            obs, *_ = env.step(torch.rand(4, env.action_dim, generator=gen) * 2 - 1)
        runs.append(obs["critic"].numpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    env.reset(8)
    assert not np.array_equal(env._observe()["critic"], _make("panda-pick-cube", 4)._observe()["critic"])


def _pick_rollout(threads: int, fused: bool, steps: int = 100) -> tuple[list[np.ndarray], int]:
    """Everything ``step`` returns over an expert rollout (grasps, lifts, successes, time-outs, auto-resets)."""
    cfg_cls, env_cls = ARM_TASKS["panda-pick-cube"]
    cfg = cfg_cls(num_envs=5, episode_seconds=1.6)
    cfg.sim.num_threads = threads
    env = env_cls(cfg)
    env.fused_step = fused
    env.reset(11)
    expert = make_expert(env, seed=3, action_noise=0.3)
    out, successes = [], 0
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(torch.from_numpy(expert.act()[1]))
        expert.reset(info["done_mask"].numpy())
        successes += int(info["success"].sum())
        out += [obs["policy"].numpy(), obs["critic"].numpy(), rew.numpy(), term.numpy(), trunc.numpy(),
                info["final_obs"]["policy"].numpy(), info["final_obs"]["critic"].numpy(), info["success"].numpy(),
                info["done_mask"].numpy(), np.array(list(info["stats"].values()))]
    env.close()
    return out, successes


def test_pick_fused_kernel_equals_numpy_path_on_any_thread_count():
    """The worker threads' observation/reward kernel gives exactly the numbers of the numpy reference path, on 1,
    2 and 3 threads, through grasps, successes and auto-resets."""
    ref, successes = _pick_rollout(1, fused=False)
    assert successes > 0
    for threads in (1, 2, 3):
        got, _ = _pick_rollout(threads, fused=True)
        for a, b in zip(got, ref, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_contact_sensors_reach_the_critic():
    env = _make("panda-pick-cube", 2)
    env.reset(0)
    env.step(torch.zeros(2, env.action_dim))
    crit = env._observe()["critic"]
    # The cube rests on the floor, away from the open fingers: (left pad, right pad, floor) = (0, 0, 1).
    np.testing.assert_array_equal(crit[:, -7:-4], [[0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(env.in_contact("cube", "floor"), [True, True])


def test_state_dict_round_trip():
    env = _make("panda-pick-cube", 3)
    env.reset(1)
    for _ in range(5):
        env.step(torch.rand(3, env.action_dim) * 2 - 1)
    state = env.state_dict()
    a = torch.rand(3, env.action_dim) * 2 - 1
    ref = env.step(a)[0]["critic"]
    env.step(a)
    env.load_state_dict(state)
    np.testing.assert_allclose(env.step(a)[0]["critic"].numpy(), ref.numpy(), atol=1e-6)


def test_bad_actions_are_refused_or_counted():
    env = _make("panda-pick-cube")
    env.reset(0)
    before = env.worlds.get_state()
    bad = torch.zeros(2, env.action_dim)
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite action in envs \\[1\\]"):
        env.step(bad)
    np.testing.assert_array_equal(env.worlds.get_state(), before)  # nothing reached MuJoCo
    with pytest.raises(ValueError, match="action must be"):
        env.step(torch.zeros(2, env.action_dim + 1))
    obs, *_ , info = env.step(torch.full((2, env.action_dim), 50.0))
    assert info["stats"]["action_clipped"] == 2 and torch.isfinite(obs["critic"]).all()


def test_joint_position_action_type():
    env = _make("panda-reach-bimodal", action=ARM_TASKS["panda-reach-bimodal"][0]().action.__class__(
        type="joint_position"))
    assert env.action_dim == 7 and env.export_spec()["action"]["type"] == "joint_position"
    env.reset(0)
    hold = torch.as_tensor(env._hold_action(np.arange(2)), dtype=torch.float32)
    q0 = env.q.copy()
    for _ in range(10):
        env.step(hold)
    assert np.abs(env.q - q0).max() < 2e-3


@pytest.mark.parametrize("name", ["panda-reach-bimodal", "panda-pick-cube", "panda-peg-insert"])
def test_expert_succeeds(name):
    env = _make(name, 8)
    out = evaluate_expert(env, 8, seed=0, action_noise=0.1)
    assert out["success_rate"] >= 7 / 8


def test_peg_expert_finds_the_hole_by_touch():
    """Starting from the noisy hole the policy sees (3 mm per axis), the probes locate the true hole."""
    env = _make("panda-peg-insert", 8)
    out = evaluate_expert(env, 8, seed=1, privileged_hole=False)
    assert out["success_rate"] >= 6 / 8
