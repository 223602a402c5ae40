import json
from dataclasses import replace

import onnx
import pytest
import torch

from deploy.onnx_io import onnx_session
from robot_rl.algorithms.sac import SACConfig
from robot_rl.commands.train import run_training
from robot_rl.config import TrainConfig, get_preset
from robot_rl.curriculum import Curriculum, CurriculumConfig
from robot_rl.runners.apg import APGRunner
from robot_rl.runners.off_policy import OffPolicyRunner
from robot_rl.runs import load_actor, make_runner
from sim.quadrotor import RewardWeights, reward_from_terms
from tests.robot_rl.point_mass import PointMassEnv


def tiny(algorithm="td3", steps=640) -> TrainConfig:
    cfg = TrainConfig(preset="test", algorithm=algorithm, seed=3)
    cfg.task.num_envs = 8
    for c in (cfg.td3, cfg.sac, cfg.ppo):
        c.actor_hidden, c.critic_hidden = (16,), (16,)
    o = cfg.off_policy
    o.total_env_steps, o.buffer_capacity, o.critic_starts, o.actor_starts = steps, 4096, 160, 240
    o.updates_per_step, o.batch_size = 0.25, 32
    cfg.on_policy.total_env_steps, cfg.on_policy.steps_per_env = steps, 8
    cfg.apg.actor_hidden, cfg.apg.horizon = (16,), 10
    cfg.curriculum = CurriculumConfig(every=200)
    cfg.log_every = 160
    cfg.evaluation.episodes = 16
    cfg.evaluation.robustness = (0.1,)
    return cfg


def test_curriculum_schedule_and_caps():
    cur = Curriculum(CurriculumConfig(every=100), RewardWeights())
    assert cur.update(99) is None
    w = cur.update(100)
    assert w.action == pytest.approx(0.014) and w.position == pytest.approx(6.0)
    assert w.linear_velocity == pytest.approx(0.014)
    w = cur.weights_at(40)
    assert w.action == 1.0 and w.position == 40.0 and w.linear_velocity == 1.0 and w.orientation == 5.0


def test_replay_rewards_recomputed_after_curriculum_step(tmp_path):
    runner = OffPolicyRunner(tiny(), tmp_path)
    for _ in range(24):  # 192 env steps: stage 0
        runner._iteration()
    buf = runner.buffer
    before = buf.data["reward"][: buf.size].clone()
    torch.testing.assert_close(before, reward_from_terms(buf.data["reward_terms"][: buf.size], RewardWeights()))
    runner._iteration()  # crosses 200 env steps -> stage 1 weights
    new_w = runner.curriculum.weights_at(1)
    assert runner.env.reward_weights == new_w
    after = buf.data["reward"][: buf.size]
    torch.testing.assert_close(after, reward_from_terms(buf.data["reward_terms"][: buf.size], new_w))
    assert not torch.allclose(after[: len(before)], before)


@pytest.mark.parametrize("algorithm", ["td3", "sac", "td3-fused", "sac-fused", "sac-explicit", "sac-explicit-delayed",
                                       "ppo", "ppo-normalized", "apg"])
def test_resume_reaches_the_same_weights(tmp_path, algorithm):
    delayed = algorithm.endswith("-delayed")  # the actor on every 3rd update: the schedule resumes mid-period
    algorithm = algorithm.removesuffix("-delayed")
    cfg = tiny(algorithm.removesuffix("-normalized").removesuffix("-fused").removesuffix("-explicit"))
    cfg.ppo.empirical_normalization = algorithm.endswith("-normalized")
    cfg.td3.fused = cfg.sac.fused = algorithm.endswith("-fused")  # the opt-in fast update paths resume too
    cfg.sac.explicit = algorithm.endswith("-explicit")
    if delayed:
        cfg.sac.policy_delay = 3
    full = make_runner(cfg, tmp_path / "a")
    full.train()
    part = make_runner(cfg, tmp_path / "b")
    part.train(stop_at=320)
    del part
    resumed = make_runner(cfg, tmp_path / "b")
    resumed.load(tmp_path / "b" / "checkpoint")
    assert resumed.env_steps == 320
    resumed.train()
    for (k, a), (_, b) in zip(full.actor.state_dict().items(), resumed.actor.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("algorithm", ["td3", "sac", "ppo"])
def test_asymmetric_critics_read_the_actors_action_history(tmp_path, algorithm):
    runner = make_runner(tiny(algorithm), tmp_path)
    critic = runner.algo.critic
    in_dim = critic.linears[0].in_features if algorithm == "ppo" else critic.weights[0].shape[1]
    action = 0 if algorithm == "ppo" else 4  # Q(critic_obs, a) vs V(critic_obs)
    assert in_dim == runner.env.obs_dims["critic"] + action == 28 + 4 * 32 + action
    runner._iteration()
    obs = runner.obs
    assert torch.equal(obs["critic"][:, 28:], obs["policy"][:, 18:])


def test_td3_learns_point_mass_in_fixed_steps(tmp_path):
    cfg = tiny("td3", steps=3000)
    cfg.td3.actor_hidden, cfg.td3.critic_hidden, cfg.td3.activation = (32, 32), (32, 32), "relu"
    cfg.td3.gamma, cfg.td3.tau, cfg.td3.weight_decay = 0.9, 0.05, 0.0
    cfg.off_policy.critic_starts, cfg.off_policy.actor_starts, cfg.off_policy.updates_per_step = 500, 500, 0.5
    cfg.off_policy.buffer_capacity, cfg.off_policy.batch_size = 4000, 64
    cfg.curriculum = CurriculumConfig(every=0)
    env = PointMassEnv(16, seed=0)
    runner = OffPolicyRunner(cfg, tmp_path, env=env)
    runner.train()
    with torch.no_grad():
        test = PointMassEnv(256, seed=99)
        obs = test.reset(seed=99)
        for _ in range(40):
            obs, *_ = test.step(runner.actor(obs["policy"]))
    assert test.x[:, 0].abs().median() < 0.1  # initial |x| ~ U(0, 1): median 0.5


def test_apg_learns_point_mass_in_fixed_updates(tmp_path):
    cfg = tiny("apg", steps=16 * 20 * 60)  # 60 updates of 16 envs x 20 steps
    cfg.apg.actor_hidden, cfg.apg.activation, cfg.apg.horizon, cfg.apg.lr = (32,), "tanh", 20, 1e-2
    cfg.curriculum = CurriculumConfig(every=0)
    runner = APGRunner(cfg, tmp_path, env=PointMassEnv(16, seed=0))
    runner.train()
    assert runner.algo.num_updates == 60
    with torch.no_grad():
        test = PointMassEnv(256, seed=99)
        obs = test.reset(seed=99)
        for _ in range(40):
            obs, *_ = test.step(runner.actor(obs["policy"]))
    assert test.x[:, 0].abs().median() < 0.1


def test_apg_gradient_flows_through_the_simulator():
    from robot_rl.algorithms.apg import APG, APGConfig
    from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig

    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=4, noise=False), seed=0)
    obs = env.reset(seed=0)
    algo = APG(APGConfig(actor_hidden=(8,), horizon=5), 146, 4, env.hover_action)
    total = 0
    for _ in range(5):
        obs, r, *_ = env.step(algo.actor(obs["policy"]))
        total = total + r.mean()
    assert env.state.requires_grad
    total.backward()
    g = algo.actor.linears[0].weight.grad
    assert g is not None and g.abs().sum() > 0  # through dynamics and the observation, not only the action cost
    env.detach()
    assert not env.state.requires_grad and not env.history.requires_grad


def test_train_exports_and_evaluates(tmp_path):
    cfg = tiny("td3")
    cfg.task.episode_length = 50
    out = run_training(cfg, tmp_path)
    assert out["export_max_abs_error"] <= 1e-5
    spec = json.loads((tmp_path / "export" / "policy.json").read_text())
    assert spec["training"]["seed"] == 3 and spec["task"] == "test" and spec["action"]["type"] == "motor_rpm"
    assert (tmp_path / "report.md").read_text().count("![") == 3
    _, actor, meta = load_actor(tmp_path)
    assert meta["env_steps"] == 640
    assert {"survival", "settle", "passed"} <= set(out["eval"])


def test_ppo_empirical_normalization_is_trained_and_folded_into_the_exported_first_layer(tmp_path):
    cfg = tiny("ppo")
    cfg.ppo.empirical_normalization = True
    cfg.task.episode_length = 50
    out = run_training(cfg, tmp_path)
    assert out["export_max_abs_error"] <= 1e-5  # torch (normaliser + MLP) vs onnxruntime (folded Gemm)
    spec = json.loads((tmp_path / "export" / "policy.json").read_text())
    assert spec["network"]["normalization"] == "folded into the first layer"
    _, actor, _ = load_actor(tmp_path)
    norm = actor.normalizer
    assert int(norm.count) == 640  # every rollout observation, nothing else
    assert norm.mean.abs().max() > 0.05 and (norm.std - 1).abs().max() > 0.05
    # the checkpointed statistics reach the export: a policy without them gives other actions
    model = onnx.load(str(tmp_path / "export" / "policy.onnx"))
    obs = torch.randn(256, norm.mean.numel()) * 0.3 + norm.mean
    onnx_action = onnx_session(model).run(["action"], {"obs": obs.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(onnx_action), actor(obs), atol=1e-5, rtol=0)
        unnormalized = actor.net(obs).clamp(-1, 1)
    assert (torch.from_numpy(onnx_action) - unnormalized).abs().max() > 1e-2


def test_presets_registered():
    assert get_preset("paper-td3").off_policy.total_env_steps == 300_000
    assert not get_preset("paper-td3").task.critic_actor_inputs  # the paper's 28-dim critic
    assert get_preset("paper-td3").td3.fused  # the fast path: as good over 4 seeds (benchmarks/README.md)
    assert TrainConfig().task.critic_actor_inputs  # the default for sac, ppo and new presets
    assert get_preset("crazyflie-hover").algorithm == "apg"
    assert get_preset("crazyflie-hover-td3").algorithm == "td3"
    assert get_preset("crazyflie-hover-sac").algorithm == "sac"
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_the_precise_sac_hover_preset_is_the_settle_schedule_with_the_bonus_and_wide_critics():
    settle, precise = get_preset("crazyflie-hover-sac-settle"), get_preset("crazyflie-hover-sac-precise")
    assert precise.sac.critic_hidden == (256, 256) and precise.sac.actor_hidden == settle.sac.actor_hidden
    oc = precise.off_policy
    assert (oc.precision_bonus, oc.precision_width, oc.precision_term) == (5.0, 0.15, "position")
    assert (precise.task.reward.position, precise.task.reward.constant) == (5.0, 6.0)
    assert precise.curriculum.caps["position"] == 40.0 and precise.curriculum.every == settle.curriculum.every
    assert precise.keep_best and oc.lr_decay_start == settle.off_policy.lr_decay_start
    assert precise.passes_in_a_row == 2 and settle.passes_in_a_row == 1
    assert precise.sac.explicit and not settle.sac.explicit  # measured on the explicit update (benchmarks/README.md)


def test_in_training_evaluations_select_on_their_own_episodes(tmp_path, monkeypatch):
    """The stop is chosen on ``selection_seed``'s episodes; the held-out ``seed`` is left for the confirmation."""
    from sim.registry import TaskSpec

    seeds = []
    real = TaskSpec.evaluate
    monkeypatch.setattr(TaskSpec, "evaluate", lambda *a, **kw: (r := real(*a, **kw), seeds.append(r["seed"]))[0])
    cfg = tiny("apg", steps=320)
    cfg.task.episode_length, cfg.eval_every, cfg.eval_episodes_during_training = 20, 80, 4
    cfg.stop_when_passed = True
    cfg.evaluation.survival_bar = cfg.evaluation.settle_bar = 0.0  # the first evaluation passes
    out = make_runner(cfg, tmp_path / "run").train()
    ecfg = cfg.evaluation
    assert seeds == [ecfg.selection_seed] and ecfg.selection_seed != ecfg.seed
    assert out["first_pass"]["seed"] == ecfg.selection_seed and out["first_pass"]["episodes"] == 4
    assert out["env_steps"] == 80
    cfg.evaluation.selection_seed = cfg.evaluation.seed
    with pytest.raises(ValueError, match="held-out episodes must differ"):
        make_runner(cfg, tmp_path / "same")


def test_the_fast_sac_hover_preset_is_the_precise_one_with_smaller_critics_a_shorter_discount_margin_delay_fused():
    precise, fast = get_preset("crazyflie-hover-sac-precise"), get_preset("crazyflie-hover-sac-fast")
    assert (fast.sac.critic_hidden, fast.sac.gamma, fast.selection_margin) == ((128, 128), 0.975, 0.01)
    assert (fast.off_policy.batch_size, fast.off_policy.total_env_steps, fast.off_policy.buffer_capacity) == (
        32, 400_000, 400_000)
    assert precise.selection_margin == 0.0 and TrainConfig().selection_margin == 0.0
    assert (fast.sac.policy_delay, precise.sac.policy_delay) == (4, 1)
    assert fast.sac.fused_collect and not precise.sac.fused_collect and not SACConfig().fused_collect
    assert (fast.sac.update_threads, precise.sac.update_threads) == (2, 1)
    fast.sac.critic_hidden, fast.sac.gamma, fast.selection_margin = (256, 256), precise.sac.gamma, 0.0
    fast.sac.policy_delay, fast.sac.fused_collect, fast.sac.update_threads = precise.sac.policy_delay, False, 1
    po = precise.off_policy
    fast.off_policy.batch_size, fast.off_policy.total_env_steps = po.batch_size, po.total_env_steps
    fast.off_policy.buffer_capacity = po.buffer_capacity
    fast.preset = precise.preset
    assert fast == precise


@pytest.mark.parametrize("margin, first_pass_at", [(0.0, 80), (0.01, 160)])
def test_selection_margin_raises_the_bars_of_in_training_evaluations_only(tmp_path, monkeypatch, margin,
                                                                           first_pass_at):
    """With ``selection_margin`` an in-training evaluation passes only that far above each bar: 95.5 % survival
    passes the 95 % bar, not 95 % + 0.01; the held-out bars themselves are unchanged."""
    from sim.registry import TaskSpec

    survival = iter([0.955, 0.97, 0.97, 0.97])
    real = TaskSpec.evaluate
    monkeypatch.setattr(TaskSpec, "evaluate", lambda *a, **kw: real(*a, **kw) | {"survival": next(survival),
                                                                                  "settle": 0.95})
    cfg = tiny("apg", steps=320)
    cfg.task.episode_length, cfg.eval_every, cfg.eval_episodes_during_training = 20, 80, 4
    cfg.stop_when_passed, cfg.selection_margin = True, margin
    runner = make_runner(cfg, tmp_path / "run")
    out = runner.train()
    assert out["first_pass"]["env_steps"] == first_pass_at and out["env_steps"] == first_pass_at
    assert (runner.selection_bars.survival_bar, runner.selection_bars.settle_bar) == (0.95 + margin, 0.90 + margin)
    assert (cfg.evaluation.survival_bar, cfg.evaluation.settle_bar) == (0.95, 0.90)
    assert runner.selection_bars.seed == cfg.evaluation.seed
    with pytest.raises(ValueError, match="selection_margin: need 0 <= margin < 1"):
        make_runner(replace(cfg, selection_margin=-0.01), tmp_path / "neg")


def test_apg_episode_length_truncates_training_episodes_only():
    """``apg.episode_length`` shortens the training env's episodes (more starts per update); the task config
    that evaluation and export read keeps its own length, and 0 leaves the env as before."""
    from robot_rl.runners.base import make_env

    cfg = get_preset("crazyflie-hover-robust")
    cfg.task.num_envs = 4
    cfg.task.init_guidance = 1.0  # start at the target: no crash before the truncation
    assert make_env(cfg).max_episode_steps == cfg.task.episode_length == 500
    cfg.apg.episode_length = 7
    env = make_env(cfg)
    assert env.max_episode_steps == 7 and cfg.task.episode_length == 500
    env.reset(seed=0)
    hover = torch.full((4, 4), float(env.hover_action))
    for t in range(7):
        _, _, terminated, truncated, _ = env.step(hover)
        assert not terminated.any() and bool(truncated.all()) == (t == 6)
    cfg.apg.episode_length = -1
    with pytest.raises(ValueError, match="apg.episode_length"):
        make_env(cfg)
