"""The ROS 2 node runs Isaac Lab exports over real DDS as it runs any other export.

Per robot: a few PPO iterations of our Isaac Lab task (on the CPU, in the Isaac venv), ``robot-rl export`` of the
run, then three processes from .venv-ros on a private DDS domain (localhost only): our simulator counterpart
(``robot-rl quadrotor-sim``: our quadrotor model behind the ``quadrotor_motors`` topics; ``robot-rl arm-sim``: the
MuJoCo Panda behind ros2_control's), ``robot-rl-node`` with the robot's example YAML (torch blocked), and a tap
(``ros_tap.py``) that activates the node through its lifecycle services once it sees the simulator and the node,
then records the simulator's state messages and the node's commands in arrival order. Checked: commands flow at
the control rate with the right shape and inside the robot's limits, the simulator refused none, and every
command the node sent equals, bit for bit, the torch-free runtime's command (:func:`deploy.ros2.profiles
.make_profile`, the node's own conversion) replayed on the recorded states: the one the node used is among the
last few that had arrived (the node ticks on its own timer), and the runtime's history carries over.

Opt-in with the other Isaac tests (``make test-isaac``); skips without ``isaaclab`` or without .venv-ros.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import numpy as np
import pytest

from .conftest import SKIP_REASON, ppo_config

pytest.importorskip("isaaclab", reason=SKIP_REASON)

import yaml  # noqa: E402

from deploy.ros2.profiles import NodeConfig, make_profile  # noqa: E402
from robot_rl.cli import main as robot_rl_cli  # noqa: E402
from robot_rl.runs import make_runner  # noqa: E402
from tests.ros2.conftest import (  # noqa: E402
    NODE_EXE,
    ROOT,
    VENV_PYTHON,
    interrupt,
    node_env,
    ros_env,
    venv_problem,
)

TAP = Path(__file__).with_name("ros_tap.py")
NUM_ENVS = 8
SECONDS = 2.0  # of closed loop, from the node's first command that is not all zeros
AGES = (0, 1, -1, 2, -2, 3)  # the states the node may have used: 0 the newest that had reached the tap, 1 the one
# before it, -1 the next (the node may get a state before the tap does); most likely first


@pytest.fixture(scope="module")
def ros_venv() -> Path:
    reason = venv_problem()
    if reason:
        pytest.skip(reason)
    return VENV_PYTHON


def dds_env() -> dict[str, str]:
    """:func:`tests.ros2.conftest.ros_env` on a domain of its own (200-229: apart from the ROS tests' 100-199)."""
    return {**ros_env(), "ROS_DOMAIN_ID": str(200 + os.getpid() % 30)}


def train_and_export(task: str, assets: Path, run: Path, preset: str) -> dict[str, Any]:
    """Two PPO iterations of ``task`` (8 envs x 16 steps), then ``robot-rl export RUN``; returns policy.json."""
    cfg = ppo_config(task, assets, NUM_ENVS, preset, seed=0)
    cfg.on_policy.total_env_steps = 2 * 16 * NUM_ENVS
    runner = make_runner(cfg, run)
    runner.train()
    runner.env.close()  # Isaac Lab: one simulation per process; the export builds its own
    robot_rl_cli(["export", str(run)])
    return json.loads((run / "export" / "policy.json").read_text())


def ros_value(v: Any) -> str:
    """A ``-p name:=value`` value (YAML)."""
    return json.dumps(v) if isinstance(v, (list, bool)) else str(v)


def run_loop(tmp_path: Path, sim_args: list[str], yaml_file: str, params: dict[str, Any], kind: str,
             state_topic: str, command_topic: str) -> tuple[dict, dict, str]:
    """Tap, simulator and node side by side (the tap activates the node); returns (tap recording, simulator
    report, logs)."""
    env = dds_env()
    tap_out, report = tmp_path / "tap.json", tmp_path / "sim.json"
    logs = {k: open(tmp_path / f"{k}.log", "w") for k in ("tap", "sim", "node")}
    with ExitStack() as stack:
        for f in logs.values():
            stack.enter_context(f)
        tap = subprocess.Popen([str(VENV_PYTHON), str(TAP), str(tap_out), kind, state_topic, command_topic,
                                "/robot_rl_node", str(SECONDS)], stdout=subprocess.PIPE, stderr=logs["tap"], text=True,
                               env=env)
        assert tap.stdout.readline().strip() == "ready", (tmp_path / "tap.log").read_text()[-2000:]
        sim = subprocess.Popen([str(VENV_PYTHON), "-m", "robot_rl.cli", *sim_args, "--report", str(report)],
                               stdout=logs["sim"], stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        p = [x for k, v in {**params, "autostart": False}.items() for x in ("-p", f"{k}:={ros_value(v)}")]
        node = subprocess.Popen([str(NODE_EXE), "--ros-args", "--params-file", str(ROOT / "launch/config" / yaml_file),
                                 *p], stdout=logs["node"], stderr=subprocess.STDOUT,
                                env={**node_env(), "ROS_DOMAIN_ID": env["ROS_DOMAIN_ID"]}, cwd=tmp_path)
        try:
            tap.wait(timeout=150)
            sim.wait(timeout=60)
        finally:
            interrupt(node)
            for proc in (tap, sim):
                if proc.poll() is None:
                    proc.kill()
    text = "\n".join(f"--- {k}\n{(tmp_path / f'{k}.log').read_text()[-2500:]}" for k in logs)
    assert tap_out.is_file() and report.is_file(), text
    recording = json.loads(tap_out.read_text())
    assert recording["error"] is None, (recording["error"], text)
    return recording, json.loads(report.read_text()), text


def replay_config(yaml_file: str, params: dict[str, Any]) -> NodeConfig:
    """The node's parameters: the example YAML with the same ``-p`` overrides."""
    values = yaml.safe_load((ROOT / "launch/config" / yaml_file).read_text())["/**"]["ros__parameters"]
    return NodeConfig.coerce({**values, **params})


def _state_objects(profile) -> list[Any]:
    r = profile.runner
    objs = [profile, r, *r.sources.values()]
    ee = getattr(r, "_ee", None)
    if ee is not None:
        objs += [ee, ee.controller]
    return objs


def _fields(o: Any) -> dict[str, Any]:
    names = [n for c in type(o).__mro__ for n in getattr(c, "__slots__", ())]
    return {**{n: getattr(o, n) for n in names if hasattr(o, n)}, **getattr(o, "__dict__", {})}


def _snapshot(objs: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """The mutable state of the profile and its runtime (arrays, lists, scalars) to try a candidate state."""
    keep = (np.ndarray, list, bool, int, float, str, type(None))
    return [(o, {k: (v.copy() if isinstance(v, (np.ndarray, list)) else v) for k, v in _fields(o).items()
                 if isinstance(v, keep)}) for o in objs]


def _restore(snap: list[tuple[Any, dict[str, Any]]]) -> None:
    for o, saved in snap:
        for k, v in saved.items():
            cur = getattr(o, k)
            if isinstance(v, np.ndarray) and isinstance(cur, np.ndarray) and cur.shape == v.shape \
                    and cur.dtype == v.dtype:
                np.copyto(cur, v)  # in place: the runtime's views into its observation stay views
            else:
                setattr(o, k, v.copy() if isinstance(v, (np.ndarray, list)) else v)


def replay(profile, feed, states: list[dict], commands: list[dict]) -> dict[str, int]:
    """Replay the recording through ``profile`` (the node's conversion + the runtime): each node command must
    equal (float32, bit for bit) the runtime's command on one of the states the node could have used: one of
    ``AGES`` around the newest one that had reached the tap when the command did (not older than the previous
    command's), or the previous command's. Returns how many commands matched, how many were safe commands, and
    how many used each state by its age."""
    profile.runner.activate()  # as the node's on_activate
    used, counts = -1, {"matched": 0, "safe": 0, "by_age": {}}
    for k, c in enumerate(commands):
        newest = c["states_before"] - 1
        # equal states (a vehicle on the ground) match either way: the most likely is tried first
        candidates = [newest - a for a in AGES if used <= newest - a < len(states)]
        if used not in candidates:  # no state since (a dropped best-effort message), or none yet (-1)
            candidates.append(used)
        want = np.asarray(c["data"], dtype=np.float32)
        snap = _snapshot(_state_objects(profile))
        tried = []
        for j in candidates:
            _restore(snap)
            if j != used and j >= 0:
                feed(profile, states[j])
            cmd, reason = profile.runner.step(0.0)
            got = np.asarray(cmd, dtype=np.float32)
            tried.append((j, got.tolist(), reason))
            if got.shape == want.shape and np.array_equal(got, want):
                counts["matched"] += 1
                if j >= 0:
                    age = newest - j
                    counts["by_age"][age] = counts["by_age"].get(age, 0) + 1
                counts["safe"] += reason is not None
                used = j
                break
        else:
            raise AssertionError(f"node command {k} {want.tolist()} is not the runtime's on any state it could "
                                 f"have used (states {candidates}): {tried}")
    return counts


def _stamp(s: dict) -> NS:
    return NS(stamp=NS(sec=s["stamp"][0], nanosec=s["stamp"][1]), frame_id=s["frame_id"])


def feed_odometry(profile, s: dict) -> None:
    v3 = lambda v: NS(x=v[0], y=v[1], z=v[2])  # noqa: E731
    w, x, y, z = s["orientation"]
    msg = NS(header=_stamp(s), child_frame_id=s["child_frame_id"],
             pose=NS(pose=NS(position=v3(s["position"]), orientation=NS(w=w, x=x, y=y, z=z))),
             twist=NS(twist=NS(linear=v3(s["linear"]), angular=v3(s["angular"]))))
    profile.on_odometry(msg, 0.0)


def feed_joint_state(profile, s: dict) -> None:
    profile.on_joint_state(NS(header=_stamp(s), name=s["name"], position=s["position"], velocity=s["velocity"],
                              effort=s["effort"]), 0.0)


def command_period(commands: list[dict]) -> float:
    return float(np.median(np.diff([c["t"] for c in commands])))


def test_node_flies_the_isaac_crazyflie_export_against_quadrotor_sim(ros_venv, assets, tmp_path):
    t0 = time.monotonic()
    doc = train_and_export("isaac:RobotRL-Crazyflie-Hover-Direct", assets, tmp_path / "run", "test-isaac-cf-node")
    assert doc["action"]["type"] == "motor_rpm" and doc["action"]["size"] == 4 and doc["control_rate_hz"] == 100.0
    assert doc["training"]["task"] == "isaac:RobotRL-Crazyflie-Hover-Direct"
    trained = time.monotonic() - t0
    # input_timeout_s: generous, so that a loaded machine's scheduling does not turn into stale-input safe commands
    params = {"model_path": str(tmp_path / "run" / "export"), "input_timeout_s": 0.5,
              "target": [0.0, 0.0, 1.0]}
    sim_args = ["quadrotor-sim", "--start", "0", "0", "1", "--duration", str(SECONDS + 1.0)]
    tap, sim, logs = run_loop(tmp_path, sim_args, "quadrotor.yaml", params, "odom", "odom", "motor_commands")
    s, cmds = sim["summary"], tap["commands"]
    live = cmds[next(i for i, c in enumerate(cmds) if any(c["data"])):]  # before its first odometry: motors off
    assert s["invalid_commands"] == 0 and s["commands"] >= len(live), (s, logs)
    assert s["max_distance_m"] > 0.01, (s, logs)  # the commands flew the simulated vehicle
    data = np.array([c["data"] for c in live])
    assert data.shape[1] == 4 and len(data) >= 0.8 * SECONDS * 100, (data.shape, logs)
    assert abs(command_period(live) - 0.01) < 0.002
    assert np.isfinite(data).all() and data.min() >= 0.0 and data.max() <= 21702.0  # quadrotor.yaml's rpm range
    assert (data > 0).any(axis=1).sum() >= 30, logs  # the policy's own commands, not only safe (motors-off) ones
    counts = replay(make_profile(replay_config("quadrotor.yaml", params)), feed_odometry, tap["states"], cmds)
    print(json.dumps({"train_export_s": round(trained, 1), "loop_s": round(time.monotonic() - t0 - trained, 1),
                      "tap_stages_s": tap["stages"], "replay": counts}))
    assert counts["matched"] == len(cmds) and counts["matched"] - counts["safe"] >= 30, counts
    assert sum(n for age, n in counts["by_age"].items() if age <= 1) >= 0.5 * len(live), counts  # fresh states


def test_node_drives_the_isaac_panda_reach_export_against_arm_sim(ros_venv, assets, tmp_path):
    from sim.arm.kinematics import Q_LOWER, Q_UPPER, QD_LIMIT

    t0 = time.monotonic()
    doc = train_and_export("isaac:RobotRL-Panda-Reach-Direct", assets, tmp_path / "run", "test-isaac-reach-node")
    assert doc["action"]["type"] == "ee_delta" and doc["control_rate_hz"] == 50.0
    assert doc["training"]["task"] == "isaac:RobotRL-Panda-Reach-Direct"
    trained = time.monotonic() - t0
    goal = [0.55, -0.12, 0.22]  # inside the reach task's goal box
    params = {"model_path": str(tmp_path / "run" / "export"), "input_timeout_s": 0.5,
              "goal": goal}
    sim_args = ["arm-sim", "--task", "panda-reach", "--goal", *map(str, goal), "--duration", str(SECONDS + 1.0)]
    tap, sim, logs = run_loop(tmp_path, sim_args, "panda.yaml", params, "joint_states", "/joint_states",
                              "/forward_position_controller/commands")
    s, cmds = sim["summary"], tap["commands"]
    faults = ("arm_nonfinite_dropped", "arm_update_errors", "limit_violations", "velocity_violations")
    assert all(s[k] == 0 for k in faults) and s["arm_commands"] >= len(cmds), (s, logs)
    data = np.array([c["data"] for c in cmds])
    assert data.shape[1] == 7 and len(data) >= 0.8 * SECONDS * 50, (data.shape, logs)
    assert abs(command_period(cmds) - 0.02) < 0.004
    assert np.isfinite(data).all() and (data >= Q_LOWER - 1e-6).all() and (data <= Q_UPPER + 1e-6).all()
    assert (np.abs(np.diff(data, axis=0)) <= QD_LIMIT * 0.02 * 1.0001 + 1e-7).all()  # panda.yaml's rate limit
    tcp = np.array(sim["trajectory"]["tcp"])
    assert np.linalg.norm(tcp - tcp[0], axis=1).max() > 0.005, logs  # the policy's ee_delta moved the arm
    counts = replay(make_profile(replay_config("panda.yaml", params)), feed_joint_state, tap["states"], cmds)
    print(json.dumps({"train_export_s": round(trained, 1), "loop_s": round(time.monotonic() - t0 - trained, 1),
                      "tap_stages_s": tap["stages"], "replay": counts}))
    assert counts["matched"] == len(cmds) and counts["safe"] == 0, counts
    assert sum(n for age, n in counts["by_age"].items() if age <= 1) >= 0.5 * len(cmds), counts  # fresh states
