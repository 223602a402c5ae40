"""Nominal (paper model, 256 held-out episodes) and far-vehicle figures of a GRU experiment run."""
import json, sys
from dataclasses import replace
from pathlib import Path
import torch
sys.argv += []
from robot_rl.presets import crazyflie_hover_robust
from sim.quadrotor.evaluation import evaluate
from sim.quadrotor.vehicles import VehicleDistribution
sys.path.insert(0, "/tmp/r16")
torch.set_num_threads(1)
run = Path(sys.argv[1]); hidden = 64
args = json.loads((run / "gru_result.json").read_text())["args"]
import importlib.util
cfg = crazyflie_hover_robust()
task = cfg.task
from torch import nn
from robot_rl.models.mlp import FastTanh
class GRUActor(nn.Module):
    def __init__(self, in_dim, hidden, act_dim):
        super().__init__()
        self.in_idx = list(range(in_dim))
        self.inp = nn.Linear(in_dim, hidden); self.act = FastTanh(); self.cell = nn.GRUCell(hidden, hidden)
        self.out = nn.Linear(2 * hidden, act_dim)
    def forward(self, obs, h):
        x = self.act(self.inp(obs[:, self.in_idx])); h = self.cell(x, h)
        return torch.tanh(self.out(torch.cat((x, h), -1))), h
actor = GRUActor(210, args["hidden"], 4); actor.load_state_dict(torch.load(run / "gru_actor.pt")); actor.eval()
class Stateful:
    def __init__(self): self.h = None
    def __call__(self, o):
        if self.h is None: self.h = torch.zeros(o.shape[0], args["hidden"])
        with torch.no_grad():
            a, self.h = actor(o, self.h)
        return a
nom = evaluate(Stateful(), replace(task, vehicles=VehicleDistribution()), 256, 0.1)
print(json.dumps({"run": str(run), "nominal": [nom["survival"], nom["settle"]]}))
