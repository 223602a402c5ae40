"""A ResiP residual that also reads the ``wrench`` observation group (``robot-rl train resip --wrench``)."""

import pytest
import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import WRENCH_DIM, ResidualActor, ResidualExecutor, ResiPConfig
from robot_rl.runners.resip import ResiPRunner
from sim.evaluation import policy_input
from tests.robot_rl.residual.toy import ToyReachEnv, tiny_diffusion


class ToyWrenchEnv(ToyReachEnv):
    """The toy task plus a ``wrench`` group: a made-up 6-D "contact" reading (goal - p, scaled, and its square)."""

    def __init__(self, num_envs: int = 8, seed: int = 0) -> None:
        super().__init__(num_envs, seed)
        self.obs_dims = {**self.obs_dims, "wrench": WRENCH_DIM}

    def _obs(self):
        obs = super()._obs()
        d = 30.0 * (self.goal - self.p)
        obs["wrench"] = torch.cat((d, d.pow(2), d[:, :1] * d[:, 1:], torch.ones(len(d), 1)), 1)
        return obs


def _actor(policy, wrench_dim, seed=0):
    torch.manual_seed(seed)
    return ResidualActor(policy.obs_norm, policy.act_norm, (32, 32), 0.1, -1.0, False, wrench_dim=wrench_dim)


def test_new_input_weights_zero_and_the_rest_as_the_memoryless_actor():
    policy = tiny_diffusion()
    plain, wrench = _actor(policy, 0), _actor(policy, WRENCH_DIM)
    w, w0 = wrench.net[0].weight, plain.net[0].weight
    assert w.shape[1] == w0.shape[1] + WRENCH_DIM
    assert torch.equal(w[:, :w0.shape[1]], w0) and torch.count_nonzero(w[:, w0.shape[1]:]) == 0
    for a, b in zip(list(plain.state_dict().items())[1:], list(wrench.state_dict().items())[1:], strict=False):
        if a[0] == b[0] and a[0] != "net.0.weight":
            assert torch.equal(a[1], b[1]), a[0]


def test_wrench_residual_starts_at_the_base_bit_for_bit():
    policy = tiny_diffusion()
    policy.act_norm.mid.fill_(0.1)
    policy.act_norm.span.fill_(0.7)
    actor = _actor(policy, WRENCH_DIM)
    actor.wrench_norm.update(torch.randn(64, WRENCH_DIM) * 5)  # non-trivial statistics change nothing either
    env_a, env_b = ToyWrenchEnv(6, seed=1), ToyWrenchEnv(6, seed=1)
    with_res = ResidualExecutor(FrozenChunkBase(policy, 6, seed=3), actor)
    base_only = ResidualExecutor(FrozenChunkBase(policy, 6, seed=3), None)
    assert with_res.obs_groups == ("policy", "wrench") and base_only.obs_groups == ("policy",)
    oa, ob = env_a.reset(2), env_b.reset(2)
    for _ in range(7):
        a, b = with_res(policy_input(with_res, oa)), base_only(policy_input(base_only, ob))
        assert torch.equal(a, b)
        oa, ob = env_a.step(a)[0], env_b.step(b)[0]


def test_actor_reads_policy_and_wrench_never_the_critic_group(tmp_path):
    n = 8
    cfg = ResiPConfig(base="toy", seed=0, num_envs=n, steps_per_env=16, log_every=0, checkpoint_every=0, wrench=True,
                      actor_hidden=(32, 32), critic_hidden=(32, 32))
    runner = ResiPRunner(cfg, tmp_path, env=ToyWrenchEnv(n, seed=0), base=FrozenChunkBase(tiny_diffusion(), n, 0))
    algo = runner.algo
    assert algo.actor.net[0].in_features == 4 + 2 + WRENCH_DIM  # policy group + base action + wrench
    assert algo.critic[1][0].in_features == 6
    seen, update = {}, algo.update

    def spy(batch):
        seen.update(batch)
        return update(batch)

    algo.update = spy
    runner._iteration()
    assert seen["wrench"].shape == (16 * n, WRENCH_DIM)
    assert int(algo.actor.wrench_norm.count) == 16 * n
    # the actor's output does not depend on the critic group: same inputs, any critic obs
    obs, an, wr = seen["obs"][:5], seen["base_action"][:5], seen["wrench"][:5]
    assert torch.equal(algo.actor(obs, an, None, wr), algo.actor(obs.clone(), an.clone(), None, wr.clone()))
    with pytest.raises(ValueError, match="wrench"):
        algo.actor(obs, an)


def test_runner_refuses_an_env_without_the_wrench_group(tmp_path):
    cfg = ResiPConfig(base="toy", seed=0, num_envs=4, steps_per_env=4, log_every=0, checkpoint_every=0, wrench=True)
    with pytest.raises(ValueError, match="wrench"):
        ResiPRunner(cfg, tmp_path, env=ToyReachEnv(4, seed=0), base=FrozenChunkBase(tiny_diffusion(), 4, 0))


def test_policy_input_concatenates_declared_groups():
    obs = {"policy": torch.zeros(2, 3), "wrench": torch.ones(2, 6), "critic": torch.full((2, 5), 7.0)}

    class P:
        obs_groups = ("policy", "wrench")

    assert torch.equal(policy_input(object(), obs), obs["policy"])
    assert torch.equal(policy_input(P(), obs), torch.cat((obs["policy"], obs["wrench"]), 1))
    with pytest.raises(ValueError, match="wrench"):
        policy_input(P(), {"policy": obs["policy"]})


def test_resume_continues_bit_identically_with_the_wrench(tmp_path):
    def runner(d):
        cfg = ResiPConfig(base="toy", seed=0, num_envs=8, steps_per_env=8, log_every=0, checkpoint_every=0,
                          wrench=True, total_env_steps=3 * 64, actor_hidden=(32,), critic_hidden=(32,))
        return ResiPRunner(cfg, d, env=ToyWrenchEnv(8, seed=0), base=FrozenChunkBase(tiny_diffusion(), 8, 0))

    full = runner(tmp_path / "full")
    full.train()
    runner(tmp_path / "part").train(stop_at=64)
    resumed = runner(tmp_path / "part")
    resumed.load(tmp_path / "part" / "checkpoint")
    resumed.train()
    for k, v in full.algo.actor.state_dict().items():
        assert torch.equal(v, resumed.algo.actor.state_dict()[k]), k
    assert int(resumed.algo.actor.wrench_norm.count) == 3 * 64
