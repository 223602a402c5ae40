"""Experiment: a recurrent (GRU) actor trained by APG (autograd through the differentiable fused env).

usage: gru_apg.py OUT [--seed S] [--lr LR] [--updates U] [--hidden H] [--inputs full|state]
"""
import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from robot_rl.algorithms.common import make_optimizer
from robot_rl.commands.vehicle_eval import fly_vehicles, vehicle_distribution
from robot_rl.models.mlp import FastTanh
from robot_rl.presets import crazyflie_hover_robust
from robot_rl.runs import make_runner

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--lr-final", type=float, default=1e-4)
p.add_argument("--updates", type=int, default=7000)
p.add_argument("--hidden", type=int, default=64)
p.add_argument("--inputs", default="full")
p.add_argument("--log-every", type=int, default=250)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)


class GRUActor(nn.Module):
    def __init__(self, in_idx, hidden, act_dim, hover):
        super().__init__()
        self.in_idx = in_idx
        self.inp = nn.Linear(len(in_idx), hidden)
        self.act = FastTanh()
        self.cell = nn.GRUCell(hidden, hidden)
        self.out = nn.Linear(2 * hidden, act_dim)
        with torch.no_grad():
            self.out.weight.mul_(0.01)
            self.out.bias.copy_(torch.as_tensor(hover, dtype=torch.float64).clamp(-0.999, 0.999).atanh()
                                .expand_as(self.out.bias))

    def forward(self, obs, h):
        x = self.act(self.inp(obs[:, self.in_idx]))
        h = self.cell(x, h)
        return torch.tanh(self.out(torch.cat((x, h), -1))), h


cfg = crazyflie_hover_robust()
cfg = replace(cfg, seed=a.seed, out=a.out, apg=replace(cfg.apg, backprop="autograd", lr=a.lr, lr_final=a.lr_final),
              on_policy=replace(cfg.on_policy, total_env_steps=a.updates * cfg.task.num_envs * cfg.apg.horizon))
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
runner = make_runner(cfg, out)
env = runner.env
dim = env.obs_dims["policy"]
idx = list(range(dim)) if a.inputs == "full" else list(range(18)) + list(range(dim - 4, dim))
actor = GRUActor(idx, a.hidden, env.action_dim, env.hover_action)
algo = runner.algo
algo.actor = actor
algo.opt = make_optimizer(actor.parameters(), a.lr, 0.0)
h = torch.zeros(env.num_envs, a.hidden)
obs = runner.obs
t0 = time.time()
log = []
for u in range(a.updates):
    env.detach()
    algo.set_progress(u / a.updates)
    h = h.detach()
    total = torch.zeros(())
    rets = []
    for _ in range(cfg.apg.horizon):
        action, h = actor(obs["policy"], h)
        obs, reward, term, trunc, _ = env.step(action)
        done = term | trunc
        h = h * (~done)[:, None].float()
        total = total + reward.mean()
        total = total - runner._barrier(env.position_error(), done)
        runner._track_episodes(reward.detach(), done)
    stats = algo.update(total / cfg.apg.horizon)
    env.detach()
    obs = {k: v.detach().clone() for k, v in obs.items()}
    if (u + 1) % a.log_every == 0:
        r = runner.recent
        ln = sum(r["length"]) / max(len(r["length"]), 1)
        print(f"u {u + 1} t {time.time() - t0:.0f}s loss {stats['apg_loss'].item():.3f} gn "
              f"{stats['grad_norm'].item():.2f} eplen {ln:.0f}", flush=True)
        r["length"].clear()
        r["return"].clear()
    if (u + 1) % 1000 == 0:
        torch.save(actor.state_dict(), out / "gru_actor.pt")
torch.save(actor.state_dict(), out / "gru_actor.pt")
train_min = (time.time() - t0) / 60


class Stateful:
    def __init__(self):
        self.h = None

    def __call__(self, o):
        if self.h is None:
            self.h = torch.zeros(o.shape[0], a.hidden)
        with torch.no_grad():
            act, self.h = actor(o, self.h)
        return act


actor.eval()
res = {}
for name, seed in (("val", 777), ("held", None)):
    kw = {} if seed is None else {"seed": seed}
    r = fly_vehicles(Stateful(), cfg.task, 1000, vehicle_distribution(margin=0.0, **kw))
    res[name] = [r["survival"], r["settle"]]
res["train_min"] = train_min
res["args"] = vars(a)
(out / "gru_result.json").write_text(json.dumps(res))
print(json.dumps(res), flush=True)
