"""The wrist force/torque sensor and its ``wrench`` observation group (``ArmTaskBase.ft_sensor``)."""

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from sim.arm.config import ArmWristFT, with_wrist_ft  # noqa: E402
from sim.arm.mjcf import FINGER_MASS, HAND_MASS  # noqa: E402
from sim.arm.peg import PegInsertConfig, PegInsertEnv  # noqa: E402

PEG_MASS = 0.05  # the peg geom's mass in sim.arm.peg
G = 9.81


def _env(n=2, **ft):
    return PegInsertEnv(PegInsertConfig(num_envs=n, ft_sensor=ArmWristFT(enabled=True, **ft)))


def test_resting_hand_reads_its_weight_along_the_sensor_axis():
    env = _env(3, force_noise=0.0, torque_noise=0.0, force_offset=0.0, torque_offset=0.0)
    env.reset(seed=4)
    for _ in range(5):  # the arm holds still with zero actions: only the weight of hand + fingers + peg
        obs, *_ = env.step(torch.zeros(3, env.action_dim))
    w = obs["wrench"].double().numpy()
    weight = (HAND_MASS + 2 * FINGER_MASS + PEG_MASS) * G
    # the hand points down: the sensor's z axis (the flange's) points at the floor; the arm holds the hand up
    np.testing.assert_allclose(w[:, 2], -weight, rtol=2e-3)
    assert np.abs(w[:, :2]).max() < 0.05 and np.abs(w[:, 3:]).max() < 2e-3  # centred load: no torque
    for i in range(3):  # in the world frame: +m g up, whatever the start pose
        rot = env.worlds.datas[i].site("ft_sensor").xmat.reshape(3, 3)
        np.testing.assert_allclose(rot @ w[i, :3], [0, 0, weight], atol=0.05)
    # the sensor frame has the flange's axes (not the 45-degree yawed hand's)
    d = env.worlds.datas[0]
    np.testing.assert_allclose(d.site("ft_sensor").xmat, d.site("flange").xmat, atol=1e-9)


def test_pressing_on_the_rim_pushes_back_along_the_sensor_z():
    env = _env(2, force_noise=0.0, torque_noise=0.0, force_offset=0.0, torque_offset=0.0)
    env.reset(seed=0)
    rest = env.step(torch.zeros(2, 3))[0]["wrench"][:, 2]
    for _ in range(60):  # straight down from a start offset beside the hole's centre: the peg lands on the ring
        obs, *_ = env.step(torch.tensor([[0.0, 0.0, -0.5]] * 2))
    assert env.in_contact("peg").all()
    assert (obs["wrench"][:, 2] > rest + 20).all()  # the contact pushes the hand up, against the sensor's z


def test_sensor_leaves_every_other_observation_unchanged():
    on, off = _env(3), PegInsertEnv(PegInsertConfig(num_envs=3))
    a, b = on.reset(seed=7), off.reset(seed=7)
    assert set(a) == {"policy", "critic", "wrench"} and set(b) == {"policy", "critic"}
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        for k in b:
            assert torch.equal(a[k], b[k])
        act = torch.rand(3, 3, generator=gen) * 2 - 1
        a, *_, ia = on.step(act)
        b, *_, ib = off.step(act)
    assert on.obs_dims["wrench"] == 6 and "wrench" not in off.obs_dims


def test_noise_offset_and_low_pass():
    env = _env(128, force_noise=0.1, torque_noise=0.005, force_offset=0.2, torque_offset=0.01, cutoff_hz=10.0)
    env.reset(seed=1)
    exact = env.physics.wrench().copy()
    reads = []
    for _ in range(30):
        reads.append(env.step(torch.zeros(128, 3))[0]["wrench"].double().numpy())
    reads = np.stack(reads[10:])
    # per-episode offsets: std 0.2 N / 0.01 N m across envs
    offset = reads.mean(0) - exact
    assert 0.16 < offset[:, :3].std() < 0.24 and 0.008 < offset[:, 3:].std() < 0.012
    # white noise through y += alpha (x - y): stationary std = noise sqrt(alpha / (2 - alpha))
    alpha = 1 - np.exp(-2 * np.pi * 10.0 * env.dt)
    expect = 0.1 * np.sqrt(alpha / (2 - alpha))
    assert abs(reads[:, :, :3].std(0).mean() / expect - 1) < 0.1
    twin = _env(2, cutoff_hz=0.0)
    assert twin.ft.alpha == 1.0


def test_checkpoint_continues_bit_identically():
    env = _env(2)
    env.reset(seed=3)
    for _ in range(5):
        env.step(torch.zeros(2, 3))
    state = env.state_dict()
    ref = [env.step(torch.full((2, 3), 0.1))[0]["wrench"] for _ in range(3)]
    env2 = _env(2)
    env2.load_state_dict(state)
    for r in ref:
        assert torch.equal(env2.step(torch.full((2, 3), 0.1))[0]["wrench"], r)


def test_clear_errors():
    with pytest.raises(ValueError, match="MuJoCo only"):
        PegInsertEnv(PegInsertConfig(num_envs=1, ft_sensor=ArmWristFT(enabled=True)), backend="pybullet")
    with pytest.raises(ValueError, match="no wrist force/torque sensor"):
        with_wrist_ft(object())
    assert with_wrist_ft(PegInsertConfig()).ft_sensor.enabled


def test_simulated_panda_publishes_the_same_sensor():
    from sim.arm.ros2_control import SimulatedPanda

    arm = SimulatedPanda("panda-peg-insert", seed=2, wrench_period=0.01)
    for _ in range(20):
        arm.step(0.01)
    w = np.asarray(arm.wrench())
    assert abs(w[2] + (HAND_MASS + 2 * FINGER_MASS + PEG_MASS) * G) < 1.0 and np.abs(w[:2]).max() < 1.0
    arm.close()
    plain = SimulatedPanda("panda-peg-insert", seed=2)
    with pytest.raises(RuntimeError, match="no wrist force/torque sensor"):
        plain.wrench()
    plain.close()
