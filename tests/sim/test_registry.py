"""The task registry and the BatchedEnv capability defaults."""

from dataclasses import dataclass

import pytest
import torch

from sim.core import BatchedEnv, Unsupported
from sim.quadrotor import FusedQuadrotorHoverEnv, QuadrotorHoverEnv, QuadrotorTaskConfig
from sim.registry import get_task, register_task, task_names
from tests.robot_rl import reach_task  # noqa: F401  (registers point-reach)


@dataclass
class BareConfig:
    num_envs: int = 2
    device: str = "cpu"


class BareEnv(BatchedEnv):
    """Only reset and step: every optional capability is missing."""

    def __init__(self, cfg: BareConfig, seed: int = 0) -> None:
        self.num_envs, self.device, self.action_dim = cfg.num_envs, torch.device("cpu"), 1
        self.obs_dims, self.max_episode_steps, self.dt = {"policy": 1, "critic": 1}, 3, 0.1

    def reset(self, seed=None):
        return {"policy": torch.zeros(self.num_envs, 1), "critic": torch.zeros(self.num_envs, 1)}

    def step(self, action):
        obs = self.reset()
        done = torch.zeros(self.num_envs, dtype=torch.bool)
        return obs, torch.zeros(self.num_envs), done, done, {"final_obs": obs, "done_mask": done}


BARE = register_task("test-bare", config_cls=BareConfig, env_cls=BareEnv, description="bare test task")


def test_quadrotor_is_registered_with_its_backends():
    spec = get_task("quadrotor-hover")
    assert get_task("crazyflie") is spec and {"quadrotor-hover", "point-reach", "test-bare"} <= set(task_names())
    cfg = QuadrotorTaskConfig(num_envs=2)
    assert type(spec.make_env(cfg)) is QuadrotorHoverEnv  # the reference backend
    assert type(spec.make_env(cfg, impl="auto")) is FusedQuadrotorHoverEnv
    env = spec.make_env(cfg, impl="fused", differentiable=True)
    assert env.differentiable and env.task_name == "quadrotor-hover"
    with pytest.raises(ValueError, match="task 'quadrotor-hover' has no env implementation 'isaac'; choose"):
        spec.make_env(cfg, impl="isaac")
    with pytest.raises(TypeError, match="takes a QuadrotorTaskConfig"):
        spec.make_env(BareConfig())
    assert spec.export_spec(cfg)["action"]["type"] == "motor_rpm"


def test_unknown_task_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown task 'nope'; registered: .*quadrotor-hover"):
        get_task("nope")


def test_register_task_rejects_bad_registrations():
    with pytest.raises(ValueError, match="already registered"):
        register_task("test-bare", config_cls=BareConfig, env_cls=BareEnv)
    with pytest.raises(ValueError, match="already registered"):
        register_task("other", config_cls=BareConfig, env_cls=BareEnv, aliases=("crazyflie",))
    with pytest.raises(ValueError, match="exactly one of env_cls and env_factory"):
        register_task("other", config_cls=BareConfig)

    @dataclass
    class NoEnvs:
        device: str = "cpu"

    with pytest.raises(TypeError, match=r"NoEnvs needs the fields \['num_envs'\]"):
        register_task("other", config_cls=NoEnvs, env_cls=BareEnv)
    assert "other" not in task_names()


def test_missing_capabilities_name_the_task():
    env = BARE.make_env()
    for call, what in ((env.state_dict, "checkpointing"), (lambda: env.load_state_dict({}), "checkpointing"),
                       (lambda: env.set_reward_weights(None), "reward weights"), (env.detach, "gradients"),
                       (lambda: env.reward_from_terms(torch.zeros(1, 1)), "recomputing rewards"),
                       (env.export_spec, "export")):
        with pytest.raises(Unsupported, match=f"^task 'test-bare' does not support {what}"):
            call()
    with pytest.raises(Unsupported, match="task 'test-bare' does not support gradients"):
        BARE.make_env(differentiable=True)


def test_success_protocol_counts_info_success_per_episode():
    spec = get_task("point-reach")
    cfg = spec.config_cls(success_radius=10.0)  # every final position is within 10 m of its goal
    ecfg = spec.evaluation.config_cls(episodes=8)
    r = spec.evaluate(lambda obs: torch.zeros(len(obs), 3), cfg, ecfg)
    assert r["success"] == 1.0 and r["episodes"] == 8 and r["mean_episode_length"] == 30.0
    assert r["seed"] == ecfg.seed and spec.evaluation.passes(r, ecfg)
    # the oracle reaches every goal; standing still reaches none, on the held-out and the selection seed
    def oracle(obs):
        return ((obs[:, 3:] - obs[:, :3]) / 0.05).clamp(-1, 1)

    tight = spec.config_cls()
    assert spec.evaluate(oracle, tight, ecfg)["success"] == 1.0
    still = spec.evaluate(lambda obs: torch.zeros(len(obs), 3), tight, ecfg, selection=True)
    assert still["success"] == 0.0 and still["seed"] == ecfg.selection_seed != ecfg.seed
    with pytest.raises(ValueError, match="task 'test-bare': 2 episodes did not end within max_episode_steps = 3"):
        BARE.evaluate(lambda obs: torch.zeros(len(obs), 1), BareConfig(), BARE.evaluation.config_cls(episodes=2))
