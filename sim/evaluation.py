"""The generic evaluation protocol: success rate over one episode per env, from ``info["success"]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from sim.registry import EVAL_SEED, SELECTION_SEED, EvalProtocol, Policy
from sim.traces import TraceRecorder

if TYPE_CHECKING:
    from sim.registry import TaskSpec


@dataclass
class SuccessEvalConfig:
    """Options of the success-rate protocol (``TrainConfig.evaluation`` of tasks that use it)."""

    episodes: int = 100
    """Episodes per evaluation (one per env, all run at once)."""
    success_bar: float = 0.9
    """An evaluation passes at this success rate or above."""
    seed: int = EVAL_SEED
    """Episode seed of ``robot-rl eval`` and of confirmations: held out from the in-training evaluations."""
    selection_seed: int = SELECTION_SEED
    """Episode seed of the in-training evaluations (learning curve, early stop); must differ from ``seed``."""


def policy_input(policy: Policy, obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """What ``policy`` reads of the observation groups ``obs``: the ``policy`` group, or, for a policy that declares
    ``obs_groups`` (e.g. ``("policy", "wrench")``), those groups concatenated in that order."""
    groups = tuple(getattr(policy, "obs_groups", ("policy",)))
    missing = [g for g in groups if g not in obs]
    if missing:
        raise ValueError(f"the policy reads observation group(s) {missing} that this env does not have "
                         f"(it has {sorted(obs)}); enable them in the task config (e.g. ft_sensor for 'wrench')")
    return obs["policy"] if groups == ("policy",) else torch.cat([obs[g] for g in groups], -1)


@torch.no_grad()
def evaluate_success(spec: TaskSpec, policy: Policy, task_cfg: Any, eval_cfg: SuccessEvalConfig, episodes: int,
                     seed: int, record: int = 0, impl: str | None = None) -> dict:
    """Run ``episodes`` envs (CPU, backend ``impl``: None is the reference, seeded with ``seed``) until each has
    ended one episode.

    A policy with a ``reset()`` method (stateful: observation history, action chunks, noise) is reset first.
    An episode succeeds if ``info["success"]`` is set when it ends. Returns the success rate, mean return and
    mean length, and every episode's outcome. ``record`` > 0: ``result["signals"]`` holds the first ``record``
    episodes' traces of the components the task declares (:class:`sim.traces.TraceRecorder`; None if it declares
    none); the pose ``traces`` of the quadrotor protocol are always None here.
    """
    reset = getattr(policy, "reset", None)
    if callable(reset):  # a stateful policy (e.g. chunked execution) starts every evaluation afresh
        reset()
    env = spec.make_env(replace(task_cfg, num_envs=episodes, device="cpu"), seed=seed, impl=impl)
    obs = env.reset(seed=seed)
    done = torch.zeros(episodes, dtype=torch.bool)
    success = torch.zeros(episodes, dtype=torch.bool)
    ret = torch.zeros(episodes, dtype=torch.float64)
    length = torch.zeros(episodes, dtype=torch.long)
    traced = record > 0 and bool(env.trace_components or env.trace_distances)
    try:
        tracer = TraceRecorder(env, min(record, episodes), env.max_episode_steps) if traced else None
    except ValueError:
        env.close()
        raise
    if tracer is not None:
        tracer.record(0, obs["critic"], ~done)
    for t in range(1, env.max_episode_steps + 1):
        obs, reward, _, _, info = env.step(policy(policy_input(policy, obs)).to(torch.float32))
        active = ~done
        if tracer is not None:  # the state each episode reached, before an auto-reset
            tracer.record(t, info["final_obs"]["critic"], active, info.get("success"))
        ret += torch.where(active, reward.cpu().double(), 0.0)
        length += active.long()
        ended = info["done_mask"].cpu() & active
        if bool(ended.any()):
            if "success" not in info:
                raise ValueError(f"task {spec.name!r} reports no info['success']; the success protocol needs it")
            success |= ended & info["success"].cpu().bool()
        done |= ended
        if bool(done.all()):
            break
    env.close()
    if not bool(done.all()):
        raise ValueError(f"task {spec.name!r}: {int((~done).sum())} episodes did not end within "
                         f"max_episode_steps = {env.max_episode_steps}")
    return {
        "episodes": episodes,
        "seed": seed,
        "success": success.double().mean().item(),
        "mean_return": ret.mean().item(),
        "mean_episode_length": length.double().mean().item(),
        "episode_success": success.tolist(),
        "traces": None,
        "signals": None if tracer is None else tracer.result(success, length, env.dt),
        "dt": env.dt,
    }


def success_passes(result: dict, cfg: SuccessEvalConfig) -> bool:
    return result["success"] >= cfg.success_bar


def success_summary(result: dict) -> str:
    return (f"success {result['success']:.1%}, mean return {result['mean_return']:.2f}, mean episode length "
            f"{result['mean_episode_length']:.1f} steps over {result['episodes']} episodes")


def success_describe(task_cfg: Any, cfg: SuccessEvalConfig) -> str:
    return (f"One episode per env from the task's own initial-state distribution; success as the task reports "
            f"it when the episode ends; bar: success ≥ {cfg.success_bar:.0%}.")


def success_protocol(config_cls: type = SuccessEvalConfig, sweep: Callable[..., list[dict]] | None = None
                     ) -> EvalProtocol:
    """The success-rate protocol (``config_cls``: a subclass of :class:`SuccessEvalConfig` with other defaults;
    ``sweep``: the task family's robustness sweep, e.g. :func:`sim.arm.robustness.arm_sweep`)."""
    return EvalProtocol(config_cls=config_cls, evaluate=evaluate_success, passes=success_passes,
                        summary=success_summary, describe=success_describe,
                        headline={"success": "eval_success", "mean_return": "eval_return"}, rates=("success",),
                        sweep=sweep)
