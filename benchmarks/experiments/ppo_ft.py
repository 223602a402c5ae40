"""Experiment: PPO fine-tuning of an APG-trained robust hover actor (crash = lost return + penalty).

usage: ppo_ft.py RUN OUT [--iters N] [--std S] [--lr LR] [--penalty P] [--ep-len L] [--envs N] [--seed S]
"""
import argparse
import copy
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robot_rl.algorithms.ppo import compute_gae, clipped_surrogate
from robot_rl.commands.vehicle_eval import fly_vehicles, vehicle_distribution
from robot_rl.models.mlp import MLP
from robot_rl.runners.base import make_env
from robot_rl.runs import load_actor

p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("out")
p.add_argument("--iters", type=int, default=300)
p.add_argument("--std", type=float, default=0.1)
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--critic-lr", type=float, default=1e-3)
p.add_argument("--penalty", type=float, default=50.0)
p.add_argument("--ep-len", type=int, default=200)
p.add_argument("--envs", type=int, default=256)
p.add_argument("--steps", type=int, default=64)
p.add_argument("--gamma", type=float, default=0.99)
p.add_argument("--lam", type=float, default=0.95)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--mb", type=int, default=4)
p.add_argument("--warm", type=int, default=30, help="critic-only iterations first")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--val-every", type=int, default=50)
p.add_argument("--val-vehicles", type=int, default=500)
p.add_argument("--fixed-std", action="store_true")
p.add_argument("--span0", action="store_true")
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)

cfg, actor, _ = load_actor(Path(a.run))
actor = actor.train()
for q in actor.parameters():
    q.requires_grad_(True)
tcfg = replace(cfg, algorithm="ppo", seed=cfg.seed + 1000 + a.seed,
               task=replace(cfg.task, num_envs=a.envs, episode_length=a.ep_len))
if a.span0:
    from sim.quadrotor.vehicles import VehicleDistribution
    tcfg = replace(tcfg, task=replace(tcfg.task, vehicles=replace(VehicleDistribution(), enabled=True)))
env = make_env(tcfg)
obs = env.reset()
cdim = env.obs_dims["critic"]
critic = nn.Sequential(nn.Linear(cdim, 256), nn.ELU(), nn.Linear(256, 256), nn.ELU(), nn.Linear(256, 1))
log_std = nn.Parameter(torch.full((env.action_dim,), math.log(a.std)))
opt_a = torch.optim.Adam(list(actor.parameters()) + ([] if a.fixed_std else [log_std]), lr=a.lr)
opt_c = torch.optim.Adam(critic.parameters(), lr=a.critic_lr)
gen = torch.Generator().manual_seed(a.seed)
val_dist = vehicle_distribution(seed=777, margin=0.0)


def validate(tag):
    pol = copy.deepcopy(actor).eval()
    with torch.no_grad():
        r = fly_vehicles(lambda o: pol(o), cfg.task, a.val_vehicles, val_dist)
    return {"tag": tag, "survival": r["survival"], "settle": r["settle"]}


log = []
v0 = validate(0)
print(json.dumps(v0), flush=True)
log.append(v0)
best = (v0["survival"], v0["settle"], copy.deepcopy(actor.state_dict()), 0)
t0 = time.time()
ep_ret = torch.zeros(a.envs)
crashes = resets = 0
for it in range(1, a.iters + 1):
    B = {k: [] for k in ("po", "co", "act", "logp", "val", "rew", "done", "boot")}
    for _ in range(a.steps):
        with torch.no_grad():
            mean = actor(obs["policy"])
            std = log_std.exp()
            act = mean + std * torch.randn(mean.shape, generator=gen)
            logp = torch.distributions.Normal(mean, std).log_prob(act).sum(-1)
            val = critic(obs["critic"]).squeeze(-1)
        nobs, rew, term, trunc, info = env.step(act)
        with torch.no_grad():
            fv = critic(info["final_obs"]["critic"]).squeeze(-1)
        r = rew - a.penalty * term.float()
        crashes += int(term.sum())
        resets += int((term | trunc).sum())
        for k, v in zip(B, (obs["policy"], obs["critic"], act, logp, val, r, (term | trunc).float(),
                            torch.where(trunc & ~term, fv, 0.0))):
            B[k].append(v.clone())
        obs = {k: v.clone() for k, v in nobs.items()}
    D = {k: torch.stack(v) for k, v in B.items()}
    with torch.no_grad():
        last = critic(obs["critic"]).squeeze(-1)
    adv, ret = compute_gae(D["rew"], D["val"], last, D["done"], D["boot"], a.gamma, a.lam)
    F = {k: D[k].flatten(0, 1) for k in ("po", "co", "act", "logp", "val")}
    adv = adv.flatten()
    ret = ret.flatten()
    advn = (adv - adv.mean()) / (adv.std() + 1e-8)
    n = adv.shape[0]
    pls = vls = 0.0
    for _ in range(a.epochs):
        perm = torch.randperm(n, generator=gen)
        for idx in perm.chunk(a.mb):
            v = critic(F["co"][idx]).squeeze(-1)
            vl = ((v - ret[idx]) ** 2).mean()
            opt_c.zero_grad()
            vl.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), 10.0)
            opt_c.step()
            vls += vl.item()
            if it > a.warm:
                d = torch.distributions.Normal(actor(F["po"][idx]), log_std.exp())
                pl = clipped_surrogate(d.log_prob(F["act"][idx]).sum(-1), F["logp"][idx], advn[idx], 0.2)
                opt_a.zero_grad()
                pl.backward()
                nn.utils.clip_grad_norm_(list(actor.parameters()) + [log_std], 1.0)
                opt_a.step()
                pls += pl.item()
    if it % 10 == 0:
        print(f"it {it} t {time.time() - t0:.0f}s crash/reset {crashes}/{resets} vl {vls / a.epochs / a.mb:.2f} "
              f"std {log_std.exp().mean().item():.4f} ret {ret.mean().item():.1f}", flush=True)
        crashes = resets = 0
    if it > a.warm and (it - a.warm) % a.val_every == 0:
        v = validate(it)
        print(json.dumps(v), flush=True)
        log.append(v)
        if (v["survival"], v["settle"]) > best[:2]:
            best = (v["survival"], v["settle"], copy.deepcopy(actor.state_dict()), it)

actor.load_state_dict(best[2])
actor.eval()
held = fly_vehicles(lambda o: actor(o), cfg.task, 1000, vehicle_distribution(margin=0.0))
res = {"best_iter": best[3], "val": log, "held_survival": held["survival"], "held_settle": held["settle"],
       "args": vars(a), "minutes": (time.time() - t0) / 60}
torch.save(actor.state_dict(), out / "actor.pt")
(out / "result.json").write_text(json.dumps(res, indent=1))
print(json.dumps({k: res[k] for k in ("best_iter", "held_survival", "held_settle", "minutes")}), flush=True)
