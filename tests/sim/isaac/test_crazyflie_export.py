"""A run of ``isaac:RobotRL-Crazyflie-Hover-Direct`` exports through the hover task's contract and deploys.

Real Isaac Lab, on the CPU (``make test-isaac``; skips where ``isaaclab`` is not importable). The module trains a
short PPO run with ``run_training`` (the path ``robot-rl train`` takes: train, close the env, export), then checks
that ``policy.json`` is the quadrotor hover contract and that :class:`deploy.runtime.PolicyRunner`, fed the
measured components of observations from the Isaac Lab env, assembles the same observation (action history
included) and commands the same actions as the torch actor, through resets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from .conftest import SKIP_REASON, ppo_config, task_config

pytest.importorskip("isaaclab", reason=SKIP_REASON)

from deploy.runtime import PolicyRunner  # noqa: E402
from robot_rl.commands.train import run_training  # noqa: E402
from robot_rl.runs import load_actor  # noqa: E402
from sim.quadrotor.config import QuadrotorTaskConfig  # noqa: E402
from sim.quadrotor.export_spec import hover_export_spec  # noqa: E402
from sim.quadrotor.task import resolve_frame  # noqa: E402
from sim.registry import get_task  # noqa: E402

TASK = "isaac:RobotRL-Crazyflie-Hover-Direct"
NUM_ENVS = 4
NO_NOISE = ["env.task.noise=false"]  # noisy rotation entries can leave [-1, 1], where the runtime clamps


@pytest.fixture(scope="module")
def run(tmp_path_factory, assets):
    cfg = ppo_config(TASK, assets, NUM_ENVS, "test-isaac-cf-export", seed=4, overrides=NO_NOISE)
    cfg.on_policy.total_env_steps = 2 * 16 * NUM_ENVS
    run_dir = tmp_path_factory.mktemp("run")
    out = run_training(cfg, run_dir, evaluate_after=False)
    return run_dir, out


def test_export_is_the_hover_contract(run):
    run_dir, out = run
    assert out["export"] == str(run_dir / "export") and out["export_max_abs_error"] <= 1e-5
    doc = json.loads((run_dir / "export" / "policy.json").read_text())
    spec = hover_export_spec(QuadrotorTaskConfig(noise=False), resolve_frame("crazyflie"))
    assert doc["observation"] == json.loads(json.dumps(spec["observation"]))
    assert doc["action"] == json.loads(json.dumps(spec["action"]))
    assert doc["control_rate_hz"] == pytest.approx(100.0) and doc["robot"] == spec["robot"]
    assert doc["training"]["task"] == TASK and doc["training"]["env_steps"] == 2 * 16 * NUM_ENVS
    assert (run_dir / "export" / "policy.onnx").is_file()


def test_runtime_matches_torch_actor_on_isaac_observations(run):
    """One PolicyRunner per Isaac Lab env: the measured components in, the runtime's own action history; its
    observation equals the env's policy observation and its action the torch actor's (< 1e-5), for 60 steps
    with the runtime's actions flying the Isaac Lab drones (episodes that end restart the runner's history; an
    implausible input gives the safe command, as on the vehicle)."""
    run_dir, _ = run
    cfg, actor, _ = load_actor(run_dir)
    spec = get_task(TASK)
    env = spec.make_env(task_config(TASK, cfg.task.asset_root, NUM_ENVS, NO_NOISE), seed=21)
    try:
        runners = [PolicyRunner(run_dir / "export", sources={"odom": None}, command_unit="normalized")
                   for _ in range(NUM_ENVS)]
        obs = env.reset(seed=21)["policy"]
        resets, compared = 0, 0
        faulted = np.zeros(NUM_ENVS, dtype=bool)  # the runtime refused an input this episode (safe command)
        for t in range(60):
            with torch.no_grad():
                expected = actor(obs).numpy()
            cmds = np.zeros((NUM_ENVS, 4), dtype=np.float32)
            for i, r in enumerate(runners):
                o = obs[i].numpy()
                for name, lo, hi in (("position", 0, 3), ("rotation_matrix", 3, 12), ("linear_velocity", 12, 15),
                                     ("angular_velocity", 15, 18)):
                    r.view(name)[:] = o[lo:hi]
                assert r.accept("odom", t + 1, 0.0)
                if not faulted[i]:
                    np.testing.assert_array_equal(r.obs[0], o)  # same observation, action history included
                cmd, reason = r.step(0.0)
                if reason is None and not faulted[i]:
                    np.testing.assert_allclose(cmd, expected[i], atol=1e-5, rtol=0)
                    compared += 1
                elif reason is not None:
                    # an untrained policy can spin a drone past the contract's plausible rates: the runtime then
                    # stops its motors (safe_action -1) and restarts its history, as it would on the vehicle
                    assert "outside its plausible range" in reason, reason
                    np.testing.assert_array_equal(cmd, -1.0)
                    faulted[i] = True
                cmds[i] = cmd
            obs, _, _, _, info = env.step(torch.as_tensor(cmds))
            obs = obs["policy"]
            for i in np.flatnonzero(info["done_mask"].numpy()):
                runners[i].activate()  # a new episode: the runtime's history restarts as training's does
                faulted[i] = False
                resets += 1
        assert resets > 0, "no episode ended: the reset path was not exercised"
        assert compared >= NUM_ENVS * 30, f"only {compared} runtime steps were compared with the actor"
    finally:
        env.close()
