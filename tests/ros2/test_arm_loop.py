"""The arm over real DDS: ``robot-rl-node`` (profile ``arm``, ``launch/config/panda.yaml``, torch blocked) against
``robot-rl arm-sim`` (the MuJoCo Panda of ``panda-pick-cube`` behind ros2_control's topics, in .venv-ros).

The slow test flies the policy that asymmetric SAC learned for ``panda-reach`` (``panda-reach-sac``, exported by
``robot-rl train``). The fast tests use hand-set policies, exported through the project's real export path
(``deploy.export.policy.export_policy``: ONNX + policy.json + test vector):

* a proportional TCP reacher ``a = clip(10 (goal - ee), -1, 1)`` on ``ee_position`` + ``goal_position`` with an
  ``ee_delta`` action (+ a constant gripper channel), so the loop exercises FK from joint states matched by
  name, the simulator's own IK controller in the runtime, the arm and gripper controllers, and MuJoCo;
* a pass-through joint-position policy (target = the ``goal`` observation) whose goal a test peer scripts
  over ``std_msgs/Float64MultiArray``, so the test decides what the policy asks for: a 0.8 rad jump (too fast),
  a target beyond the joint limit, NaN. The simulated arm counts every command a real Panda would refuse.
"""

import contextlib
import json
import subprocess

import numpy as np
import pytest

from sim.arm.kinematics import Q_UPPER, QD_LIMIT

from .conftest import VENV_PYTHON, interrupt, ros_env
from .conftest import sim_and_node as ros_sim_and_node

PANDA = [f"panda_joint{i}" for i in range(1, 8)]
MAX_STEP = QD_LIMIT * 0.02  # panda.yaml's max_command_delta: the velocity limits over one 50 Hz period


@contextlib.contextmanager
def sim_and_node(tmp_path, sim_args: list[str], node_params: list[str]):
    """``robot-rl arm-sim`` beside the node on ``panda.yaml``, started active; yields (sim process, logs)."""
    with ros_sim_and_node(tmp_path, "arm-sim", "panda.yaml", sim_args, ["autostart:=true", *node_params]) as out:
        yield out


def refused(summary: dict) -> dict:
    """The counts of what a real Panda or forward_command_controller would refuse that are not zero."""
    keys = ("arm_nonfinite_dropped", "arm_update_errors", "gripper_nonfinite_dropped", "gripper_update_errors",
            "limit_violations", "velocity_violations")
    return {k: summary[k] for k in keys if summary[k] != 0}


def ran_the_pick(summary: dict, diag: dict | None) -> bool:
    """The node's chunked runtime ran through the pick: 20 chunks of 8 steps (3.2 s of the 5 s), or, where
    arm-sim's physics blew up after the lift had succeeded (``physics_unstable_at_s``: a dropped, spinning cube
    hitting the floor, ``tests/sim/arm/test_ros2_control.py``), up to it: the node then refuses the flung cube's
    implausible position and holds, as it must, so fewer chunks run (at least half of the 0.16 s chunks that fit
    before it: late chunks hold a step each)."""
    if diag is None:
        return False
    blew = summary["physics_unstable_at_s"]
    if blew is None:
        return int(diag["chunks"]) >= 20
    return summary["lifted_at_s"] is not None and summary["lifted_at_s"] < blew and int(diag["chunks"]) >= blew / 0.32


def clean(summary: dict) -> bool:
    """Nothing a real Panda or forward_command_controller would refuse reached the simulated arm."""
    return not refused(summary)


def test_ee_delta_policy_reaches_the_goal_through_node_and_arm_sim(ros_venv, tmp_path):
    from deploy.export.examples import export_ee_reach_example

    export_ee_reach_example(tmp_path / "reach", gripper=-0.5)  # gripper width 0.02 m -> finger 0.01 m
    goal = [0.40, 0.15, 0.35]  # the cube scene's TCP starts near (0.45, 0, 0.25)
    report = tmp_path / "arm.json"
    sim_args = ["--task", "panda-pick-cube", "--goal", *map(str, goal), "--duration", "3", "--radius", "0.005",
                "--hold", "0.5", "--report", str(report)]
    with sim_and_node(tmp_path, sim_args, [f"model_path:={tmp_path / 'reach'}", f"goal:={goal}"]) as (sim, logs):
        sim.wait(timeout=120)
    assert report.is_file(), logs
    data = json.loads(report.read_text())
    s = data["summary"]
    assert s["reached"] and s["final_error_m"] < 0.005, (s, logs)
    assert clean(s) and 120 <= s["arm_commands"] <= 170, s  # ~50 Hz for 3 s
    assert {round(w, 6) for _, w in data["gripper"]} == {0.01}
    start = np.array(data["trajectory"]["tcp"][0])
    assert np.linalg.norm(start - goal) > 0.1  # it really moved there


@pytest.mark.slow
def test_learned_reach_policy_reaches_the_goal_through_node_and_arm_sim(ros_venv, trained_reach_run, tmp_path):
    """The learned ``panda-reach`` export (joint states -> FK -> policy -> ee_delta -> the runtime's IK controller
    -> forward_command_controller) reaches a goal inside the training box and holds it, over DDS."""
    run, _ = trained_reach_run
    goal = [0.55, -0.12, 0.22]  # inside panda-reach's goal box, 17 cm from the scene's start
    report = tmp_path / "arm.json"
    sim_args = ["--task", "panda-reach", "--goal", *map(str, goal), "--duration", "4", "--radius", "0.02",
                "--hold", "1.0", "--report", str(report)]
    with sim_and_node(tmp_path, sim_args, [f"model_path:={run / 'export'}", f"goal:={goal}"]) as (sim, logs):
        sim.wait(timeout=150)
    assert report.is_file(), logs
    data = json.loads(report.read_text())
    s = data["summary"]
    assert s["reached"] and s["final_error_m"] < 0.02, (s, logs)  # the task's success radius: 2 cm
    assert clean(s), (refused(s), s)
    start = np.array(data["trajectory"]["tcp"][0])
    assert np.linalg.norm(start - goal) > 0.1  # it really moved there


FAULT_PEER = """
import json, math, sys, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
PANDA = [f"panda_joint{i}" for i in range(1, 8)]
rclpy.init()
node = rclpy.create_node("fault_peer")
rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
pub = node.create_publisher(Float64MultiArray, "/joint_goal", rel)
q, cmds, t0 = [], [], [time.monotonic() + 1e6]
def on_js(m):
    q[:] = [m.position[list(m.name).index(j)] for j in PANDA]
def on_cmd(m):
    cmds.append((time.monotonic() - t0[0], list(m.data), list(q)))
node.create_subscription(JointState, "/joint_states", on_js, qos_profile_sensor_data)
node.create_subscription(Float64MultiArray, "/forward_position_controller/commands", on_cmd, rel)
print("ready", flush=True)
end = time.monotonic() + 90
while not (cmds and q) and time.monotonic() < end:  # the node is up and holding
    rclpy.spin_once(node, timeout_sec=0.01)
q0 = list(q)
probe = list(q0)
probe[6] += 0.02                          # handshake: the node follows our goal once joint 7 moves
nxt = time.monotonic()
while not any(abs(c[6] - q0[6]) > 0.01 for _, c, _ in cmds[-3:]) and time.monotonic() < end:
    if time.monotonic() >= nxt:
        pub.publish(Float64MultiArray(data=probe))
        nxt += 0.02
    rclpy.spin_once(node, timeout_sec=0.002)
t0[0] = time.monotonic()
while time.monotonic() - t0[0] < 7.0:
    t = time.monotonic() - t0[0]
    goal = list(probe)
    if 0.5 <= t < 1.0:
        goal[0] = q0[0] + 0.8             # a jump: far faster than the joint may move
    elif 1.0 <= t < 2.4:
        goal[0] = 4.0                     # beyond joint 1's upper limit (2.8973 rad)
    elif 2.4 <= t < 2.9:
        goal[0], goal[1] = 4.0, math.nan  # NaN
    elif t >= 2.9:
        goal[0] = 1.5 + 0.6 * math.sin(math.pi * (t - 2.9))  # valid again, and always moving (1.9 rad/s)
    if time.monotonic() >= nxt:
        pub.publish(Float64MultiArray(data=goal))
        nxt += 0.02
    rclpy.spin_once(node, timeout_sec=0.002)
json.dump({"commands": cmds}, open(sys.argv[1], "w"))
"""


def passthrough_export(out_dir):
    """A joint-position policy that outputs its ``goal`` observation (the peer decides the targets)."""
    import torch

    from deploy.export.policy import export_policy
    from robot_rl.models import MLP
    from sim.arm.kinematics import Q_LOWER

    net = MLP(14, [], 7, "tanh", "identity")
    with torch.no_grad():
        net.linears[0].weight.copy_(torch.cat([torch.zeros(7, 7), torch.eye(7)], 1))
        net.linears[0].bias.zero_()
    spec = {"observation": [
        {"name": "joint_position", "size": 7, "unit": "rad", "valid_low": (Q_LOWER - 0.1).tolist(),
         "valid_high": (Q_UPPER + 0.1).tolist()},
        {"name": "goal", "size": 7, "frame": "joint", "unit": "rad", "valid_low": -6.3, "valid_high": 6.3}],
        "action": {"type": "joint_position", "size": 7, "low": -6.3, "high": 6.3, "joints": PANDA, "delta": False,
                   "scale": 1.0, "offset": 0.0},
        "control_rate_hz": 50.0}
    on_dist = np.random.default_rng(0).uniform(-2, 2, (64, 14)).astype(np.float32)
    export_policy(out_dir, net.graph(), net, spec, on_dist, {"robot": "franka_panda", "task": "pass-through test"})


def test_nan_out_of_limit_too_fast_and_stale_never_reach_the_arm(ros_venv, tmp_path):
    passthrough_export(tmp_path / "pass")
    report, peer_out = tmp_path / "arm.json", tmp_path / "peer.json"
    # the peer's phases start once the node follows its goal (<= ~1.5 s after arm-sim's first command): the
    # joint-state stall at 5.0-5.6 s of arm-sim's clock falls into the peer's last, always-moving phase
    sim_args = ["--task", "panda-pick-cube", "--duration", "6.4", "--pause-joint-states", "5.0", "0.6",
                "--report", str(report)]
    node_params = [f"model_path:={tmp_path / 'pass'}", "goal_topic:=/joint_goal"]
    peer = subprocess.Popen([str(VENV_PYTHON), "-c", FAULT_PEER, str(peer_out)], stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "peer.log", "w"), text=True, env=ros_env())
    try:
        assert peer.stdout.readline().strip() == "ready", (tmp_path / "peer.log").read_text()[-2000:]
        with sim_and_node(tmp_path, sim_args, node_params) as (sim, logs):
            sim.wait(timeout=150)
            peer.wait(timeout=30)
    finally:
        if peer.poll() is None:
            peer.kill()
    assert peer.returncode == 0 and report.is_file(), ((tmp_path / "peer.log").read_text()[-2000:], logs)
    data = json.loads(report.read_text())
    s = data["summary"]
    assert clean(s), (refused(s), s, logs)  # the arm never received a NaN, an out-of-limit or a too-fast target
    cmds = np.array([c for _, c in data["commands"]])
    assert np.isfinite(cmds).all() and np.all(cmds[:, 0] <= Q_UPPER[0])
    assert np.all(np.abs(np.diff(cmds, axis=0)) <= MAX_STEP * 1.0001 + 1e-7)
    assert cmds[:, 0].max() > Q_UPPER[0] - 1e-6  # the policy did push joint 1 onto its limit: clamped there
    # NaN in the goal: the node holds the measured position (the peer's latest joint state)
    seen = json.loads(peer_out.read_text())["commands"]
    nan_phase = [(c, q) for t, c, q in seen if 2.5 <= t < 2.9]
    assert nan_phase and all(np.allclose(c, q, atol=5e-3) for c, q in nan_phase), nan_phase[:3]
    # stalled joint states: hold the last measured position, although the goal keeps moving
    t = np.array([t for t, _ in data["commands"]])
    paused = cmds[(t >= 5.0 + 0.3) & (t < 5.6)]  # after the 0.1 s timeout + the rate-limited return to it
    q_last = np.array(data["trajectory"]["q_at_pause"])
    assert len(paused) >= 8 and np.allclose(paused, np.minimum(q_last, Q_UPPER), atol=1e-5), (paused[:2], q_last)
    after = cmds[t >= 5.7]
    assert len(after) and np.ptp(after[:, 0]) > 0.1  # following the goal again once joint states return


# a diagnostics peer: writes every `arm` status it receives (key/value dicts, oldest first) to argv[1]
DIAG_PEER = """
import json, sys, rclpy
from diagnostic_msgs.msg import DiagnosticArray
rclpy.init()
node = rclpy.create_node("diag_peer")
rows = []
def on_diag(m):
    for s in m.status:
        if s.hardware_id == "arm":
            rows.append({kv.key: kv.value for kv in s.values})
            with open(sys.argv[1], "w") as f:
                json.dump(rows, f)
node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
print("ready", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
"""

PICK_SCENE_SEED = 3  # arm-sim's episode seed (cube placement, start pose, gains); seeds 0-10 all succeeded


def pick_through_node(tmp_path, model_dir) -> tuple[dict, dict | None, dict[str, str]]:
    """Run the export in ``model_dir`` through the node against ``arm-sim``'s pick scene with the diagnostics
    peer listening; returns arm-sim's report, the last diagnostics values (``None``: none arrived) and logs."""
    report, diag = tmp_path / "arm.json", tmp_path / "diag.json"
    sim_args = ["--task", "panda-pick-cube", "--seed", str(PICK_SCENE_SEED), "--duration", "5",
                "--report", str(report)]
    peer = subprocess.Popen([str(VENV_PYTHON), "-c", DIAG_PEER, str(diag)], stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "peer.log", "w"), text=True, env=ros_env())
    try:
        assert peer.stdout.readline().strip() == "ready", (tmp_path / "peer.log").read_text()[-2000:]
        with sim_and_node(tmp_path, sim_args, [f"model_path:={model_dir}"]) as (sim, logs):
            sim.wait(timeout=150)
    finally:
        interrupt(peer)
    assert report.is_file(), logs
    return json.loads(report.read_text()), json.loads(diag.read_text())[-1] if diag.is_file() else None, logs


@pytest.mark.slow
def test_diffusion_policy_picks_the_cube_through_node_and_arm_sim(ros_venv, trained_pick_dp, tmp_path):
    """The diffusion policy of ``dp-panda-pick-cube`` (100 demos, the session fixture ``trained_pick_dp``), exported
    as a chunked ONNX sampler, run by the node's torch-free ChunkedPolicyRunner on the ``arm`` profile (joint
    states by name -> FK, finger joints -> gripper width, the cube's PoseStamped -> object pose; ee_delta + yaw
    through the IK controller, gripper through its own forward controller) against ``robot-rl arm-sim`` over
    DDS: the cube is lifted 10 cm and held (the task's success: ``hold_steps`` control steps, after which a
    training episode ends, so what the policy does afterwards is not checked). Scene seeds 0-10: 11/11 lifted
    and held."""
    from robot_rl.commands.bc import export_bc_run

    run, _ = trained_pick_dp
    doc = export_bc_run(run, tmp_path / "pick")
    assert doc["kind"] == "chunked" and {c["name"] for c in doc["observation"]} >= {"gripper_width",
                                                                                    "object_position"}
    data, diag, logs = pick_through_node(tmp_path, tmp_path / "pick")
    s = data["summary"]
    print(json.dumps({"summary": s, "diagnostics": diag}))
    assert clean(s), (refused(s), s, logs)
    assert s["success"] and s["max_object_height_m"] >= 0.02 + 0.10, (s, logs)  # lifted >= 10 cm, held 0.2 s
    widths = [w for _, w in data["gripper"]]
    assert max(widths) > 0.015 and min(widths) < 0.015, (min(widths), max(widths))  # it opened and closed
    assert ran_the_pick(s, diag), (s, diag)


@pytest.mark.slow
def test_residual_composition_picks_the_cube_through_node_and_arm_sim(ros_venv, trained_pick_dp, tmp_path):
    """The ``residual`` composition (:mod:`deploy.export.residual`) over the same diffusion base: the node's
    loader picks :class:`deploy.residual_runtime.ResidualPolicyRunner` from ``composition.kind`` and runs the base
    sampler every 8 steps and the residual actor every step, torch-free, against ``robot-rl arm-sim``. The residual
    is small but not zero (last layer ~N(0, 0.01), scale 0.1), so the commands differ from the base's while the
    cube is still lifted and held."""
    import numpy as np
    import torch

    from deploy.export.residual import export_residual_policy
    from robot_rl.commands.bc import load_bc_config
    from robot_rl.data import load_dataset
    from robot_rl.residual.resip import ResidualActor
    from robot_rl.runners.bc import load_policy
    from sim.registry import get_task

    run, demos = trained_pick_dp
    policy, _ = load_policy(run)
    torch.manual_seed(0)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (64, 64), 0.1, -1.0, False)
    with torch.no_grad():
        actor.net[-1].weight.normal_(0.0, 0.01)
    spec = get_task("panda-pick-cube").export_spec()
    spec.pop("robot", None)
    cfg = load_bc_config(run)
    on_dist = np.concatenate([ep[cfg.obs_key] for ep in load_dataset(demos, keys=[cfg.obs_key]).episodes])
    doc = export_residual_policy(tmp_path / "pick", policy, actor, spec, on_dist, {"robot": "panda"})
    assert doc["kind"] == "composed" and doc["composition"]["kind"] == "residual"
    data, diag, logs = pick_through_node(tmp_path, tmp_path / "pick")
    s = data["summary"]
    assert clean(s), (refused(s), s, logs)
    assert s["success"] and s["max_object_height_m"] >= 0.02 + 0.10, (s, logs)
    assert ran_the_pick(s, diag) and float(diag["max_residual_ms"]) > 0, (s, diag)


@pytest.mark.slow
def test_value_reranked_composition_picks_the_cube_through_node_and_arm_sim(ros_venv, trained_pick_dp, tmp_path):
    """The ``candidates`` composition with ``score: "chunk"`` (value-guided re-ranking, ``robot-rl train vgps``)
    over the same diffusion base: wherever a chunk is due the node's
    :class:`deploy.candidates_runtime.CandidatesPolicyRunner` samples 4 chunks and runs the one ``value.onnx``
    scores highest, torch-free, against ``robot-rl arm-sim``. The value is a
    :class:`robot_rl.residual.branched.BranchValue` with random weights: it picks other samples of the same base
    than the base's own (the runner's ``other_chunks``), which still lift and hold the cube."""
    import torch

    from deploy.export.candidates import ChunkScorer, export_candidates_policy
    from robot_rl.commands.bc import load_bc_config
    from robot_rl.data import load_dataset
    from robot_rl.residual.branched import BranchedConfig, BranchValue
    from robot_rl.runners.bc import load_policy
    from sim.registry import get_task

    run, demos = trained_pick_dp
    policy, _ = load_policy(run)
    torch.manual_seed(0)
    to, n = policy.n_obs_steps, policy.n_action_steps
    value = BranchValue(BranchedConfig(hidden=(32, 32)), to * policy.obs_dim, n * policy.act_dim,
                        (policy.obs_norm.mid.repeat(to), policy.obs_norm.span.repeat(to))).eval()
    spec = get_task("panda-pick-cube").export_spec()
    spec.pop("robot", None)
    cfg = load_bc_config(run)
    on_dist = np.concatenate([ep[cfg.obs_key] for ep in load_dataset(demos, keys=[cfg.obs_key]).episodes])
    doc = export_candidates_policy(tmp_path / "pick", policy, ChunkScorer(value, policy), "chunk", 4, spec, on_dist,
                                   {"robot": "panda"}, seed=0)
    assert doc["composition"]["score"] == "chunk" and doc["composition"]["k"] == 4
    data, diag, logs = pick_through_node(tmp_path, tmp_path / "pick")
    s = data["summary"]
    assert clean(s), (refused(s), s, logs)
    assert s["success"] and s["max_object_height_m"] >= 0.02 + 0.10, (s, logs)
    # it re-ranked: some chunks that ran were not the base's own sample
    assert ran_the_pick(s, diag) and 0 < int(diag["other_chunks"]) < int(diag["chunks"]), (s, diag)
