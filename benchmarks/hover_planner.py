"""A privileged sampling planner for ``hover_ceiling.py``: can *some* flight save an episode the policy loses?

``hover_crashes.oracle`` corrects the policy's failing flight by gradient descent, so it stays near that flight
and needs an end-of-window criterion. This planner searches by sampling: per episode, the cross-entropy method
over open-loop offsets added to the policy's actions, each offset held for ``hold`` control steps over the
first ``knots * hold`` steps. The policy stays in the loop, and after the offsets it flies alone to the end of
the episode. Every candidate is flown in the torch env with the episode's vehicle, initial state and
disturbance (the planner knows everything, as the oracle does). Its cost is the oracle's barrier from 0.08 m
inside the bound, summed over the whole episode. Without noise the flight is deterministic, so one candidate
that never leaves the bound proves the episode avoidable in that arithmetic. Such a proof can be a knife edge:
the same offsets flown in a batch of another size (other float rounding) or with the evaluation's observation
noise may crash. :func:`noisy_survival` re-flies saves under that noise; ``plan(noise_draws=D)`` searches for
offsets that survive D noisy flights at once.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from robot_rl.models.recurrent import GRUActor
from sim.quadrotor.config import DomainRandomization
from sim.quadrotor.dynamics import POS
from sim.quadrotor.task import QuadrotorHoverEnv


def episode_env(task, init: dict, idx: torch.Tensor, copies: int = 1, device: str = "cpu", noise: bool = False,
                seed: int = 0):
    """A torch env on ``device`` whose ``copies * len(idx)`` envs fly episodes ``idx`` (copy-major) without
    ending them (no bound, no time limit: the caller judges the flight), and a function that restarts them from
    their initial state (returns the fresh observation). ``noise``: the actor observation carries the
    evaluation's noise (each vehicle's scale), every env its own draws from ``seed``; else it is noise-free."""
    rep = idx.repeat(copies)
    n = len(rep)
    cfg = replace(task, num_envs=n, device=device, noise=noise, randomization=DomainRandomization(),
                  vehicles=replace(task.vehicles, enabled=True, seed=0), position_limit=1e3,
                  episode_length=10**6)
    env = QuadrotorHoverEnv(cfg, seed=seed)
    env.vehicle_values = torch.stack([init["vehicles"][k][rep] for k in env.vehicles()], -1).to(device)
    env._apply_vehicles()
    s0, force, torque = (init[k][rep].to(device) for k in ("state", "force", "torque"))

    def restart() -> dict:
        env.state, env.force, env.torque = s0.clone(), force.clone(), torque.clone()
        env.target.zero_()
        env.history.zero_()
        env.steps.zero_()
        return env._observe(fresh=torch.ones(n, dtype=torch.bool, device=device))

    return env, restart


def fly_with_offsets(actor, env, restart, offsets: torch.Tensor, hold: int, steps: int,
                     limit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """From ``restart()``, the policy with ``offsets[knots, n, 4]`` added to its actions (each held ``hold``
    steps), then the policy alone, for ``steps`` steps (a recurrent actor carries its state from zero): (barrier
    cost, never beyond ``limit`` on any axis) per env."""
    obs = restart()
    n, dev = offsets.shape[1], offsets.device
    state = actor.initial_state(n).to(dev) if isinstance(actor, GRUActor) else None
    barrier, peak = torch.zeros(n, device=dev), torch.zeros(n, device=dev)
    for t in range(steps):
        if state is not None:
            a, state = actor(obs["policy"], state)
        else:
            a = actor(obs["policy"])
        if t < offsets.shape[0] * hold:
            a = a + offsets[t // hold]
        obs, *_ = env.step(a)
        over = env.state[:, POS].abs().max(-1).values
        peak = torch.maximum(peak, over)
        barrier += torch.log1p(torch.relu((over - (limit - 0.08)) / 0.08)).square()
    return barrier, peak <= limit


@torch.no_grad()
def noisy_survival(actor, task, init: dict, idx: torch.Tensor, offsets: torch.Tensor, hold: int, draws: int,
                   seed: int = 1, device: str = "cpu") -> torch.Tensor:
    """``[m]``: the share of ``draws`` flights of episodes ``idx`` that stay inside the bound for the whole
    episode, the policy flying with the evaluation's observation noise (other draws each flight) and
    ``offsets[knots, m, 4]`` (each held ``hold`` steps) added to its actions (empty for no episodes)."""
    m = len(idx)
    if m == 0:
        return torch.zeros(0)
    env, restart = episode_env(task, init, idx, draws, device, noise=True, seed=seed)
    _, ok = fly_with_offsets(actor, env, restart, offsets.to(device).repeat(1, draws, 1), hold, task.episode_length,
                             task.position_limit)
    return ok.reshape(draws, m).float().mean(0).cpu()


@torch.no_grad()
def plan(actor, task, init: dict, idx: torch.Tensor, iters: int = 40, population: int = 128, elites: int = 12,
         knots: int = 20, hold: int = 5, std: float = 0.5, seed: int = 0, log=print, device: str = "cpu",
         noise_draws: int = 0) -> dict:
    """The cross-entropy method per episode of ``idx`` over open-loop offsets to the policy's actions for the
    first ``knots * hold`` steps, each candidate flown to the end of the episode (the policy alone after the
    offsets), on ``device`` (the draws come from a CPU generator: the same candidates on any device);
    ``{"saved": [m] bool, "offsets": [knots, m, 4]}`` (the best candidate of each episode: a surviving one where
    there is one). ``noise_draws`` D > 0: every candidate flies D times with the evaluation's observation noise
    (fresh draws every iteration); its cost is the mean, and it survives only if all D flights do."""
    m, limit = len(idx), task.position_limit
    draws = max(noise_draws, 1)
    env, restart = episode_env(task, init, idx, population * draws, device, noise=noise_draws > 0, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    mean = torch.zeros((knots, m, 4), device=device)
    sd = torch.full((knots, m, 4), std, device=device)
    best_cost = torch.full((m,), float("inf"), device=device)
    best = mean.clone()
    saved = torch.zeros(m, dtype=torch.bool, device=device)
    for it in range(iters):
        noise = torch.randn((knots, population, m, 4), generator=gen).to(device)
        cand = mean[:, None] + sd[:, None] * noise
        cand[:, 0] = best  # elitism: the best candidate so far (at first: the policy alone) flies again
        cost, ok = fly_with_offsets(actor, env, restart, cand.reshape(knots, population * m, 4).repeat(1, draws, 1),
                                    hold, task.episode_length, limit)
        ok = ok.reshape(draws, population, m).all(0)
        cost = cost.reshape(draws, population, m).mean(0) - 1e3 * ok  # a surviving candidate beats any other
        order = cost.argsort(0)[:elites]  # [elites, m]
        elite = torch.take_along_dim(cand, order[None, :, :, None], 1)  # [knots, elites, m, 4]
        mean, sd = elite.mean(1), elite.std(1).clamp(min=0.05)
        top = cost.gather(0, order[:1])[0]
        better = top < best_cost
        best_cost = torch.where(better, top, best_cost)
        best[:, better] = elite[:, 0, better]
        saved |= ok.any(0)  # noise-free, the flight is deterministic: one surviving candidate proves it avoidable
        if it % 10 == 0 or it == iters - 1:
            log(f"  planner iter {it}: saves {int(saved.sum())}/{m}")
    return {"saved": saved.cpu(), "offsets": best.cpu()}
