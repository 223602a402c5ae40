"""Named training presets (``robot-rl train <preset>``)."""

from __future__ import annotations

from robot_rl.config import TrainConfig, register
from robot_rl.curriculum import CurriculumConfig


@register("paper-td3", "The L2F paper's TD3: 1 env, 300k steps, critic every 10 / actor every 20 steps")
def paper_td3() -> TrainConfig:
    return TrainConfig(algorithm="td3")


@register("crazyflie-hover", "Fastest recipe found that passes the hover bar (see benchmarks/README.md)")
def crazyflie_hover() -> TrainConfig:
    cfg = TrainConfig(algorithm="td3")
    cfg.task.num_envs = 32
    cfg.off_policy.total_env_steps = 200_000
    cfg.off_policy.buffer_capacity = 200_000
    cfg.off_policy.critic_starts = 5_000
    cfg.off_policy.actor_starts = 10_000
    cfg.off_policy.updates_per_step = 1 / 16
    cfg.off_policy.batch_size = 512
    cfg.curriculum = CurriculumConfig(every=40_000)
    cfg.eval_every = 20_000
    return cfg
