import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import ResidualActor, ResidualExecutor, ResiPConfig
from robot_rl.runners.resip import ResiPRunner
from tests.robot_rl.residual.toy import BiasedChunkPolicy, ToyReachEnv, assert_runs_as_the_base, tiny_diffusion


def _runner(tmp_path, n=8, policy=None, **kw):
    cfg = ResiPConfig(base="toy", seed=0, num_envs=n, steps_per_env=16, log_every=0, checkpoint_every=0, **kw)
    base = FrozenChunkBase(policy if policy is not None else tiny_diffusion(), n, seed=0)
    return ResiPRunner(cfg, tmp_path, env=ToyReachEnv(n, seed=0), base=base)


def test_zero_init_first_actions_bit_identical_to_base():
    # a base whose normaliser is not the identity: the composition must still return its actions exactly
    policy = tiny_diffusion()
    policy.act_norm.mid.fill_(0.1)
    policy.act_norm.span.fill_(0.7)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (32, 32), 0.1, -1.0, False)
    assert_runs_as_the_base(policy, actor)
    assert torch.count_nonzero(actor.net[-1].weight) == 0 and actor.net[-1].bias is None


def test_scale_and_clipping_in_normalised_space():
    policy = BiasedChunkPolicy()
    policy.act_norm.mid.fill_(0.5)
    policy.act_norm.span.fill_(2.0)
    actor = ResidualActor(policy.obs_norm, policy.act_norm, (8,), 0.25, -1.0, False)
    an = torch.tensor([[0.0, 0.9], [-0.95, 0.5]])
    r = torch.tensor([[1.0, 1.0], [-1.0, -2.0]])
    assert torch.allclose(actor.compose(an, r), torch.tensor([[0.25, 1.0], [-1.0, 0.0]]))
    raw = actor.compose_raw(0.5 + 2.0 * an, r)
    assert torch.allclose(raw, 0.5 + 2.0 * torch.tensor([[0.25, 1.0], [-1.0, 0.0]]))


def test_critic_reads_privileged_group_actor_does_not(tmp_path):
    runner = _runner(tmp_path)
    algo = runner.algo
    assert algo.actor.net[0].in_features == 4 + 2  # policy group + base action
    assert algo.critic[1][0].in_features == 6  # the critic group (goal - p is only there)
    seen = {}
    update = algo.update

    def spy(batch):
        seen.update(batch)
        return update(batch)

    algo.update = spy
    env_obs = []
    step = runner.env.step

    def record(action):
        env_obs.append({k: v.clone() for k, v in runner.obs.items()})
        return step(action)

    runner.env.step = record
    runner._iteration()
    assert torch.equal(seen["obs"], torch.cat([o["policy"] for o in env_obs]).view(16, 8, 4).flatten(0, 1))
    assert torch.equal(seen["critic_obs"], torch.stack([o["critic"] for o in env_obs]).flatten(0, 1))
    # changing only privileged inputs changes the value, never the residual
    obs, an = seen["obs"][:4], seen["base_action"][:4]
    assert torch.equal(algo.actor(obs, an), algo.actor(obs.clone(), an))


def test_exploration_is_scaled_residual_noise(tmp_path):
    runner = _runner(tmp_path, n=4, policy=BiasedChunkPolicy(), scale=0.2)
    base, actor = runner.base, runner.actor
    a_base = base.act()
    r, _ = runner.algo.act(runner.obs["policy"], base.normalize_action(a_base))
    assert 0.1 < float(r.std()) < 0.7  # std exp(-1) before the scale
    diff = actor.compose_raw(a_base, r) - a_base
    inside = (a_base + 0.2 * r).abs() < 1
    assert torch.allclose(diff[inside], 0.2 * r[inside], atol=1e-6)


def test_resume_continues_bit_identically(tmp_path):
    full = _runner(tmp_path / "full")
    full.cfg.total_env_steps = 3 * 128
    full.train()
    part = _runner(tmp_path / "part")
    part.cfg.total_env_steps = 3 * 128
    part.train(stop_at=128)
    resumed = _runner(tmp_path / "part")
    resumed.cfg.total_env_steps = 3 * 128
    resumed.load(tmp_path / "part" / "checkpoint")
    resumed.train()
    assert resumed.env_steps == full.env_steps == 384
    for k, v in full.algo.actor.state_dict().items():
        assert torch.equal(v, resumed.algo.actor.state_dict()[k]), k
    for k, v in full.algo.critic.state_dict().items():
        assert torch.equal(v, resumed.algo.critic.state_dict()[k]), k
    assert torch.equal(full.base.history, resumed.base.history)


def _success(policy, actor, episodes=200, seed=123):
    env = ToyReachEnv(episodes, seed=seed)
    ex = ResidualExecutor(FrozenChunkBase(policy, episodes, seed=0), actor)
    obs, done, ok = env.reset(seed)["policy"], torch.zeros(episodes, dtype=torch.bool), torch.zeros(episodes,
                                                                                                     dtype=torch.bool)
    for _ in range(env.max_episode_steps):
        obs, _, _, _, info = env.step(ex(obs))
        obs = obs["policy"]
        ok |= info["done_mask"] & ~done & info["success"]
        done |= info["done_mask"]
    return float(ok.float().mean())


def test_residual_corrects_a_biased_base(tmp_path):
    policy = BiasedChunkPolicy(offset=(0.3, -0.1))
    runner = _runner(tmp_path, n=32, policy=policy, scale=0.5, total_env_steps=32 * 16 * 40, epochs=5,
                     actor_hidden=(64, 64), critic_hidden=(64, 64), actor_lr=1e-3)
    before = _success(policy, None)
    runner.train()
    after = _success(policy, runner.actor)
    print(before, after)
    assert before < 0.3 and after > 0.8
