"""The Panda tasks on the PyBullet backend: same kinematics and task definitions as MuJoCo, the env contract,
one control step against MuJoCo, the scripted experts, bad actions, and the sim-to-sim transfer path."""

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from robot_rl.commands.transfer import resolve_sims, transfer_eval  # noqa: E402
from sim.arm.config import ArmActionConfig, ArmDomainRandomization  # noqa: E402
from sim.arm.experts import evaluate_expert  # noqa: E402
from sim.arm.kinematics import FLANGE_D, Q_LOWER, Q_UPPER, QD_LIMIT, TCP_OFFSET, tcp_pose  # noqa: E402
from sim.registry import get_task  # noqa: E402
from tests.sim.test_engine_backends import require  # noqa: E402

require("pybullet")
import pybullet as pb  # noqa: E402

NO_DR = ArmDomainRandomization((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0, 0))


def make(task: str, impl: str, n: int = 2, seed: int = 0, **kw):
    spec = get_task(task)
    return spec.make_env(spec.config_cls(num_envs=n, **kw), seed=seed, impl=impl)


def test_every_arm_task_has_both_backends():
    for name in ("panda-reach", "panda-reach-bimodal", "panda-pick-cube", "panda-peg-insert"):
        assert get_task(name).backends == ("mujoco", "pybullet")


def test_link_frames_and_tcp_are_the_dh_kinematics():
    """The Bullet robot is the MJCF's: every link frame where MuJoCo has it, the TCP where the DH FK puts it."""
    import mujoco

    env = make("panda-pick-cube", "pybullet", 1)
    ph, m = env.physics, env.model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(Q_LOWER, Q_UPPER)
        ph._set_robot(0, np.r_[q, 0.02, 0.02], np.zeros(9))
        d.qpos[:9] = np.r_[q, 0.02, 0.02]
        mujoco.mj_forward(m, d)
        frames = [pb.getLinkState(int(ph.robot[0]), k, computeForwardKinematics=1, physicsClientId=ph.clients[0])
                  for k in range(len(ph._links))]
        pos = np.array([f[4] for f in frames]) - ph.origins[0]
        np.testing.assert_allclose(pos, d.xpos[ph._links], atol=1e-6)
        link7 = frames[ph._dof_links[6]]
        rot = np.array(pb.getMatrixFromQuaternion(link7[5])).reshape(3, 3)
        tcp = pos[ph._dof_links[6]] + rot[:, 2] * (FLANGE_D + TCP_OFFSET)
        np.testing.assert_allclose(tcp, tcp_pose(q)[0][0], atol=1e-6)


@pytest.mark.parametrize("task", ["panda-reach", "panda-pick-cube"])
def test_same_task_definitions_as_mujoco(task):
    """Groups, export contract and the first observations (same seed) are MuJoCo's."""
    bullet, ref = make(task, "pybullet", 3, seed=4), make(task, "mujoco", 3, seed=4)
    assert bullet.obs_dims == ref.obs_dims and bullet.export_spec() == ref.export_spec()
    o, r = bullet.reset(seed=9), ref.reset(seed=9)
    np.testing.assert_allclose(o["policy"].numpy(), r["policy"].numpy(), atol=1e-6)
    np.testing.assert_allclose(o["critic"].numpy(), r["critic"].numpy(), atol=1e-6)


def test_step_shapes_and_auto_reset_with_final_observations():
    env = make("panda-reach", "pybullet", 3, episode_seconds=0.1)  # 5 control steps
    env.reset(1)
    for k in range(5):
        obs, rew, term, trunc, info = env.step(torch.zeros(3, env.action_dim))
        assert obs["policy"].shape == (3, env.obs_dims["policy"]) and rew.shape == (3,)
        assert term.dtype == torch.bool and info["success"].dtype == torch.bool
        if k < 4:
            assert not info["done_mask"].any()
            torch.testing.assert_close(info["final_obs"]["critic"], obs["critic"], rtol=0, atol=0)
    assert trunc.all() and info["done_mask"].all()
    final, new = info["final_obs"]["critic"], obs["critic"]
    assert (final[:, 14:17] - new[:, 14:17]).abs().max() > 1e-3  # goals were redrawn by the reset
    assert (env.episode_step == 0).all()


def test_seeding_is_deterministic():
    def run(seed):
        env = make("panda-pick-cube", "pybullet", 2, seed=seed)
        gen = torch.Generator().manual_seed(0)
        for _ in range(8):
            obs, *_ = env.step(torch.rand(2, env.action_dim, generator=gen) * 2 - 1)
        return obs["critic"].numpy()

    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_one_control_step_agrees_with_mujoco():
    """From identical joint states and the same joint targets, one 20 ms control step (10 physics steps) agrees
    with MuJoCo: joints within 1 mrad, TCP within 0.3 mm, median joint velocity within 1e-3 rad/s. Servos that hit
    their torque limit chatter between +-limit in MuJoCo's integrator (kv dt / armature = 4 once the saturated servo
    loses its implicit damping), and land on a different side of the limit in Bullet: their velocities differ by up
    to 0.2 rad/s after the step (see sim/arm/pybullet_physics.py)."""
    joint = ArmActionConfig(type="joint_position")
    envs = [make("panda-reach", impl, 32, seed=3, dr=NO_DR, action=joint) for impl in ("mujoco", "pybullet")]
    for e in envs:
        e.reset(3)
    np.testing.assert_array_equal(envs[0].q, envs[1].q)
    hold = envs[0]._hold_action(np.arange(32))
    dq = np.random.default_rng(0).uniform(-0.9, 0.9, (32, 7)) * QD_LIMIT * envs[0].dt
    action = torch.as_tensor(hold + 2 * dq / (Q_UPPER - Q_LOWER), dtype=torch.float32)
    q0 = envs[0].q.copy()
    for e in envs:
        e.step(action)
    (qm, qb), (qdm, qdb) = [e.q.copy() for e in envs], [e.qd.copy() for e in envs]
    assert np.abs(qm - q0).max() > 0.01  # the arm really moved
    assert np.abs(qm - qb).max() < 1e-3  # measured: 0.6 mrad (a wrist joint)
    assert np.abs(tcp_pose(qm)[0] - tcp_pose(qb)[0]).max() < 3e-4  # measured: 0.15 mm
    assert np.median(np.abs(qdm - qdb)) < 1e-3  # measured: 6e-5 rad/s; the chattering joints differ up to 0.2


def test_experts_succeed_on_reach_and_pick():
    env = make("panda-pick-cube", "pybullet", 8)
    assert evaluate_expert(env, 8, seed=0, action_noise=0.1)["success_rate"] >= 7 / 8
    spec = get_task("panda-reach")
    env = make("panda-reach", "pybullet", 8)
    expert, outcomes = spec.expert(env, seed=1, action_noise=0.1), []
    while len(outcomes) < 8:
        _, executed = expert.act()
        *_, info = env.step(torch.from_numpy(executed))
        done = info["done_mask"].numpy()
        outcomes += info["success"].numpy()[done].tolist()
        expert.reset(done)
    assert np.mean(outcomes) == 1.0


def test_nan_action_is_refused_and_nothing_applied():
    env = make("panda-pick-cube", "pybullet")
    env.reset(0)
    before = env.physics.get_state()
    bad = torch.zeros(2, env.action_dim)
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite action in envs \\[1\\]"):
        env.step(bad)
    np.testing.assert_array_equal(env.physics.get_state(), before)


def test_state_dict_resumes_closely():
    env = make("panda-pick-cube", "pybullet", 2, seed=1)
    for _ in range(5):
        env.step(torch.rand(2, env.action_dim) * 2 - 1)
    state = env.state_dict()
    a = torch.rand(2, env.action_dim) * 2 - 1
    ref = env.step(a)[0]["critic"]
    env.load_state_dict(state)
    np.testing.assert_allclose(env.step(a)[0]["critic"].numpy(), ref.numpy(), atol=1e-3)


def test_transfer_eval_of_an_observation_policy_in_both_backends():
    """``robot-rl eval --sim mujoco pybullet`` path: the success protocol flies the same episodes in each backend."""
    spec = get_task("panda-reach")

    def policy(obs: torch.Tensor) -> torch.Tensor:  # go to the goal: ee_position 14:17, goal_position 17:20
        return ((obs[:, 17:20] - obs[:, 14:17]) / 0.02).clamp(-1, 1)

    ecfg = spec.evaluation.config_cls(episodes=8)
    out = transfer_eval(spec, policy, spec.config_cls(), ecfg, resolve_sims(spec, ("mujoco", "pybullet")), False, 0)
    assert set(out) == {"mujoco", "pybullet"}
    for r in out.values():
        assert r["result"]["episodes"] == 8 and r["result"]["success"] >= 0.75


def test_a_world_per_env_gives_the_same_numbers_as_one_shared_world():
    spec = get_task("panda-pick-cube")
    outs = []
    for per_client in (0, 1):
        cfg = spec.config_cls(num_envs=3)
        cfg.sim.envs_per_client = per_client
        env = spec.make_env(cfg, seed=2, impl="pybullet")
        assert len(env.physics.clients) == (1 if per_client == 0 else 3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(10):
            obs, *_ = env.step(torch.rand(3, env.action_dim, generator=gen) * 2 - 1)
        outs.append(obs["critic"].numpy())
        env.close()
    np.testing.assert_array_equal(outs[0], outs[1])
