"""Training configuration dataclasses and the registry of named presets."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from robot_rl.algorithms.apg import APGConfig
from robot_rl.algorithms.ppo import PPOConfig
from robot_rl.algorithms.sac import SACConfig
from robot_rl.algorithms.td3 import TD3Config
from robot_rl.curriculum import CurriculumConfig
from sim.registry import get_task

DEFAULT_TASK = "quadrotor-hover"
"""The task of a ``TrainConfig()`` and of run directories whose config.json predates ``task_name``."""


@dataclass
class OffPolicyConfig:
    """Loop of TD3/SAC: collect with ``task.num_envs`` envs, update from a replay buffer."""

    total_env_steps: int = 300_000
    buffer_capacity: int = 300_000
    overwrite: bool = False
    """Whether the replay buffer may wrap (the paper never overwrites)."""
    random_steps: int = 0
    """Env steps with uniformly random actions at the start."""
    critic_starts: int = 15_000
    """Env steps before the first critic update."""
    actor_starts: int = 30_000
    """Env steps before the first actor update."""
    updates_per_step: float = 0.1
    """Critic gradient steps per env transition (0.1 = the paper's every 10 steps)."""
    batch_size: int = 256
    lr_decay_start: int = 0
    """Env steps from which the actor's and critics' learning rates fall linearly to ``lr_final_fraction`` of their
    configured values at ``total_env_steps`` (0: constant rates; SAC's temperature keeps its rate)."""
    lr_final_fraction: float = 0.1
    """The learning rates at ``total_env_steps``, as a fraction of the configured ones (with ``lr_decay_start``)."""
    termination_reward: float = 0.0
    """Added to the stored reward of every transition that ends in termination (a crash, not a time-out), also
    after a curriculum rewrites the rewards. Negative: ending an episode costs more than the run of negative
    rewards it would cut short. The env's own rewards and logged returns are unchanged."""
    precision_bonus: float = 0.0
    """Height ``b`` of a bounded bonus ``b * exp(-term / precision_width**2)`` added to every stored reward (also
    after a curriculum rewrites them), ``term`` being the stored reward term ``precision_term`` (a squared
    distance). Where a quadratic cost is flat near the target (at 5 cm the position cost differs from 0 by a
    hundredth of its value at 0.5 m), this pays for the last centimetres without making far-off states worse,
    so it does not reward ending an episode. The env's own rewards and logged returns are unchanged."""
    precision_term: str = "position"
    """The env's reward term (``reward_term_names``) that ``precision_bonus`` reads."""
    precision_width: float = 0.1
    """Width of ``precision_bonus`` in the term's root units (m for a squared distance): 1/e of the bonus there."""


@dataclass
class OnPolicyConfig:
    """Loop of PPO (``steps_per_env`` steps from every env, then the update epochs) and APG."""

    total_env_steps: int = 10_000_000
    steps_per_env: int = 24


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run directory."""

    preset: str = "crazyflie-hover"
    task_name: Annotated[str, tyro.conf.Suppress] = DEFAULT_TASK
    """Registered task (``sim.registry``); chosen by the preset or task name on the command line."""
    algorithm: Literal["td3", "sac", "ppo", "apg"] = "td3"
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    """torch intra-op threads (small networks on 2 cores are fastest with 1)."""
    env_impl: str = "auto"
    """Simulator implementation, one of the task's backends (quadrotor-hover: torch, or fused numba kernels on
    the CPU); auto = the task's choice (quadrotor-hover: fused where supported). APG differentiates through
    the simulator: its fused choice is the differentiable fused env (numba step + hand-written VJP)."""
    out: str = ""
    """Run directory; empty: runs/<preset>/seed<seed>."""
    task: Any = field(default_factory=lambda: get_task(DEFAULT_TASK).config_cls())
    """The task's config dataclass (``get_task(task_name).config_cls``)."""
    td3: TD3Config = field(default_factory=TD3Config)
    sac: SACConfig = field(default_factory=SACConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    apg: APGConfig = field(default_factory=APGConfig)
    off_policy: OffPolicyConfig = field(default_factory=OffPolicyConfig)
    on_policy: OnPolicyConfig = field(default_factory=OnPolicyConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    evaluation: Any = field(default_factory=lambda: get_task(DEFAULT_TASK).evaluation.config_cls())
    """Options of the task's evaluation protocol (``get_task(task_name).evaluation.config_cls``)."""
    eval_every: int = 0
    """Env steps between in-training evaluations (0: only at the end)."""
    eval_episodes_during_training: int = 128
    stop_when_passed: bool = False
    """End training at the first in-training evaluation that passes the bar (see ``passes_in_a_row``)."""
    passes_in_a_row: int = 1
    """In-training evaluations that must pass the bar in a row before the run counts as passed (``first_pass``,
    ``stop_when_passed``). 2 keeps a policy at the bar's edge from being chosen on one lucky evaluation; with
    ``keep_best`` the run's policy is the best passing evaluation so far."""
    selection_margin: float = 0.0
    """An in-training evaluation passes (``first_pass``, ``stop_when_passed``, ``keep_best``) only this far above
    each bar of the task's protocol (every ``*_bar`` field of ``evaluation``). 256 selection episodes measure a rate
    near the bar to about a point, and a stop chosen on them favours lucky draws; the held-out confirmation and
    ``robot-rl eval`` keep the bars themselves."""
    keep_best: bool = False
    """Make the actor of the best in-training evaluation the run's policy (``robot-rl eval``/``export``, the
    runner's ``policy_fn(best=True)``): best = passes the bar, then the highest lowest rate of the task's protocol
    (hover: min(survival, settle)), then the sum of the rates, the earliest on ties. The evaluations fly the
    selection episodes, so confirm the choice on the held-out ones. The checkpoint keeps the latest iterate for
    ``--resume`` as well."""
    actor_average_halflife: int = 0
    """Half-life in env steps of an exponential moving average of the actor's weights (0: off). When on, the average
    is the run's policy: what the in-training evaluations fly, what ``keep_best`` keeps, what ``robot-rl eval``/
    ``export`` read from the checkpoint (which holds it, so ``--resume`` continues it); the actor that acts and
    learns is unchanged, so training is the same with and without it. After each iteration that took ``s`` env
    steps: average <- d average + (1 - d) actor, d = 0.5 ** (s / half-life)."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints (0: only at the end); ``--resume`` continues from the last one."""
    log_every: int = 5_000

    @property
    def total_env_steps(self) -> int:
        return self.on_policy.total_env_steps if self.algorithm in ("ppo", "apg") else self.off_policy.total_env_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def for_task(cls, task_name: str, **kwargs: Any) -> TrainConfig:
        """A config for ``task_name`` with the task's default config and evaluation options. The curriculum
        is off unless given: its default factors are the L2F paper's quadrotor reward weights."""
        spec = get_task(task_name)
        kwargs.setdefault("curriculum", CurriculumConfig(every=0, factors={}, caps={}))
        return cls(task_name=spec.name, task=spec.config_cls(), evaluation=spec.evaluation.config_cls(), **kwargs)

    def check(self) -> TrainConfig:
        """Raise a one-line error if ``task``/``evaluation`` are not the registered task's config classes."""
        spec = get_task(self.task_name)
        for name, want in (("task", spec.config_cls), ("evaluation", spec.evaluation.config_cls)):
            if type(getattr(self, name)) is not want:
                raise ValueError(f"TrainConfig.{name} of task {spec.name!r} must be a {want.__name__}, "
                                 f"got {type(getattr(self, name)).__name__}")
        return self


def cli_class(cfg: TrainConfig) -> type[TrainConfig]:
    """A subclass of :class:`TrainConfig` whose ``task`` and ``evaluation`` fields carry the concrete config
    types of ``cfg``'s task, so that tyro parses ``--task.num-envs 4``-style overrides for any task."""
    spec = get_task(cfg.task_name)
    task_cls, eval_cls = spec.config_cls, spec.evaluation.config_cls
    return dataclasses.make_dataclass(
        "TrainConfig", [("task", task_cls, field(default_factory=task_cls)),
                        ("evaluation", eval_cls, field(default_factory=eval_cls))],
        bases=(TrainConfig,), namespace={"__doc__": f"{TrainConfig.__doc__} Task: {spec.name}."})


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from ``to_dict`` output (a run's config.json). Without ``task_name`` (runs
    from before the task registry) the task is ``quadrotor-hover``; unknown keys are an error."""
    data = dict(data)
    spec = get_task(data.get("task_name", DEFAULT_TASK))
    data["task_name"] = spec.name
    task = from_dict(spec.config_cls, data.pop("task", {}))
    evaluation = from_dict(spec.evaluation.config_cls, data.pop("evaluation", {}))
    cfg = from_dict(TrainConfig, data)
    cfg.task, cfg.evaluation = task, evaluation
    return cfg


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from ``to_dict`` output; unknown keys are an error."""
    hints = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(hints)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name in hints else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


PRESETS: dict[str, tuple[str, Callable[[], TrainConfig]]] = {}


def register(name: str, description: str) -> Callable[[Callable[[], TrainConfig]], Callable[[], TrainConfig]]:
    def deco(fn: Callable[[], TrainConfig]) -> Callable[[], TrainConfig]:
        PRESETS[name] = (description, fn)
        return fn

    return deco


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of the named preset's configuration."""
    from robot_rl import presets  # noqa: F401  (registers the presets; it imports this module)

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    cfg = PRESETS[name][1]()
    cfg.preset = name
    return cfg.check()


def get_training_config(name: str) -> TrainConfig:
    """The preset ``name``, else the default training config of the registered task ``name``
    (:meth:`TrainConfig.for_task`)."""
    from robot_rl import presets  # noqa: F401  (registers the presets; it imports this module)
    from sim.registry import task_families, task_names

    if name in PRESETS:
        return get_preset(name)
    if any(name.startswith(prefix) for prefix in task_families()):
        spec = get_task(name)  # a family's task: its own error (not installed, unknown id) is the useful one
        return TrainConfig.for_task(spec.name, preset=spec.name)
    try:
        spec = get_task(name)
    except ValueError:
        raise ValueError(f"unknown preset {name!r} (and no task of that name); presets: "
                         f"{', '.join(sorted(PRESETS))}; tasks: {', '.join(task_names())}") from None
    return TrainConfig.for_task(spec.name, preset=spec.name)
