"""Evolution-strategies fine-tuning of a trained recurrent hover policy on survival (issue 14 experiment).

APG gets no gradient from a crash and none through a saturated output, and the crashes left are flights that
saturate every motor (benchmarks/README.md). ES needs neither: it perturbs the actor's weights, flies every
candidate over the same episodes (vehicles, starts, disturbances drawn from the run's training distribution,
noise-free so all candidates see the same flights), ranks them by crashes (then unsettled, then time near the
bound) and steps the weights along the rank-weighted perturbations (antithetic pairs, Adam). Every
``--eval-every`` generations the centre flies a fixed selection draw; the best centre is kept.

    python benchmarks/experiments/es_finetune.py RUN_DIR --out OUT.pt [--device cuda] [--population 128]
        [--episodes 1024] [--minutes 7] [--margin M] [--hard-fraction F] [--init PT] [--sigma 0.01] [--lr 2e-3]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from robot_rl import presets  # noqa: F401
from robot_rl.commands.vehicle_eval import vehicle_distribution
from robot_rl.models.recurrent import GRUActor
from robot_rl.runs import load_actor
from sim.quadrotor.config import DomainRandomization
from sim.quadrotor.dynamics import POS
from sim.quadrotor.task import QuadrotorHoverEnv

SELECTION_SEED = 12_345  # a training-side draw: neither the held-out (4000037) nor the validation (777) one


def draw(task, n: int, seed: int, margin: float | None = None) -> dict:
    """``n`` episodes (state, disturbance, vehicle) from the task's training vehicle distribution (``margin``: the
    evaluation's, the published span widened by ``margin``), on the CPU."""
    vehicles = replace(task.vehicles, seed=seed) if margin is None else vehicle_distribution(seed, margin)
    cfg = replace(task, num_envs=n, device="cpu", noise=True, randomization=DomainRandomization(), vehicles=vehicles)
    env = QuadrotorHoverEnv(cfg, seed=seed)
    env.reset(seed=seed)
    return {"state": env.state.clone(), "force": env.force.clone(), "torque": env.torque.clone(),
            "vehicles": torch.stack([v.clone() for v in env.vehicles().values()], -1)}


class Flights:
    """``copies`` candidates x ``episodes`` noise-free envs (copy-major) without termination on ``device``."""

    def __init__(self, task, copies: int, episodes: int, device: str) -> None:
        self.n, self.copies, self.episodes = copies * episodes, copies, episodes
        cfg = replace(task, num_envs=self.n, device=device, noise=False, randomization=DomainRandomization(),
                      vehicles=replace(task.vehicles, enabled=True, seed=0), position_limit=1e3,
                      episode_length=10**6)
        self.env = QuadrotorHoverEnv(cfg, seed=0)
        self.limit, self.steps, self.device = task.position_limit, task.episode_length, device

    def load(self, init: dict) -> None:
        rep = lambda x: x.to(self.device).repeat(self.copies, *([1] * (x.dim() - 1)))  # noqa: E731
        self.env.vehicle_values = rep(init["vehicles"])
        self.env._apply_vehicles()
        self.s0, self.force, self.torque = rep(init["state"]), rep(init["force"]), rep(init["torque"])

    @torch.no_grad()
    def fly(self, policy) -> dict[str, torch.Tensor]:
        env = self.env
        env.state, env.force, env.torque = self.s0.clone(), self.force.clone(), self.torque.clone()
        env.target.zero_()
        env.history.zero_()
        env.steps.zero_()
        obs = env._observe(fresh=torch.ones(self.n, dtype=torch.bool, device=self.device))
        h = None
        peak = torch.zeros(self.n, device=self.device)
        barrier = torch.zeros(self.n, device=self.device)
        for _ in range(self.steps):
            a, h = policy(obs["policy"], h)
            obs, *_ = env.step(a)
            over = env.state[:, POS].abs().max(-1).values
            peak = torch.maximum(peak, over)
            barrier += torch.log1p(torch.relu((over - (self.limit - 0.08)) / 0.08)).square() * (peak <= self.limit)
        crashed = peak > self.limit
        unsettled = ~crashed & (env.state[:, POS].norm(dim=-1) > 0.1)
        shape = (self.copies, self.episodes)
        return {"crashed": crashed.view(shape).float(), "unsettled": unsettled.view(shape).float(),
                "barrier": barrier.view(shape)}


class BatchedGRU:
    """A :class:`GRUActor` with ``C`` weight sets ``theta [C, D]`` flown on ``C`` blocks of envs at once."""

    def __init__(self, actor: GRUActor) -> None:
        self.names = [k for k, _ in actor.named_parameters()]
        self.shapes = [p.shape for _, p in actor.named_parameters()]
        self.sizes = [p.numel() for _, p in actor.named_parameters()]
        self.theta0 = torch.cat([p.detach().reshape(-1) for _, p in actor.named_parameters()])
        self.act = actor.act
        self.state_size = actor.state_size

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self.sizes, dim=-1)
        return {k: p.reshape(theta.shape[0], *s) for k, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def policy(self, theta: torch.Tensor):
        w = self.unflatten(theta)
        c = theta.shape[0]
        s = self.state_size

        def step(obs: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
            o = obs.view(c, -1, obs.shape[-1])
            if h is None:
                h = torch.zeros(c, o.shape[1], s, device=o.device)
            x = self.act(torch.baddbmm(w["inp.bias"][:, None], o, w["inp.weight"].transpose(1, 2)))
            gi = torch.baddbmm(w["cell.bias_ih"][:, None], x, w["cell.weight_ih"].transpose(1, 2))
            gh = torch.baddbmm(w["cell.bias_hh"][:, None], h, w["cell.weight_hh"].transpose(1, 2))
            r = torch.sigmoid(gi[..., :s] + gh[..., :s])
            z = torch.sigmoid(gi[..., s:2 * s] + gh[..., s:2 * s])
            nn_ = torch.tanh(gi[..., 2 * s:] + r * gh[..., 2 * s:])
            h = (1.0 - z) * nn_ + z * h
            y = torch.baddbmm(w["out.bias"][:, None], torch.cat((x, h), -1), w["out.weight"].transpose(1, 2))
            return torch.tanh(y).reshape(-1, y.shape[-1]), h

        return step


def score(r: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per candidate: crash rate, then unsettled rate, then a little of the time near the bound (lower = better)."""
    return r["crashed"].mean(1) + 0.5 * r["unsettled"].mean(1) + 1e-3 * r["barrier"].mean(1)


def centred_ranks(x: torch.Tensor) -> torch.Tensor:
    ranks = torch.empty_like(x)
    ranks[x.argsort()] = torch.arange(len(x), device=x.device, dtype=x.dtype)
    return ranks / (len(x) - 1) - 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--population", type=int, default=128, help="antithetic: an even number of candidates")
    ap.add_argument("--episodes", type=int, default=1024)
    ap.add_argument("--selection-episodes", type=int, default=4096)
    ap.add_argument("--generations", type=int, default=10**6)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--steps", type=int, default=0, help="episode steps (0: the task's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=None, help="draw from the evaluation's span widened by this")
    ap.add_argument("--hard-fraction", type=float, default=None, help="override the run's vehicles.hard_fraction")
    ap.add_argument("--init", type=Path, default=None, help="start from an earlier --out's weights")
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    cfg, actor, _ = load_actor(args.run_dir)
    if not isinstance(actor, GRUActor):
        raise SystemExit(f"{args.run_dir}: es_finetune flies a recurrent (GRU) actor, got {type(actor).__name__}")
    task = cfg.task if not args.steps else replace(cfg.task, episode_length=args.steps)
    if args.hard_fraction is not None:
        task = replace(task, vehicles=replace(task.vehicles, hard_fraction=args.hard_fraction))
    dev = args.device
    net = BatchedGRU(actor)
    if args.init is not None:
        sd = torch.load(args.init)["state_dict"]
        net.theta0 = torch.cat([sd[k].reshape(-1) for k in net.names])
    theta = net.theta0.to(dev).clone()
    d, half = theta.numel(), args.population // 2
    train = Flights(task, 2 * half + 1, args.episodes, dev)
    select = Flights(task, 1, args.selection_episodes, dev)
    select.load(draw(task, args.selection_episodes, SELECTION_SEED, args.margin))
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    b1, b2 = 0.9, 0.999

    def evaluate(th: torch.Tensor) -> dict:
        r = select.fly(net.policy(th[None]))
        return {k: float(x.mean()) for k, x in r.items()}

    def save(b: dict) -> None:
        state = {k: p[0].cpu() for k, p in net.unflatten(b["theta"][None]).items()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": state, "generation": b["generation"]}, args.out)

    sel = evaluate(theta)
    best = {"generation": 0, **sel, "theta": theta.clone()}
    print(json.dumps({"generation": 0, "selection": sel, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    for g in range(1, args.generations + 1):
        if time.perf_counter() - t0 > args.minutes * 60:
            break
        train.load(draw(task, args.episodes, 1_000_000 + args.seed * 100_000 + g, args.margin))
        eps = torch.randn(half, d, generator=gen, device=dev)
        cand = torch.cat((theta + args.sigma * eps, theta - args.sigma * eps, theta[None]))
        r = train.fly(net.policy(cand))
        s = score(r)
        ranks = centred_ranks(-s[:-1])  # higher = better
        grad = (ranks[:half] - ranks[half:]) @ eps / (2 * half * args.sigma)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        theta = theta + args.lr * (m / (1 - b1**g)) / ((v / (1 - b2**g)).sqrt() + 1e-8)
        line = {"generation": g, "centre_crash": float(r["crashed"][-1].mean()),
                "pop_crash_mean": float(r["crashed"][:-1].mean()),
                "pop_crash_min": float(r["crashed"][:-1].mean(1).min()),
                "seconds": round(time.perf_counter() - t0, 1)}
        if g % args.eval_every == 0:
            sel = evaluate(theta)
            line["selection"] = sel
            if sel["crashed"] + 0.5 * sel["unsettled"] < best["crashed"] + 0.5 * best["unsettled"]:
                best = {"generation": g, **sel, "theta": theta.clone()}
                save(best)
        print(json.dumps(line), flush=True)
    save(best)
    print(json.dumps({"best_generation": best["generation"], "best_crashed": best["crashed"],
                      "best_unsettled": best["unsettled"], "start_selection": evaluate(net.theta0.to(dev)),
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
