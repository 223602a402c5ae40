"""The export alone (policy.onnx + policy.json) flies the same way in an independent implementation."""

import numpy as np
import torch

from deploy.export.policy import export_policy
from robot_rl.models import MLP
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig
from tests.deploy.l2f_numpy import IndependentQuadrotor


def test_exported_policy_flies_identically_in_independent_sim(tmp_path):
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=4, noise=False), seed=5)
    obs = env.reset(seed=5)
    torch.manual_seed(0)
    net = MLP(146, [32, 32], 4, "fast_tanh", "tanh")
    with torch.no_grad():  # a policy that keeps the drone roughly aloft, so the comparison lasts
        net.linears[-1].weight.mul_(0.05)
        net.linears[-1].bias.fill_(0.3)
    spec = env.export_spec()
    export_policy(tmp_path, net.graph(), net, {k: spec[k] for k in ("observation", "action", "control_rate_hz")},
                  obs["policy"].numpy(), {"robot": spec["robot"], "model": spec["model"]})
    sims = [IndependentQuadrotor(tmp_path) for _ in range(4)]
    states = [env.state[i].double().numpy().copy() for i in range(4)]
    forces, torques = env.force.double().numpy(), env.torque.double().numpy()
    steps = 0
    for t in range(60):
        ind_obs = np.stack([s.observe(x, np.zeros(3)) for s, x in zip(sims, states, strict=True)])
        np.testing.assert_allclose(ind_obs, obs["policy"].numpy(), atol=2e-4, err_msg=f"step {t}")
        actions = np.stack([s.act(o) for s, o in zip(sims, ind_obs, strict=True)])
        with torch.no_grad():
            obs, _, terminated, _, _ = env.step(net(obs["policy"]))
        states = [s.step(x, a, f, tq) for s, x, a, f, tq in zip(sims, states, actions, forces, torques, strict=True)]
        if terminated.any():  # the env resets that drone; compare up to here
            break
        steps += 1
    assert steps >= 20
    pos = np.stack([x[:3] for x in states])
    alive = ~terminated.numpy()
    np.testing.assert_allclose(pos[alive], env.state[alive, :3].double().numpy(), atol=1e-3)
