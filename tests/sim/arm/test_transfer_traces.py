"""Traces of the same evaluation episodes in MuJoCo and PyBullet (``robot-rl eval --sim mujoco pybullet``): the
evaluation seed gives both backends the same initial states, the success protocol records the task's declared
signals from them, and the transfer plot draws one row per episode and one panel per signal."""

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from robot_rl.commands.transfer import resolve_sims, transfer_eval, transfer_plot  # noqa: E402
from robot_rl.commands.transfer_signals import initial_gap, signal_figure, signal_lines  # noqa: E402
from sim.arm.catalog import ARM_TASK_NAMES  # noqa: E402
from sim.registry import EVAL_SEED, get_task  # noqa: E402
from sim.traces import distance_name  # noqa: E402
from tests.sim.test_engine_backends import require  # noqa: E402

require("pybullet")

INITIAL_TOL = 1e-6
"""Initial frames (float32 observations of the same state) agree to this in every backend (m, rad, m/s)."""


def to_goal(obs: torch.Tensor) -> torch.Tensor:
    """panda-reach: straight to the goal (ee_position 14:17, goal_position 17:20 of the policy group)."""
    return ((obs[:, 17:20] - obs[:, 14:17]) / 0.02).clamp(-1, 1)


@pytest.mark.parametrize("task", sorted(ARM_TASK_NAMES))
def test_the_evaluation_seed_gives_every_backend_the_same_initial_states(task):
    """Every observation of the reset state agrees, noisy group included (the same draws from the same generator).
    Contact flags are compared after the first step: a cube placed exactly on the floor touches it at distance 0,
    which MuJoCo rounds either way at reset (Bullet counts it); after one physics step both report the contact."""
    spec = get_task(task)
    first, second, names = {}, {}, None
    for impl in spec.backends:
        env = spec.make_env(spec.config_cls(num_envs=3), seed=EVAL_SEED, impl=impl)
        obs = env.reset(seed=EVAL_SEED)
        first[impl] = {g: v.numpy() for g, v in obs.items()}
        second[impl] = env.step(torch.zeros(3, env.action_dim))[0]["critic"].numpy()
        names = env.observation_names()["critic"]
        env.close()
    contact = np.array(["contact" in n for n in names])
    ref = first[spec.backends[0]]
    for impl in spec.backends[1:]:
        np.testing.assert_allclose(first[impl]["policy"], ref["policy"], atol=INITIAL_TOL, rtol=0)
        np.testing.assert_allclose(first[impl]["critic"][:, ~contact], ref["critic"][:, ~contact], atol=INITIAL_TOL,
                                   rtol=0)
        np.testing.assert_array_equal(second[impl][:, contact], second[spec.backends[0]][:, contact])


@pytest.fixture(scope="module")
def reach_transfer():
    spec = get_task("panda-reach")
    ecfg = spec.evaluation.config_cls(episodes=4)
    return spec, transfer_eval(spec, to_goal, spec.config_cls(), ecfg, resolve_sims(spec, ("mujoco", "pybullet")),
                               False, 3)


def test_traces_start_from_the_same_frame_and_end_with_the_episode(reach_transfer):
    _, out = reach_transfer
    sig = {k: r["result"]["signals"] for k, r in out.items()}
    dist = distance_name("ee_position", "goal_position")
    for s, r in zip(sig.values(), out.values(), strict=True):
        assert set(s["values"]) == {"ee_position", dist}
        assert s["values"]["ee_position"].shape[:2] == s["success"].shape and s["values"][dist].shape[2] == 1
        assert s["episode_success"] == r["result"]["episode_success"][:3]
        for i, (n, step) in enumerate(zip(s["episode_length"], s["success_step"], strict=True)):
            v = s["values"]["ee_position"][i]
            assert np.isfinite(v[: n + 1]).all() and np.isnan(v[n + 1:]).all()  # frames 0..n, NaN after the end
            assert step == (n if s["episode_success"][i] else None)  # panda-reach terminates on success
            if step is not None:  # the success step's frame is the state it ended in: within the success radius
                assert s["values"][dist][i, step, 0] <= get_task("panda-reach").config_cls().success_distance
    mj, pb = sig["mujoco"], sig["pybullet"]
    for name in mj["values"]:
        np.testing.assert_allclose(pb["values"][name][:, 0], mj["values"][name][:, 0], atol=INITIAL_TOL, rtol=0)
    assert initial_gap(out) <= INITIAL_TOL
    assert 0.05 < mj["values"][dist][0, 0, 0] < 0.6  # a real distance to a goal, not zeros


def test_the_transfer_plot_has_a_row_per_episode_and_a_panel_per_signal(reach_transfer, tmp_path):
    _, out = reach_transfer
    fig = signal_figure(out, episodes=2)
    assert len(fig.axes) == 2 * 2  # 2 episodes x (ee_position, |ee_position - goal_position|)
    assert [len(ax.lines) for ax in fig.axes[:2]] == [2 * 3 + 2 * 1, 2 * 1 + 2 * 1]  # x y z / distance per
    # backend, plus a success line per backend that succeeded (the straight-to-goal policy always does here)
    path = transfer_plot(out, tmp_path / "transfer_trajectories.png", episodes=3)
    assert path.read_bytes()[:4] == b"\x89PNG"
    npz = np.load(tmp_path / "transfer_trajectories.npz")
    assert npz["mujoco/ee_position"].shape[0] == 3 and set(npz["pybullet/episode_length"]) <= set(range(1, 200))
    text = "\n".join(signal_lines(out, path))
    assert "first 3 held-out episodes" in text and "transfer_trajectories.png" in text
    assert "| 2 | success at" in text and text.count("\n| ") == 4  # header + one row per episode


def test_bad_simulator_and_untraced_task_get_one_line_errors():
    spec = get_task("panda-pick-cube")
    with pytest.raises(ValueError, match=r"^task 'panda-pick-cube' has no simulator backend 'bullet'; choose from "
                                         r"ours, mujoco, pybullet \(ours = mujoco\)$"):
        resolve_sims(spec, ("mujoco", "bullet"))
    with pytest.raises(ValueError, match="has no env implementation 'bullet'"):
        spec.evaluate(to_goal, spec.config_cls(), spec.evaluation.config_cls(episodes=1), impl="bullet")
    untraced = type("Untraced", (spec.make_env(spec.config_cls(num_envs=1)).__class__,),
                    {"trace_components": (), "trace_distances": ()})
    from sim.traces import TraceRecorder

    with pytest.raises(ValueError, match="declares no trace components"):
        TraceRecorder(untraced(spec.config_cls(num_envs=1)), 1, 10)
