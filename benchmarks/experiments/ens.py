"""Experiment: average the actions of several robust hover policies (same observation layout)."""
import json
import sys
from pathlib import Path

import torch

from robot_rl.commands.vehicle_eval import fly_vehicles, vehicle_distribution
from robot_rl.runs import load_actor

torch.set_num_threads(1)
seed = int(sys.argv[1])
runs = sys.argv[2:]
actors = []
for r in runs:
    cfg, actor, _ = load_actor(Path(r))
    actors.append(actor)
task = load_actor(Path(runs[0]))[0].task


def pol(o):
    with torch.no_grad():
        return torch.stack([a(o) for a in actors]).mean(0)


res = fly_vehicles(pol, task, 1000, vehicle_distribution(seed=seed, margin=0.0))
print(json.dumps({"seed": seed, "runs": runs, "survival": res["survival"], "settle": res["settle"]}), flush=True)
