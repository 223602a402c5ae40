"""Named training presets (``robot-rl train <preset>``)."""

from __future__ import annotations

from robot_rl.config import TrainConfig, register
from robot_rl.curriculum import CurriculumConfig


@register("paper-td3", "The L2F paper's TD3: 1 env, 300k steps, critic every 10 / actor every 20 steps")
def paper_td3() -> TrainConfig:
    return TrainConfig(algorithm="td3")


@register("crazyflie-hover", "TD3 with 16 parallel envs and a stronger position cost (best recipe so far)")
def crazyflie_hover() -> TrainConfig:
    cfg = TrainConfig(algorithm="td3")
    cfg.task.num_envs = 16
    cfg.off_policy.updates_per_step = 0.2
    cfg.task.reward.position = 20.0
    cfg.task.reward.linear_velocity = 0.1
    cfg.curriculum = CurriculumConfig(every=60_000)
    cfg.eval_every = 50_000
    return cfg
