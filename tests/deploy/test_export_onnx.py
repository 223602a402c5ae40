import json

import numpy as np
import onnx
import pytest
import torch

from deploy import contract
from deploy.export.policy import ExportError, export_policy
from deploy.onnx_io import onnx_session
from robot_rl.models import MLP
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig


@pytest.fixture(scope="module")
def env_and_obs():
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=64), seed=0)
    return env, env.reset(seed=0)["policy"].numpy()


def spec_of(env):
    s = env.export_spec()
    return {k: s[k] for k in ("observation", "action", "control_rate_hz")}


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "fast_tanh"])
@pytest.mark.parametrize("output", ["tanh", "clip", "identity"])
def test_export_matches_torch_and_writes_contract(tmp_path, env_and_obs, activation, output):
    env, obs = env_and_obs
    torch.manual_seed(0)
    net = MLP(146, [32, 32], 4, activation, output)
    mean, std = torch.randn(146) * 0.1, torch.rand(146) + 0.5
    doc = export_policy(tmp_path, net.graph(mean, std), lambda x: net((x - mean) / std), spec_of(env), obs,
                        {"robot": "crazyflie", "task": "test"})
    assert doc["verification"]["max_abs_error_random"] <= 1e-5
    spec = contract.load(tmp_path)
    assert [c["name"] for c in spec["observation"]] == [
        "position", "rotation_matrix", "linear_velocity", "angular_velocity", "action_history"]
    assert spec["action"]["type"] == "motor_rpm" and spec["control_rate_hz"] == 100.0
    model = onnx.load(tmp_path / "policy.onnx")
    assert [i.name for i in model.graph.input] == ["obs"] and [o.name for o in model.graph.output] == ["action"]
    sess = onnx_session(tmp_path / "policy.onnx")
    x = np.asarray(spec["test_vector"]["example_input"], dtype=np.float32)
    y = sess.run(None, {"obs": x})[0]
    np.testing.assert_allclose(y, np.asarray(spec["test_vector"]["example_output"], np.float32), atol=0, rtol=0)
    with torch.no_grad():
        np.testing.assert_allclose(y, net((torch.from_numpy(x) - mean) / std).numpy(), atol=1e-5)


def test_export_fails_when_torch_and_onnx_disagree(tmp_path, env_and_obs):
    env, obs = env_and_obs
    net = MLP(146, [16], 4, "relu", "tanh")
    with pytest.raises(ExportError, match="differs from torch"):
        export_policy(tmp_path, net.graph(), lambda x: net(x) + 1e-3, spec_of(env), obs, {})
    assert not (tmp_path / "policy.onnx").exists()


def test_export_rejects_observation_size_mismatch(tmp_path, env_and_obs):
    env, obs = env_and_obs
    net = MLP(140, [16], 4, "relu", "tanh")
    with pytest.raises(ExportError, match="sum to 146"):
        export_policy(tmp_path, net.graph(), net, spec_of(env), obs[:, :140], {})


def test_contract_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        contract.load(tmp_path)
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(contract.ContractError, match="not valid JSON"):
        contract.load(tmp_path)
    (tmp_path / "policy.json").write_text(json.dumps({"format": "robot-rl-policy", "format_version": 1,
                                                      "observation": [{"name": "wings", "size": 2}]}))
    with pytest.raises(contract.ContractError, match="unknown observation component 'wings'"):
        contract.load(tmp_path)
