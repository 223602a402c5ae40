"""Named training presets (``robot-rl train <preset>``)."""

from __future__ import annotations

from robot_rl.config import TrainConfig, register
from robot_rl.curriculum import CurriculumConfig
from sim.quadrotor.config import RewardWeights


@register("paper-td3", "The L2F paper's TD3: 1 env, 300k steps, critic every 10 / actor every 20 steps")
def paper_td3() -> TrainConfig:
    return TrainConfig(algorithm="td3")


@register("crazyflie-hover", "Analytic policy gradient through the differentiable simulator (fastest found)")
def crazyflie_hover() -> TrainConfig:
    cfg = TrainConfig(algorithm="apg")
    # 64 envs x 100 steps per update: on the CPU the per-step cost is mostly fixed (hand-written BPTT on the
    # differentiable fused env), and more envs per update hardly cut the number of updates to the bar
    cfg.task.num_envs = 64
    cfg.apg.horizon = 100
    cfg.apg.lr, cfg.apg.lr_final = 8e-3, 1e-4
    # the curriculum's end point from the start: with exact gradients there is no exploration to protect
    cfg.task.reward = RewardWeights(position=40.0, orientation=5.0, linear_velocity=0.5, angular_velocity=0.05,
                                    action=0.05)
    cfg.curriculum = CurriculumConfig(every=0)
    steps_per_update = 64 * 100
    cfg.on_policy.total_env_steps = steps_per_update * 600
    cfg.eval_every = steps_per_update * 10
    cfg.eval_episodes_during_training = 256  # the full protocol: the first pass is a pass of `robot-rl eval`
    cfg.checkpoint_every = steps_per_update * 50
    cfg.log_every = steps_per_update * 5
    return cfg


@register("crazyflie-hover-td3", "TD3 with 16 parallel envs and the paper's curriculum (off-policy reference)")
def crazyflie_hover_td3() -> TrainConfig:
    cfg = TrainConfig(algorithm="td3")
    cfg.task.num_envs = 16
    cfg.off_policy.updates_per_step = 0.2
    cfg.eval_every = 50_000
    return cfg
