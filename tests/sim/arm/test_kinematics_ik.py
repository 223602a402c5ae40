"""FK against an independent DH product and MuJoCo; IK accuracy, refusal, and the torch-free import chain."""

import subprocess
import sys

import numpy as np
import pytest

from sim.arm.ik import down_rotation, solve_ik
from sim.arm.kinematics import Q_LOWER, Q_READY, Q_UPPER, forward_kinematics, tcp_pose

mujoco = pytest.importorskip("mujoco")

# Franka's table written out again here (a, d, alpha), on purpose not imported from the package.
DH = [(0, 0.333, 0), (0, 0, -np.pi / 2), (0, 0.316, np.pi / 2), (0.0825, 0, np.pi / 2),
      (-0.0825, 0.384, -np.pi / 2), (0, 0, np.pi / 2), (0.088, 0, np.pi / 2), (0, 0.107, 0)]


def _dh_reference(q):
    t = np.eye(4)
    for (a, d, alpha), qi in zip(DH, list(q) + [0.0], strict=True):
        ca, sa, cq, sq = np.cos(alpha), np.sin(alpha), np.cos(qi), np.sin(qi)
        rx = np.array([[1, 0, 0, 0], [0, ca, -sa, 0], [0, sa, ca, 0], [0, 0, 0, 1]])
        tx = np.eye(4)
        tx[0, 3] = a
        rz = np.array([[cq, -sq, 0, 0], [sq, cq, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        tz = np.eye(4)
        tz[2, 3] = d
        t = t @ rx @ tx @ rz @ tz
    return t


def _random_q(n, seed=0):
    return np.random.default_rng(seed).uniform(Q_LOWER, Q_UPPER, (n, 7))


def test_flange_at_zero_matches_franka():
    pos, _ = forward_kinematics(np.zeros((1, 7)))
    np.testing.assert_allclose(pos[0], [0.088, 0.0, 0.926], atol=1e-12)


def test_fk_matches_independent_dh_product():
    q = _random_q(20)
    pos, rot = forward_kinematics(q)
    for i in range(20):
        t = _dh_reference(q[i])
        np.testing.assert_allclose(pos[i], t[:3, 3], atol=1e-12)
        np.testing.assert_allclose(rot[i], t[:3, :3], atol=1e-12)


def test_fk_matches_mjcf_flange_and_tcp_sites():
    from sim.arm.mjcf import panda_mjcf

    m = mujoco.MjModel.from_xml_string(panda_mjcf())
    d = mujoco.MjData(m)
    q = _random_q(10, seed=1)
    pos, rot = forward_kinematics(q)
    tcp, _ = tcp_pose(q)
    for i in range(10):
        d.qpos[:7] = q[i]
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(d.site("flange").xpos, pos[i], atol=1e-10)
        np.testing.assert_allclose(d.site("flange").xmat.reshape(3, 3), rot[i], atol=1e-10)
        np.testing.assert_allclose(d.site("tcp").xpos, tcp[i], atol=1e-10)
    arm = np.arange(m.body("link1").id, m.nbody)
    assert np.all(m.body_gravcomp[arm][m.body_mass[arm] > 0] == 1)  # compiled in, on every massive arm body
    assert m.opt.timestep == 0.002


def test_ik_reaches_reachable_targets_within_1mm():
    rng = np.random.default_rng(2)
    q_true = np.clip(Q_READY + rng.uniform(-0.6, 0.6, (64, 7)), Q_LOWER, Q_UPPER)
    pos, rot = tcp_pose(q_true)
    res = solve_ik(np.tile(Q_READY, (64, 1)), pos, rot, max_iter=100)
    assert res.reached.all()
    got, got_rot = tcp_pose(res.q)
    assert np.linalg.norm(got - pos, axis=1).max() < 1e-3
    assert np.all((res.q >= Q_LOWER) & (res.q <= Q_UPPER))


def test_ik_refuses_unreachable_targets_cleanly():
    targets = np.array([[2.0, 0.0, 0.3], [0.0, 0.0, 1.4], [np.nan, 0.0, 0.2], [0.5, 0.0, 0.2]])
    res = solve_ik(np.tile(Q_READY, (4, 1)), targets, down_rotation(np.zeros(4)), max_iter=100)
    assert res.reached.tolist() == [False, False, False, True]
    assert np.isfinite(res.q).all() and np.all((res.q >= Q_LOWER) & (res.q <= Q_UPPER))
    assert res.pos_error[0] > 0.5 and np.isinf(res.pos_error[2])


def test_ik_module_is_torch_free():
    code = "import sys, sim.arm.ik, sim.arm.ee_control, sim.arm; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tcp_jacobian_matches_mujoco():
    from sim.arm.kinematics import tcp_jacobian
    from sim.arm.mjcf import panda_mjcf

    m = mujoco.MjModel.from_xml_string(panda_mjcf())
    d = mujoco.MjData(m)
    q = _random_q(5, seed=3)
    _, _, jac = tcp_jacobian(q)
    jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    for i in range(5):
        d.qpos[:7] = q[i]
        mujoco.mj_forward(m, d)
        mujoco.mj_jacSite(m, d, jp, jr, m.site("tcp").id)
        np.testing.assert_allclose(jac[i, :3], jp[:, :7], atol=1e-10)
        np.testing.assert_allclose(jac[i, 3:], jr[:, :7], atol=1e-10)


def test_controller_rows_are_independent():
    """Chunks of rows give the same targets as one call (what makes results independent of the thread count)."""
    from sim.arm.ee_control import EeDeltaController, EeDeltaLimits

    rng = np.random.default_rng(4)
    q = np.clip(Q_READY + rng.uniform(-0.3, 0.3, (6, 7)), Q_LOWER, Q_UPPER)
    delta, yaw = rng.uniform(-1, 1, (6, 3)), rng.uniform(-1, 1, 6)
    whole, parts = EeDeltaController(EeDeltaLimits(), 0.02), EeDeltaController(EeDeltaLimits(), 0.02)
    whole.reset(q)
    parts.reset(q)
    out = whole.step(q, delta, yaw)
    flags = np.zeros(6, dtype=bool), np.zeros(6, dtype=bool)
    for lo, hi in ((0, 2), (2, 3), (3, 6)):
        parts.step_rows(lo, hi, q, delta, yaw, *flags)
    np.testing.assert_array_equal(parts.q_target, out["q_target"])
    np.testing.assert_array_equal(flags[0], out["unreached"])
    tcp, _ = tcp_pose(out["q_target"])
    assert np.linalg.norm(tcp - tcp_pose(q)[0], axis=1).max() > 1e-3  # it moved
