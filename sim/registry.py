"""The task registry: a name maps to a config dataclass, env factories, an evaluation protocol and an export spec.

Isaac Lab's ``gym.register(id, entry_point, kwargs={"env_cfg_entry_point": ...})`` is the model. A task
package registers its task with ONE call, at import time::

    register_task("panda-pick-cube", config_cls=PickCubeConfig, env_cls=PickCubeEnv,
                  description="lift a 4 cm cube by 10 cm", evaluation=success_protocol(episodes=100))

and trainers, the evaluator and the exporter reach the task only through :func:`get_task` and the
:class:`~sim.core.BatchedEnv` contract, never by importing a robot. The task config dataclass must have
``num_envs`` and ``device`` fields (the trainer sets them). Built-in task packages (:data:`TASK_PACKAGES`) are
imported on the first lookup; any other package registers its tasks when it is imported.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from sim.core import BatchedEnv

Policy = Callable[[torch.Tensor], torch.Tensor]
"""Maps a batch of ``policy`` observations to a batch of actions. A policy with memory (a recurrent actor) also has
``begin_episodes(n)``, which an evaluator calls before each batch of ``n`` episodes that start together."""

#: Packages that register (or :func:`declare_task`) the built-in tasks, imported on the first registry lookup.
TASK_PACKAGES: tuple[str, ...] = ("sim.quadrotor", "sim.arm.catalog", "sim.isaac.catalog")

EVAL_SEED = 1_000_003
"""Default seed of a task's held-out evaluation episodes: ``robot-rl eval`` and every confirmation of a selected
policy (the eval config's ``seed``)."""
SELECTION_SEED = 2_000_003
"""Default seed of the in-training evaluations that choose when training stops (the eval config's
``selection_seed``); a policy selected on them is confirmed on :data:`EVAL_SEED`'s episodes."""


@dataclass(frozen=True)
class EvalProtocol:
    """How a task is evaluated.

    ``evaluate(spec, policy, task_cfg, eval_cfg, episodes, seed, record) -> result`` flies ``episodes``
    episodes (``record`` > 0: also ``result["traces"]``, ``[record, T, 7]`` pose traces: position and
    quaternion w x y z, NaN after an episode ended); ``passes(result, eval_cfg)`` applies the bar;
    ``summary(result)`` is one line for logs and reports; ``describe(task_cfg, eval_cfg)`` one sentence on what
    an evaluation episode is. ``config_cls`` is the dataclass of the protocol's options (it becomes
    ``TrainConfig.evaluation``; it must have ``episodes``). ``headline`` maps the result keys worth printing to
    the ``metrics.csv`` column they are logged under during training; ``rates`` are the result keys in [0, 1].
    ``sweep(spec, policy, task_cfg, eval_cfg, seed) -> rows`` is an optional robustness sweep (rows:
    ``parameter``, ``error`` and the rates).
    """

    config_cls: type
    evaluate: Callable[..., dict]
    passes: Callable[[dict, Any], bool]
    summary: Callable[[dict], str]
    describe: Callable[[Any, Any], str]
    headline: Mapping[str, str]
    rates: tuple[str, ...]
    sweep: Callable[..., list[dict]] | None = None
    records: bool = False
    """Whether ``evaluate`` can record pose traces (``robot-rl eval`` then plots 8 episodes)."""


EnvFactory = Callable[..., BatchedEnv]
"""``factory(cfg, seed=..., impl=..., differentiable=...) -> BatchedEnv``."""


@dataclass(frozen=True)
class TaskSpec:
    """A registered task (see the module docstring); build envs with :meth:`make_env`."""

    name: str
    config_cls: type
    env_factory: EnvFactory
    evaluation: EvalProtocol
    description: str = ""
    backends: tuple[str, ...] = ("default",)
    """Simulator implementations the factory builds; the first is the reference (used to probe dimensions,
    export and evaluate). ``"auto"`` is always accepted: the factory picks (the reference unless it says)."""
    aliases: tuple[str, ...] = ()
    demo: Callable[..., dict] | None = None
    """``demo(steps, episodes, seed) -> {"traces", "labels", "dt", "title", "summary"}`` for ``robot-rl sim``
    (pose traces as in :class:`EvalProtocol`); None: ``robot-rl sim`` rolls out random actions."""
    expert: Callable[..., Any] | None = None
    """``expert(env, seed, action_noise) -> expert``: a scripted expert of the task for ``robot-rl demos``;
    ``expert.act() -> (label, executed)`` (numpy ``[N, action_dim]``: the clean action and the one to execute,
    with the injected noise), ``expert.reset(mask)`` after every step with the envs that were reset."""
    video: Callable[..., dict] | None = None
    """``video(spec, task_cfg, episodes, seed, out, policy=None, action_noise=0.0, max_steps=None) -> summary``
    (``"video"``: the path): render ``episodes`` episodes of ``policy`` (None: of the expert) to ``out``
    (.mp4/.gif). Used by ``robot-rl eval`` and ``robot-rl sim --expert``."""

    def make_env(self, cfg: Any = None, seed: int = 0, impl: str | None = None,
                 differentiable: bool = False) -> BatchedEnv:
        """Build the task's env from ``cfg`` (default config if None) with implementation ``impl`` (None: the
        reference backend; ``"auto"``: the factory's choice). ``differentiable``: an env whose ``step``
        torch autograd differentiates (analytic policy gradients), or a one-line error."""
        cfg = self.config_cls() if cfg is None else cfg
        if not isinstance(cfg, self.config_cls):
            raise TypeError(f"task {self.name!r} takes a {self.config_cls.__name__}, got {type(cfg).__name__}")
        impl = self.backends[0] if impl is None else impl
        if impl != "auto" and impl not in self.backends:
            raise ValueError(f"task {self.name!r} has no env implementation {impl!r}; choose from "
                             f"{', '.join(('auto',) + self.backends)}")
        env = self.env_factory(cfg, seed=seed, impl=impl, differentiable=differentiable)
        env.task_name = self.name
        if differentiable and not env.differentiable:
            raise env.unsupported("gradients through the simulator (apg needs a differentiable env)")
        return env

    def probe(self, cfg: Any = None) -> BatchedEnv:
        """A one-env CPU instance of the reference backend, to read dimensions and the export spec."""
        cfg = self.config_cls() if cfg is None else cfg
        return self.make_env(replace(cfg, num_envs=1, device="cpu"))

    def export_spec(self, cfg: Any = None) -> dict[str, Any]:
        """The ``policy.json`` observation/action contract of the task under ``cfg``."""
        env = self.probe(cfg)
        try:
            return env.export_spec()
        finally:
            env.close()

    def evaluate(self, policy: Policy, task_cfg: Any, eval_cfg: Any, episodes: int | None = None,
                 selection: bool = False, record: int = 0, seed: int | None = None, impl: str | None = None) -> dict:
        """Run the evaluation protocol on the held-out episodes (``eval_cfg.seed``), or with ``selection`` on the
        episodes of the in-training evaluations (``eval_cfg.selection_seed``); ``impl``: a simulator backend of
        the task (None: its reference backend)."""
        if seed is None:
            seed = eval_cfg.selection_seed if selection else eval_cfg.seed
        episodes = eval_cfg.episodes if episodes is None else episodes
        backend = {} if impl is None else {"impl": impl}
        return self.evaluation.evaluate(self, policy, task_cfg, eval_cfg, episodes, seed, record, **backend)


_TASKS: dict[str, TaskSpec] = {}
_ALIASES: dict[str, str] = {}
_DECLARED: dict[str, tuple[str, str]] = {}
"""Declared, not yet registered tasks: name -> (module that registers it, what to install if it fails)."""
_FAMILIES: dict[str, tuple[str, str, str]] = {}
"""Declared task families: name prefix -> (module, its function that registers ``prefix + id``, requirement)."""
_loaded = False


def _env_cls_factory(env_cls: type[BatchedEnv]) -> EnvFactory:
    def factory(cfg: Any, seed: int = 0, impl: str = "default", differentiable: bool = False) -> BatchedEnv:
        return env_cls(cfg, seed=seed)

    return factory


def register_task(name: str, *, config_cls: type, env_cls: type[BatchedEnv] | None = None,
                  env_factory: EnvFactory | None = None, evaluation: EvalProtocol | None = None,
                  description: str = "", backends: tuple[str, ...] = ("default",), aliases: tuple[str, ...] = (),
                  demo: Callable[..., dict] | None = None, expert: Callable[..., Any] | None = None,
                  video: Callable[..., dict] | None = None) -> TaskSpec:
    """Register a task under ``name`` (see the module docstring).

    Give ``env_cls`` (built as ``env_cls(cfg, seed=seed)``) or an ``env_factory`` that understands ``impl``
    and ``differentiable``. ``evaluation`` defaults to :func:`sim.evaluation.success_protocol` (the env
    reports ``info["success"]``).
    """
    if (env_cls is None) == (env_factory is None):
        raise ValueError(f"task {name!r}: give exactly one of env_cls and env_factory")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"task {name!r}: config_cls must be a dataclass")
    missing = {"num_envs", "device"} - {f.name for f in dataclasses.fields(config_cls)}
    if missing:
        raise TypeError(f"task {name!r}: {config_cls.__name__} needs the fields {sorted(missing)}")
    for n in (name, *aliases):
        if n in _TASKS or n in _ALIASES or (n in _DECLARED and n != name):
            raise ValueError(f"task name {n!r} is already registered")
    if evaluation is None:
        from sim.evaluation import success_protocol

        evaluation = success_protocol()
    spec = TaskSpec(name=name, config_cls=config_cls, env_factory=env_factory or _env_cls_factory(env_cls),
                    evaluation=evaluation, description=description, backends=tuple(backends),
                    aliases=tuple(aliases), demo=demo, expert=expert, video=video)
    _TASKS[name] = spec
    _DECLARED.pop(name, None)
    _ALIASES.update({a: name for a in aliases})
    return spec


def declare_task(name: str, module: str, requires: str = "") -> None:
    """Name a task that importing ``module`` registers, without importing it yet.

    For tasks whose dependencies are optional or slow to import (MuJoCo): the name is listed by
    :func:`task_names` at once, and the first :func:`get_task` of it imports ``module``. ``requires`` says
    what to install when that import fails (it becomes the one-line error).
    """
    if name in _TASKS or name in _ALIASES:
        raise ValueError(f"task name {name!r} is already registered")
    _DECLARED[name] = (module, requires)


def declare_task_family(prefix: str, module: str, register: str, requires: str = "") -> None:
    """Declare every task named ``prefix + id`` (e.g. ``isaac:Isaac-Cartpole-v0``) without importing ``module``.

    The first :func:`get_task` of such a name imports ``module`` and calls its function ``register(name)``, which
    must :func:`register_task` ``name`` (or raise ``ValueError`` for an unknown id). For families whose ids come
    from another framework's registry (Isaac Lab's gymnasium ids), so they cannot all be listed up front.
    """
    if prefix in _FAMILIES:
        raise ValueError(f"task family {prefix!r} is already declared")
    _FAMILIES[prefix] = (module, register, requires)


def _load_family(name: str) -> None:
    prefix = next(p for p in _FAMILIES if name.startswith(p))
    module, register, requires = _FAMILIES[prefix]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        hint = f"; install {requires}" if requires else ""
        raise ValueError(f"task {name!r} cannot be loaded: {exc}{hint}") from None
    getattr(mod, register)(name)
    if name not in _TASKS:
        raise ValueError(f"task {name!r}: {module}.{register} did not register it")


def _load_declared(name: str) -> None:
    module, requires = _DECLARED[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        hint = f"; install {requires}" if requires else ""
        raise ValueError(f"task {name!r} cannot be loaded: {exc}{hint}") from None
    if name not in _TASKS:
        raise ValueError(f"task {name!r}: importing {module} did not register it")


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for pkg in TASK_PACKAGES:
            importlib.import_module(pkg)


def get_task(name: str) -> TaskSpec:
    """The registered task ``name`` (or one of its aliases); a one-line error names the registered tasks."""
    _load_builtin()
    name = _ALIASES.get(name, name)
    if name in _DECLARED:
        _load_declared(name)
    elif name not in _TASKS and any(name.startswith(p) for p in _FAMILIES):
        _load_family(name)
    if name not in _TASKS:
        families = "".join(f"; {p}<id> ({r})" for p, r in task_families().items())
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(task_names())}{families} (a task outside "
                         f"{', '.join(TASK_PACKAGES)} registers when its package is imported)")
    return _TASKS[name]


def task_names() -> list[str]:
    """Names of every registered (or declared) task, sorted."""
    _load_builtin()
    return sorted({*_TASKS, *_DECLARED})


def task_families() -> dict[str, str]:
    """Declared task-name prefixes (:func:`declare_task_family`) and what each needs installed."""
    _load_builtin()
    return {prefix: requires for prefix, (_, _, requires) in _FAMILIES.items()}


__all__ = ["EVAL_SEED", "EvalProtocol", "SELECTION_SEED", "Policy", "TASK_PACKAGES", "TaskSpec", "declare_task",
           "declare_task_family", "get_task", "register_task", "task_families", "task_names"]
