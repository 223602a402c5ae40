"""An EXPO run that reads the wrist force/torque sensor (``robot-rl train expo --wrench``): ``robot-rl export`` writes
a selector with a ``wrench`` input, the torch-free runtime feeds it through the one wrench path of
:mod:`deploy.chunked_runtime` (as a ResiP residual's) and agrees with torch on the same noise; bad input is refused
in one line."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from deploy.candidates_runtime import CandidatesPolicyRunner  # noqa: E402
from deploy.chunked_runtime import load_runner  # noqa: E402
from deploy.export.candidates import ActionSelector, export_candidates_policy  # noqa: E402
from deploy.export.policy import ExportError  # noqa: E402
from deploy.runtime import ModelError  # noqa: E402
from robot_rl.cli import main  # noqa: E402
from robot_rl.commands.bc import load_bc_config  # noqa: E402
from robot_rl.data import load_dataset  # noqa: E402
from robot_rl.residual.expo import EXPOConfig  # noqa: E402
from robot_rl.residual.expo_inputs import WRENCH_SPAN, agent_obs  # noqa: E402
from robot_rl.runners.expo import EXPORunner, EXPOTrainConfig, load_expo  # noqa: E402

SOURCES = {"joint_states": None, "wrench": None}
STEPS = 11
#: Wrist readings around contact forces (N, N m): a hand at rest reads -8 N along z, a pressed peg ~100-200 N.
WRENCH_STD, WRENCH_REST = np.array([40, 40, 80, 2, 2, 1.0]), np.array([0, 0, -8, 0, 0, 0.0])


@pytest.fixture(scope="module")
def expo_wrench(expo_base_run, tmp_path_factory):
    """A small EXPO run with ``--wrench`` (48 env steps, tiny networks), exported with ``robot-rl export``; the run
    directory and a demonstration episode's observations (the base's training distribution)."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("expo_wrench") / "run"
    EXPORunner(EXPOTrainConfig(base=str(expo_base_run), num_envs=4, env_steps=48, pretrain_steps=0, batch_size=16,
                               demos="none", expo=EXPOConfig(hidden=(16, 16), num_candidates=2), eval_every=0,
                               checkpoint_every=0, wrench=True), run).train()
    main(["export", str(run)])
    bc = load_bc_config(str(expo_base_run))
    obs = load_dataset(bc.demos, keys=[bc.obs_key]).episodes[0][bc.obs_key][:STEPS].astype(np.float32)
    return run, obs


def _wrenches(seed: int) -> np.ndarray:
    return (WRENCH_REST + WRENCH_STD * np.random.default_rng(seed).normal(0, 1, (STEPS, 6))).astype(np.float32)


def _run(runner, obs, wrenches):
    """The policy actions and the observations the runner acted on (after clamping), one per step."""
    acts, used = [], []
    for t, (o, w) in enumerate(zip(obs, wrenches, strict=True)):
        runner.obs[0] = o
        runner.measured[:] = o[:7]  # ee_delta: the joints the profile measured
        assert runner.accept("joint_states", t + 1, received=0.0) and runner.accept("wrench", t + 1, received=0.0)
        runner.wrench[0] = w
        cmd, reason = runner.step(0.0)
        assert reason is None and np.isfinite(cmd).all()
        acts.append(runner._act.copy())  # the policy action (the command is its IK image)
        used.append(runner.obs[0].copy())
    return np.stack(acts), np.stack(used)


def test_export_declares_the_wrench_input_and_its_scale(expo_wrench):
    comp = json.loads((expo_wrench[0] / "export" / "policy.json").read_text())["composition"]
    assert comp["inputs"] == ["obs", "candidates", "wrench"] and comp["score"] == "action"
    wr = comp["wrench"]
    assert wr["size"] == 6 and wr["scale"] == list(WRENCH_SPAN) and wr["units"] == ["N"] * 3 + ["N m"] * 3
    assert wr["names"][2] == "force.z" and len(comp["test_vector"]["example_wrench"][0]) == 6
    assert comp["verification"]["max_abs_error"] <= 1e-5


def test_runtime_matches_torch_on_the_same_noise_and_reads_the_wrench(expo_wrench):
    run, obs = expo_wrench
    cfg, policy, agent, _ = load_expo(run)
    r = load_runner(run / "export", sources=SOURCES, deadline_s=float("inf"), noise_seed=5)
    assert isinstance(r, CandidatesPolicyRunner) and r.verify_test_vector() <= 1e-5
    wrenches = _wrenches(2)
    got, used = _run(r, obs, wrenches)
    k, h, a, e = cfg.expo.num_candidates, policy.horizon, policy.act_dim, policy.n_action_steps
    rng, crng = np.random.default_rng(5), np.random.default_rng([5, 1])  # the runtime's two noise streams
    lo, hi = r._act_lo, r._act_hi
    hist, chosen, edited = None, [], 0.0
    for t, (o, w) in enumerate(zip(used, wrenches, strict=True)):
        ot = torch.as_tensor(o)[None]
        hist = ot.expand(policy.n_obs_steps, -1)[None].clone() if hist is None else \
            torch.cat((hist[:, 1:], ot[:, None]), 1)
        x = agent_obs(hist, torch.as_tensor(w)[None])  # what Q and the edit policy read in training
        with torch.no_grad():
            if t % e == 0:  # a chunk is due: k chunks, their first actions are the candidates
                first = policy.sample(hist, torch.as_tensor(rng.standard_normal((1, h, a), dtype=np.float32)))
                extra = policy.sample(hist.repeat(k - 1, 1, 1),
                                      torch.as_tensor(crng.standard_normal((k - 1, h, a), dtype=np.float32)))
                chunks = torch.cat((first, extra))
                action, idx, _ = agent.select(x, policy.act_norm.normalize(chunks[None, :, 0]), stochastic=False)
                chunk = chunks[int(idx) % k]
                chosen.append(int(idx))
            else:  # the chosen chunk runs on: its action of the step (k times) and its edit
                cands = policy.act_norm.normalize(chunk[t % e]).expand(1, k, -1)
                action, _, _ = agent.select(x, cands, stochastic=False)
            want = np.clip(policy.act_norm.unnormalize(action)[0].numpy(), lo, hi)
        np.testing.assert_allclose(got[t], want, atol=1e-5, rtol=0)
        edited = max(edited, float(np.abs(want - np.clip(chunk[t % e].numpy(), lo, hi)).max()))
    assert any(c >= k for c in chosen) and edited > 1e-4  # the selection ran edits, not only the base's actions
    # the wrench is read: the same observations and noise with another wrench give other actions
    other, _ = _run(load_runner(run / "export", sources=SOURCES, deadline_s=float("inf"), noise_seed=5), obs,
                    np.tile(WRENCH_REST.astype(np.float32), (STEPS, 1)))
    assert np.abs(other - got).max() > 1e-3


def test_missing_or_bad_wrench_is_refused_in_one_line(expo_wrench, tmp_path):
    run, obs = expo_wrench
    export = run / "export"
    with pytest.raises(ModelError, match="'wrench' source"):
        load_runner(export, sources={"joint_states": None})
    r = load_runner(export, sources=SOURCES, deadline_s=float("inf"))
    r.obs[0], r.measured[:] = obs[0], obs[0][:7]
    assert r.accept("joint_states", 1, received=0.0)
    assert r.step(0.0)[1] == "no wrench input received yet"
    for t, bad in enumerate((np.nan, 5000.0)):
        assert r.accept("wrench", t + 1, received=0.0) and r.accept("joint_states", t + 2, received=0.0)
        r.wrench[0] = [0, 0, bad, 0, 0, 0]
        cmd, reason = r.step(0.0)
        assert reason.startswith("wrench reading not finite or outside its plausible range") and np.isfinite(cmd).all()
    k, a = r.k, r.action_size
    hist, cands = np.repeat(obs[None, :1], r.obs_steps, axis=1), np.zeros((1, k, a), np.float32)
    for wrench, match in ((None, r"reads a wrench input \[1, 6\]; none was given"),
                          (np.zeros((1, 5)), r"wrench input must be \[1, 6\].*got \[1, 5\]")):
        with pytest.raises(ModelError, match=match) as info:
            r.run_selector(hist, cands, wrench)
        assert "\n" not in str(info.value)
    # policy.json and select.onnx must agree on the input
    for name in ("policy.onnx", "select.onnx"):
        (tmp_path / name).write_bytes((export / name).read_bytes())
    spec = json.loads((export / "policy.json").read_text())
    del spec["composition"]["wrench"]
    (tmp_path / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="composition.wrench and the network must agree") as info:
        load_runner(tmp_path, sources=SOURCES)
    assert "\n" not in str(info.value)
    # the export needs the sensor's description for a selector that reads one
    cfg, policy, agent, _ = load_expo(run)
    with pytest.raises(ExportError, match="needs its sensor description"):
        export_candidates_policy(tmp_path / "x", policy, ActionSelector(agent, policy), "action", 2, spec, obs,
                                 {"robot": "t"})
