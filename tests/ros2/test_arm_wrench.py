"""A composition that reads the wrist force/torque sensor (a ResiP residual, an EXPO selector), over real DDS:
``robot-rl arm-sim`` (``panda-peg-insert``) publishes ``geometry_msgs/WrenchStamped`` on
``/force_torque_sensor_broadcaster/wrench_filtered`` (frame ``ft_sensor``); ``robot-rl-node``
(``launch/config/panda.yaml``, torch blocked) feeds it into the composition's ``wrench`` input, and holds the arm
when it stops (``--pause-wrench``: a stalled sensor).

The exports are small and untrained (a random 2-step diffusion base whose actions span +-0.4 mm of TCP motion per
step; a residual, or EXPO's edit policy and Q ensemble, with random wrench weights): what is checked is the
plumbing, not the policy. A wrench that is not finite, out of its plausible range or in another frame is refused
by the runtime and the profile (fast tests in ``tests/deploy/test_residual_wrench.py`` and
``tests/deploy/test_candidates_wrench.py``).
"""

import json
import subprocess

import numpy as np
import pytest

from .conftest import VENV_PYTHON, interrupt, ros_env
from .test_arm_loop import DIAG_PEER, clean, refused, sim_and_node

STALL_AT, STALL_FOR = 1.5, 0.6  # s after arm-sim's first command


def wrench_export(out_dir, composition: str = "residual") -> dict:
    """An untrained peg-insert composition whose residual (``composition="residual"``) or EXPO selector
    (``"expo"``) reads the wrench (the real export path)."""
    import torch

    from deploy.export.candidates import ActionSelector, export_candidates_policy
    from deploy.export.residual import export_residual_policy
    from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer
    from robot_rl.residual.expo import EXPOAgent, EXPOConfig
    from robot_rl.residual.expo_inputs import agent_obs_norm
    from robot_rl.residual.resip import WRENCH_DIM, ResidualActor
    from sim.arm.config import ArmWristFT
    from sim.arm.wrench import wrench_contract
    from sim.registry import get_task

    spec = get_task("panda-peg-insert").export_spec()
    spec.pop("robot", None)
    lo = np.concatenate([np.broadcast_to(c["valid_low"], c["size"]) for c in spec["observation"]])
    hi = np.concatenate([np.broadcast_to(c["valid_high"], c["size"]) for c in spec["observation"]])
    torch.manual_seed(0)
    cfg = DiffusionConfig(horizon=8, n_action_steps=4, denoiser="mlp", mlp_hidden=(32, 32), step_embed_dim=16,
                          num_inference_steps=2)
    policy = DiffusionPolicy(cfg, lo.size, 3, MinMaxNormalizer(lo, hi),
                             MinMaxNormalizer(np.full(3, -0.02), np.full(3, 0.02))).eval()
    on_dist = np.random.default_rng(0).uniform(lo, hi, (32, lo.size)).astype(np.float32)
    sensor = wrench_contract(ArmWristFT(), 50.0)
    if composition == "expo":
        norm = agent_obs_norm(policy.obs_norm.mid, policy.obs_norm.span, policy.n_obs_steps, wrench=True)
        agent = EXPOAgent(EXPOConfig(hidden=(16, 16), num_candidates=2, edit_scale=0.3),
                          policy.n_obs_steps * lo.size + WRENCH_DIM, 3, norm).eval()
        with torch.no_grad():  # non-zero mean edits
            agent.edit.mean.weight.normal_(0.0, 0.5)
        return export_candidates_policy(out_dir, policy, ActionSelector(agent, policy), "action", 2, spec, on_dist,
                                        {"robot": "panda"}, samples=8, wrench=sensor)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (16, 16), 0.1, -1.0, False, wrench_dim=WRENCH_DIM)
    with torch.no_grad():
        actor.net[-1].weight.normal_(0.0, 0.1)
        actor.net[0].weight[:, -WRENCH_DIM:].normal_(0.0, 0.5)
    return export_residual_policy(out_dir, policy, actor, spec, on_dist, {"robot": "panda"}, samples=8,
                                  wrench=sensor)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.strip("[]").split(",")]


@pytest.mark.slow
@pytest.mark.parametrize("composition,inputs", [("residual", ["obs", "base_action", "wrench"]),
                                                ("expo", ["obs", "candidates", "wrench"])])
def test_wrist_wrench_flows_from_arm_sim_through_the_node_and_a_stalled_one_holds(ros_venv, tmp_path, composition,
                                                                                 inputs):
    doc = wrench_export(tmp_path / "peg", composition)
    assert doc["composition"]["inputs"] == inputs
    report, diag = tmp_path / "arm.json", tmp_path / "diag.json"
    sim_args = ["--task", "panda-peg-insert", "--seed", "3", "--duration", "3", "--pause-wrench", str(STALL_AT),
                str(STALL_FOR), "--report", str(report)]
    node_params = [f"model_path:={tmp_path / 'peg'}", "goal_topic:=/goal_pose", "diagnostics_period_s:=0.1"]
    peer = subprocess.Popen([str(VENV_PYTHON), "-c", DIAG_PEER, str(diag)], stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "peer.log", "w"), text=True, env=ros_env())
    try:
        assert peer.stdout.readline().strip() == "ready", (tmp_path / "peer.log").read_text()[-2000:]
        with sim_and_node(tmp_path, sim_args, node_params) as (sim, logs):
            sim.wait(timeout=120)
    finally:
        interrupt(peer)
    assert report.is_file() and diag.is_file(), logs
    data, rows = json.loads(report.read_text()), json.loads(diag.read_text())
    s = data["summary"]
    assert clean(s) and 120 <= s["arm_commands"] <= 200, (refused(s), s, logs)  # ~50 Hz for 3 s (+ holds), none refused
    # flowing: the reading the composition holds is one that arm-sim published, to float32 precision
    published = np.array(data["trajectory"]["wrench"])
    assert abs(published[:, 3].mean() + 7.95) < 1.0  # hand + peg weight along the sensor's z
    active = [r for r in rows if int(r["steps"]) > 10 and not r["last_reason"]]
    assert active, rows[-3:]
    for r in active:
        w = np.array(floats(r["wrench"]))
        assert np.abs(published[:, 1:] - w).max(axis=1).min() < 1e-5 * (1 + np.abs(w).max()), w
    last = rows[-1]
    assert int(last["wrench_received"]) >= 200 and int(last["wrench_rejected_stamps"]) == 0, last
    # stalled: stale after 0.1 s -> the node holds (safe commands) with the reason, then runs again
    reasons = [r["last_reason"] for r in rows]
    stale = [i for i, why in enumerate(reasons) if why.startswith("stale wrench input")]
    assert stale and any(r in active for r in rows[stale[-1]:]), reasons  # held, then ran again
    t = np.array([c[0] for c in data["commands"]])
    cmds = np.array([c[1] for c in data["commands"]])
    held = cmds[(t >= STALL_AT + 0.2) & (t < STALL_AT + STALL_FOR)]
    moving = cmds[(t >= 0.2) & (t < STALL_AT)]
    assert len(held) >= 15 and np.ptp(held, axis=0).max() < 1e-6, np.ptp(held, axis=0)  # one held target
    assert np.ptp(moving, axis=0).max() > 1e-4  # the policy moved the arm before (and the hold is not stillness)
    assert np.ptp(cmds[t >= STALL_AT + STALL_FOR + 0.3], axis=0).max() > 1e-5  # running again once it returns
