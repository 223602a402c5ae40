"""Evaluation protocol of the hover task: survival, settle rate, final error, robustness sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from sim.quadrotor.config import DomainRandomization, QuadrotorTaskConfig
from sim.quadrotor.factory import make_hover_env
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicles import VehicleDistribution
from sim.registry import EVAL_SEED, SELECTION_SEED, EvalProtocol, Policy

if TYPE_CHECKING:
    from sim.registry import TaskSpec


@dataclass
class HoverEvalConfig:
    """Evaluation protocol (``robot-rl eval``): the paper's initial states, noise and disturbances."""

    episodes: int = 256
    settle_radius: float = 0.1
    """An episode settles if it survives and ends within this distance of the target (m)."""
    survival_bar: float = 0.95
    settle_bar: float = 0.90
    robustness: tuple[float, ...] = (-0.2, -0.1, 0.1, 0.2)
    """Relative errors applied to mass, thrust coefficient and motor time constant in the sweep."""
    seed: int = EVAL_SEED
    """Episode seed of ``robot-rl eval`` and of every confirmation of a selected policy: held out, i.e. never
    seen by the in-training evaluations that choose when training stops."""
    selection_seed: int = SELECTION_SEED
    """Episode seed of the in-training evaluations (learning curve, ``stop_when_passed``). A policy chosen on
    these episodes is confirmed on ``seed``; the two must differ."""


PAPER_RADIUS = 0.2
"""The L2F paper's validation criterion: an episode counts if it survives and ends within 0.2 m of the target
(RLtools' ``SettlingFractionPosition<200>``, over 10 validation episodes)."""
SWEEP_PARAMS = ("mass", "thrust_coefficient", "motor_time_constant")


@torch.no_grad()
def evaluate(policy: Policy, task: QuadrotorTaskConfig, episodes: int = 256, settle_radius: float = 0.1,
             seed: int = EVAL_SEED, record: int = 0, randomization: DomainRandomization | None = None,
             impl: str = "torch", vehicles: VehicleDistribution | None = None,
             make_env: Callable[[QuadrotorTaskConfig, int], QuadrotorHoverEnv] | None = None) -> dict:
    """Fly ``episodes`` episodes of ``task.episode_length`` steps from the paper's initial-state distribution
    with the paper's observation noise and disturbances. ``policy`` maps ``policy`` observations to actions.
    ``impl``: the simulator backend (``torch``: our RK4 reference; ``mujoco``, ``pybullet``: the same episodes,
    initial states, disturbances and noise draws, in that engine). ``make_env(cfg, seed)``, if given, builds the
    env instead (another simulator's physics under the task: ``benchmarks/judge_sims.py``).

    Returns survival rate (no termination), settle rate (survived and within ``settle_radius`` of the target
    at the end), the paper's rate (survived and within 0.2 m at the end), median final position error
    (survivors), every episode's final error (None: crashed), mean return, and ``record`` state traces.
    The frame file's vehicle flies unless ``vehicles`` (enabled) gives each episode its own; then the result also
    holds every episode's vehicle (``vehicles``: ``{name: [episodes]}``) and outcome (``episode_survived``,
    ``episode_settled``) and the step at which each survivor first came within ``settle_radius`` for good
    (``episode_settle_step``; None: never).
    """
    cfg = replace(task, num_envs=episodes, device="cpu", noise=True,
                  randomization=randomization or DomainRandomization(), vehicles=vehicles or VehicleDistribution())
    if make_env is not None:
        env = make_env(cfg, seed)
    else:
        env = QuadrotorHoverEnv(cfg, seed=seed) if impl == "torch" else make_hover_env(cfg, seed=seed, impl=impl)
    obs = env.reset(seed=seed)
    if hasattr(policy, "begin_episodes"):  # a policy with memory: zero state for this batch of episodes
        policy.begin_episodes(episodes)
    alive = torch.ones(episodes, dtype=torch.bool)
    ret = torch.zeros(episodes)
    traces = [env.state[:record, :7].clone()]
    final_err = torch.full((episodes,), float("nan"))
    flown = env.vehicles() if cfg.vehicles.enabled else None
    last_out = torch.zeros(episodes, dtype=torch.long)  # steps until the last time outside the settle radius
    for t in range(cfg.episode_length):
        action = policy(obs["policy"]).to(torch.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        ret += torch.where(alive, reward, 0.0)
        alive &= ~terminated
        if record:
            s = info["final_obs"]["critic"][:record]
            traces.append(torch.where(alive[:record, None], _pose_from_critic(s), torch.nan))
        err = info["final_obs"]["critic"][:, :3].norm(dim=-1)
        last_out = torch.where(alive & (err >= settle_radius), t + 1, last_out)
        if t == cfg.episode_length - 1:
            final_err = torch.where(alive, err, torch.nan)
    env.close()
    settled = alive & (final_err < settle_radius)
    survivors = final_err[alive]
    extra = {} if flown is None else {
        "vehicles": {k: v.tolist() for k, v in flown.items()}, "episode_survived": alive.tolist(),
        "episode_settled": settled.tolist(),
        "episode_settle_step": [int(s) if ok else None for s, ok in zip(last_out.tolist(), settled.tolist(),
                                                                         strict=True)]}
    return extra | {
        "episodes": episodes,
        "seed": seed,
        "survival": alive.double().mean().item(),
        "settle": settled.double().mean().item(),
        "within_0p2m": (alive & (final_err < PAPER_RADIUS)).double().mean().item(),
        "median_final_error_m": survivors.median().item() if len(survivors) else float("nan"),
        "final_errors_m": [None if e != e else round(e, 4) for e in final_err.tolist()],
        "mean_return": ret.mean().item(),
        "traces": torch.stack(traces, dim=1).numpy() if record else None,
        "dt": cfg.dt,
    }


def _pose_from_critic(critic: torch.Tensor) -> torch.Tensor:
    """Position (relative to target) and quaternion recovered from the noise-free critic observation."""
    rot = critic[:, 3:12].reshape(-1, 3, 3).double()
    w = (1 + rot[:, 0, 0] + rot[:, 1, 1] + rot[:, 2, 2]).clamp(min=1e-12).sqrt() / 2
    x = (rot[:, 2, 1] - rot[:, 1, 2]) / (4 * w)
    y = (rot[:, 0, 2] - rot[:, 2, 0]) / (4 * w)
    z = (rot[:, 1, 0] - rot[:, 0, 1]) / (4 * w)
    return torch.cat((critic[:, :3], torch.stack((w, x, y, z), -1).float()), dim=-1)


def robustness_sweep(policy: Policy, task: QuadrotorTaskConfig, cfg: HoverEvalConfig,
                     seed: int = EVAL_SEED, impl: str = "torch") -> list[dict]:
    """Evaluate with each of mass, thrust coefficient and motor time constant off by each relative error (in the
    simulator backend ``impl``)."""
    rows = []
    for name in SWEEP_PARAMS:
        for err in cfg.robustness:
            dr = DomainRandomization(**{name: (1.0 + err, 1.0 + err)})
            r = evaluate(policy, task, cfg.episodes, cfg.settle_radius, seed, randomization=dr, impl=impl)
            rows.append({"parameter": name, "error": err, "survival": r["survival"], "settle": r["settle"],
                         "median_final_error_m": r["median_final_error_m"]})
    return rows


def passes(result: dict, cfg: HoverEvalConfig) -> bool:
    return result["survival"] >= cfg.survival_bar and result["settle"] >= cfg.settle_bar


def summary_line(result: dict) -> str:
    paper = f", within 0.2 m {result['within_0p2m']:.1%}" if "within_0p2m" in result else ""
    return (f"survival {result['survival']:.1%}, settle {result['settle']:.1%}{paper}, median final error "
            f"{result['median_final_error_m'] * 100:.1f} cm over {result['episodes']} episodes")


def describe(task: QuadrotorTaskConfig, cfg: HoverEvalConfig) -> str:
    return (f"Paper initial states, observation noise and disturbances; settle = survived and within "
            f"{cfg.settle_radius} m of the target at {task.episode_length} steps.")


def _evaluate(spec: TaskSpec, policy: Policy, task: QuadrotorTaskConfig, cfg: HoverEvalConfig, episodes: int,
              seed: int, record: int, impl: str | None = None) -> dict:
    return evaluate(policy, task, episodes, cfg.settle_radius, seed, record, impl=impl or spec.backends[0])


def _sweep(spec: TaskSpec, policy: Policy, task: QuadrotorTaskConfig, cfg: HoverEvalConfig,
           seed: int, impl: str | None = None) -> list[dict]:
    return robustness_sweep(policy, task, cfg, seed, impl=impl or spec.backends[0])


HOVER_PROTOCOL = EvalProtocol(
    config_cls=HoverEvalConfig, evaluate=_evaluate, passes=passes, summary=summary_line, describe=describe,
    headline={"survival": "eval_survival", "settle": "eval_settle", "median_final_error_m": "eval_final_error_m"},
    rates=("survival", "settle"), sweep=_sweep, records=True)
"""The hover task's protocol: 256 episodes on seed 1,000,003 (held out: 2,000,003), bars on survival and settle."""
