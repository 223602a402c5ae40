"""Chunked (diffusion) policies: the exported sampler against torch, and the runtime's chunk timing."""

import json
import threading

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deploy import contract
from deploy.chunked_runtime import ChunkedPolicyRunner, load_runner
from deploy.export.chunked import export_chunked_policy
from deploy.runtime import ModelError, PolicyRunner
from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer

SPEC = {
    "observation": [{"name": "joint_position", "size": 2, "valid_low": -3.0, "valid_high": 3.0},
                    {"name": "goal", "size": 2, "frame": "joint", "valid_low": -3.0, "valid_high": 3.0}],
    "action": {"type": "joint_position", "size": 2, "joints": ["j1", "j2"], "delta": False, "scale": 1.0,
               "offset": 0.0, "low": -1.0, "high": 1.0},
    "control_rate_hz": 50.0,
}
H, E = 8, 4


def _policy(denoiser: str, seed: int = 0) -> DiffusionPolicy:
    torch.manual_seed(seed)
    cfg = DiffusionConfig(horizon=H, n_action_steps=E, denoiser=denoiser, down_dims=(16, 32), step_embed_dim=16,
                          mlp_hidden=(32, 32), num_inference_steps=5)
    pol = DiffusionPolicy(cfg, 4, 2, MinMaxNormalizer(-np.ones(4), np.ones(4) * 2),
                          MinMaxNormalizer(np.array([-0.5, -1.0]), np.array([0.5, 1.0])))
    with torch.no_grad():  # make the EMA weights differ from the trained ones: the export must use the EMA copy
        for p in pol.denoiser.parameters():
            p.add_(0.1)
    return pol


@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory):
    d = tmp_path_factory.mktemp("dp_mlp")
    export_chunked_policy(d, _policy("mlp"), SPEC, np.random.default_rng(0).uniform(-1, 2, (32, 4)), {"robot": "t"})
    return d


def test_unet_sampler_export_matches_torch(tmp_path):
    pol = _policy("unet")
    doc = export_chunked_policy(tmp_path, pol, SPEC, np.random.default_rng(0).uniform(-1, 2, (32, 4)), {},
                                samples=16)
    assert doc["kind"] == "chunked" and doc["chunk"] == {**doc["chunk"], "observation_steps": 2, "horizon": H,
                                                          "execute": E, "sampler": "ddim", "steps": 5}
    assert doc["verification"]["max_abs_error_random"] <= 1e-5
    # independently: onnxruntime vs torch (EMA weights) with the same fresh noise
    sess = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    obs = rng.uniform(-1, 2, (3, 2, 4)).astype(np.float32)
    noise = rng.standard_normal((3, H, 2)).astype(np.float32)
    got = sess.run(["action"], {"obs": obs, "noise": noise})[0]
    with torch.no_grad():
        want = pol.sample(torch.as_tensor(obs), torch.as_tensor(noise), 5, denoiser=pol.ema.averaged).numpy()
        trained = pol.sample(torch.as_tensor(obs), torch.as_tensor(noise), 5, denoiser=pol.denoiser).numpy()
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(got - trained).max() > 1e-3  # the EMA copy, not the raw weights
    # one file of weights, not one per unrolled step
    n_params = sum(p.numel() for p in pol.denoiser.parameters())
    assert (tmp_path / "policy.onnx").stat().st_size < 4 * n_params * 1.5 + 200_000
    spec = json.loads((tmp_path / "policy.json").read_text())
    assert np.asarray(spec["test_vector"]["example_noise"]).shape[1:] == (H, 2)


def test_contract_checks_the_chunk_section(mlp_export):
    spec = json.loads((mlp_export / "policy.json").read_text())
    contract.validate(spec)
    bad = json.loads(json.dumps(spec))
    bad["chunk"]["execute"] = H + 1
    with pytest.raises(contract.ContractError, match="execute must not exceed"):
        contract.validate(bad)
    bad = json.loads(json.dumps(spec))
    del bad["test_vector"]["example_noise"]
    with pytest.raises(contract.ContractError, match="example_noise"):
        contract.validate(bad)


def _runner(d, **kw):
    r = ChunkedPolicyRunner(d, sources={"js": None}, **kw)
    assert r.verify_test_vector() <= 1e-5
    return r


def _feed(r, q, stamp):
    assert r.accept("js", stamp, received=0.0)
    r.view("joint_position")[:] = q
    r.view("goal")[:] = [0.5, 0.5]


def _base_steps(policy, obs_seq, rng):
    """Torch reference of the chunked runtime on its noise stream ``rng``: per step, the observation (the fed
    joints and the fixed goal) and the base action it executes (a chunk sampled every ``E`` steps from the last
    two observations)."""
    hist = chunk = None
    for t, q in enumerate(obs_seq):
        o = torch.as_tensor(np.concatenate([q, [0.5, 0.5]]).astype(np.float32))[None]
        hist = o.expand(2, -1)[None].clone() if hist is None else torch.cat((hist[:, 1:], o[:, None]), 1)
        if t % E == 0:
            noise = torch.as_tensor(rng.standard_normal((1, H, 2), dtype=np.float32))
            with torch.no_grad():
                chunk = policy.sample(hist, noise)
        yield o, chunk[:, t % E]


def _fake_sampler(r, log, gate=None, step_seconds=None, clock=None):
    """Chunk whose action k is (n + 0.01 k, -n - 0.01 k) for the n-th query; logs the step of each query."""
    def sample(obs, noise):
        n = len(log)
        log.append((r._t - 1, obs.copy()))
        if gate is not None:
            gate.wait(5.0)
        if step_seconds is not None:
            clock[0] += step_seconds
        k = np.arange(H, dtype=np.float32)[:, None] * 0.01
        return (np.array([[0.1 * n, -0.1 * n]], np.float32) + k * np.array([1, -1], np.float32))[None]
    r.sample = sample


def test_replan_point_and_history(mlp_export):
    r = _runner(mlp_export, deadline_s=float("inf"))
    assert isinstance(load_runner(mlp_export, sources={"js": None}), ChunkedPolicyRunner)
    log = []
    _fake_sampler(r, log)
    cmds = []
    for t in range(10):
        _feed(r, [0.01 * t, 0.0], t + 1)
        cmd, reason = r.step(0.0)
        assert reason is None
        cmds.append(cmd.copy())
    assert [s for s, _ in log] == [0, 4, 8]  # a new chunk every `execute` steps
    np.testing.assert_allclose(cmds[5], [0.1 + 0.01, -0.1 - 0.01], atol=1e-6)  # chunk 1, action 1
    np.testing.assert_allclose(cmds[9], [0.2 + 0.01, -0.2 - 0.01], atol=1e-6)
    # the history: at step 0 both rows are the first observation; at step 4 observations 3 and 4, oldest first
    np.testing.assert_allclose(log[0][1][0, :, 0], [0.0, 0.0])
    np.testing.assert_allclose(log[1][1][0, :, 0], [0.03, 0.04], atol=1e-7)


def test_async_replans_before_the_queue_runs_dry(mlp_export):
    r = _runner(mlp_export, asynchronous=True, replan_steps=2)
    log = []
    _fake_sampler(r, log)
    for t in range(3):
        _feed(r, [0.0, 0.0], t + 1)
        assert r.step(0.0)[1] is None
        # first chunk inline at step 0; the next one requested at step 2, with 2 of its 4 actions left
        assert (r._pending is None) == (t < 2) and r.chunks == 1
    assert r._pending[0] == 2
    r._pending[2].result()
    _feed(r, [0.0, 0.0], 4)
    cmd, reason = r.step(0.0)  # step 3 executes action 1 of the chunk sampled at step 2
    assert reason is None
    np.testing.assert_allclose(cmd, [0.1 + 0.01, -0.1 - 0.01], atol=1e-6)
    r.close()


def test_async_deadline_miss_holds_and_reports(mlp_export):
    r = _runner(mlp_export, asynchronous=True, replan_steps=1)
    log, gate = [], threading.Event()
    _fake_sampler(r, log)
    _feed(r, [0.3, -0.2], 1)
    r.step(0.0)  # first chunk, inline
    _fake_sampler(r, log, gate=gate)
    for t in range(1, 4):
        _feed(r, [0.3, -0.2], t + 1)
        assert r.step(0.0)[1] is None
    _feed(r, [0.3, -0.2], 5)
    cmd, reason = r.step(0.0)  # the queue ran dry, the sampler is still blocked
    assert "deadline missed" in reason
    np.testing.assert_array_equal(cmd, np.float32([0.3, -0.2]))  # hold the measured joint position
    assert r.stats()["late_steps"] == 1 and r.stats()["last_reason"] == reason
    gate.set()
    r._pending[2].result()
    _feed(r, [0.3, -0.2], 6)
    cmd, reason = r.step(0.0)  # sampled at step 3: step 5 runs its action 2
    assert reason is None
    np.testing.assert_allclose(cmd, [0.1 + 0.02, -0.1 - 0.02], atol=1e-6)
    r.close()


def test_sync_deadline_miss_holds_then_continues(mlp_export):
    clock = [0.0]
    r = _runner(mlp_export, deadline_s=0.01, clock=lambda: clock[0])
    log = []
    _fake_sampler(r, log, step_seconds=0.002, clock=clock)
    for t in range(4):
        _feed(r, [0.1, 0.1], t + 1)
        assert r.step(0.0)[1] is None
    _fake_sampler(r, log, step_seconds=0.05, clock=clock)  # 50 ms > 10 ms deadline
    _feed(r, [0.1, 0.1], 5)
    cmd, reason = r.step(0.0)
    assert "late" in reason and "50.0 ms" in reason
    np.testing.assert_array_equal(cmd, np.float32([0.1, 0.1]))
    _feed(r, [0.1, 0.1], 6)
    cmd, reason = r.step(0.0)
    assert reason is None
    np.testing.assert_allclose(cmd, [0.1 + 0.01, -0.1 - 0.01], atol=1e-6)  # the late chunk, from action 1
    assert r.stats()["late_steps"] == 1 and r.stats()["chunks"] == 2


def test_late_chunk_hold_of_a_lagging_arm_stays_within_the_rate_limit(mlp_export):
    """A late chunk holds the measured joints, reached within ``max_command_delta`` like any safe command: the arm
    lags its last target, and a jump back to the measurement is a velocity spike (libfranka aborts on it)."""
    clock = [0.0]
    r = _runner(mlp_export, deadline_s=0.01, clock=lambda: clock[0], max_command_delta=0.05)
    log = []
    _fake_sampler(r, log, step_seconds=0.002, clock=clock)
    cmds = []
    for t in range(4):  # measured (0.2, -0.2) throughout; chunk 0 targets (0.01 k, -0.01 k)
        _feed(r, [0.2, -0.2], t + 1)
        cmd, reason = r.step(0.0)
        assert reason is None
        cmds.append(cmd.copy())
    np.testing.assert_allclose(cmds, [[0.15, -0.15], [0.10, -0.10], [0.05, -0.05], [0.03, -0.03]], atol=1e-6)
    _fake_sampler(r, log, step_seconds=0.05, clock=clock)  # 50 ms > 10 ms deadline
    _feed(r, [0.2, -0.2], 5)
    cmd, reason = r.step(0.0)
    assert "late" in reason
    np.testing.assert_allclose(cmd, [0.08, -0.08], atol=1e-6)  # towards the measurement, not a 0.17 rad jump
    _feed(r, [0.2, -0.2], 6)
    cmd2, reason = r.step(0.0)
    assert reason is None
    np.testing.assert_allclose(cmd2, [0.1 + 0.01, -0.1 - 0.01], atol=1e-6)  # the late chunk resumes from action 1
    assert r.stats()["late_steps"] == 1


def test_temporal_ensembling_averages_overlapping_chunks(mlp_export):
    r = _runner(mlp_export, deadline_s=float("inf"), temporal_ensemble=0.0)
    log = []
    _fake_sampler(r, log)
    outs = []
    for t in range(6):
        _feed(r, [0.0, 0.0], t + 1)
        outs.append(r.step(0.0)[0].copy())
    # step 5: chunk 0 (start 0, action 5) and chunk 1 (start 4, action 1), equal weights
    want = ((0.0 + 0.05) + (0.1 + 0.01)) / 2
    np.testing.assert_allclose(outs[5], [want, -want], atol=1e-6)


def test_fault_drops_history_and_the_wrong_kind_is_refused(mlp_export, tmp_path):
    r = _runner(mlp_export, deadline_s=float("inf"))
    log = []
    _fake_sampler(r, log)
    _feed(r, [0.2, 0.2], 1)
    r.step(0.0)
    _feed(r, [np.nan, 0.2], 2)
    assert "non-finite" in r.step(0.0)[1]
    _feed(r, [0.4, 0.4], 3)
    r.step(0.0)
    assert [s for s, _ in log] == [0, 0]  # the run restarted: new chunk at step 0
    np.testing.assert_allclose(log[1][1][0, :, 0], [0.4, 0.4])  # history refilled with the new observation
    with pytest.raises(ModelError, match="replan_steps"):
        ChunkedPolicyRunner(mlp_export, sources={"js": None}, replan_steps=E)
    from deploy.export.examples import export_arm_example
    export_arm_example(tmp_path)
    assert type(load_runner(tmp_path, sources={"js": None})) is PolicyRunner
    with pytest.raises(ModelError, match="not 'chunked'"):
        ChunkedPolicyRunner(tmp_path)


def test_chunked_runtime_runs_without_torch(mlp_export):
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; sys.modules['torch'] = None\n"
            "from deploy.chunked_runtime import ChunkedPolicyRunner\n"
            f"r = ChunkedPolicyRunner({str(mlp_export)!r}, sources={{'js': None}})\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_flow_sampler_export_matches_torch(tmp_path):
    torch.manual_seed(1)
    cfg = DiffusionConfig(horizon=H, n_action_steps=E, denoiser="mlp", mlp_hidden=(32,), step_embed_dim=16,
                          objective="flow", num_inference_steps=3)
    pol = DiffusionPolicy(cfg, 4, 2)
    doc = export_chunked_policy(tmp_path, pol, SPEC, np.zeros((8, 4)), {}, samples=16)
    assert doc["chunk"]["sampler"] == "flow_euler" and doc["chunk"]["steps"] == 3
    ver = doc["verification"]
    assert max(ver["max_abs_error_random"], ver["max_abs_error_on_distribution"]) <= 1e-5
    assert ChunkedPolicyRunner(tmp_path, sources={"js": None}).verify_test_vector() <= 1e-5


def test_arm_profile_loads_a_chunked_export(mlp_export):
    from deploy.ros2.profiles import NodeConfig, make_profile

    p = make_profile(NodeConfig(profile="arm", model_path=str(mlp_export), joints=["j1", "j2"], goal=[0.5, 0.5]))
    assert isinstance(p.runner, ChunkedPolicyRunner) and p.runner.execute == E
