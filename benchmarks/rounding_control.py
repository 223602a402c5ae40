"""What float rounding alone does to a learning check: train a preset with every initial weight moved one ulp.

``robot-rl train PRESET --seed S`` exactly (export and held-out evaluation included), except that after the
networks are built every actor and critic weight moves one float32 ulp up or down (random signs from
``--ulp-seed``; the critic targets copy the critics). The perturbation is a thousand times smaller than one
Adam step and of the size of the rounding differences between two implementations of the same update
(``fused_divergence.py``); the outcome beside the unperturbed run's says how much of a difference between two
such implementations' learning checks rounding can explain. The last line is the training summary's JSON.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/rounding_control.py panda-reach-sac --seed 0 \
        --out runs/reach0-ulp [--fused]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # as robot-rl's CLI: MuJoCo picks its GL backend when first imported

import torch

import robot_rl.commands.train as train_command
from robot_rl.config import get_preset


def perturb_one_ulp(modules: list[torch.nn.Module], seed: int) -> None:
    """Move every parameter of ``modules`` one float32 ulp up or down (random signs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                up = torch.rand(p.shape, generator=g) < 0.5
                p.copy_(torch.nextafter(p, torch.where(up, torch.tensor(float("inf")), torch.tensor(-float("inf")))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ulp-seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fused", action="store_true", help="the fast update path (TD3Config/SACConfig.fused)")
    args = ap.parse_args()
    cfg = get_preset(args.preset)
    if cfg.algorithm not in ("sac", "td3"):
        raise SystemExit(f"{args.preset} trains {cfg.algorithm}; this control covers sac/td3")
    cfg.seed = args.seed
    getattr(cfg, cfg.algorithm).fused = args.fused
    cfg.checkpoint_every = cfg.eval_every = 0  # as the learning check: these do not change the training
    make_runner = train_command.make_runner

    def perturbed(cfg_, run_dir):
        runner = make_runner(cfg_, run_dir)
        algo = runner.algo
        nets = [algo.actor, algo.critic]
        perturb_one_ulp(nets, args.ulp_seed)
        algo.critic_target.load_state_dict(algo.critic.state_dict())
        if hasattr(algo, "actor_target"):
            algo.actor_target.load_state_dict(algo.actor.state_dict())
        return runner

    train_command.make_runner = perturbed
    out = train_command.run_training(cfg, args.out)
    print(json.dumps({k: v for k, v in out.items() if k not in ("export", "report")}, default=str))


if __name__ == "__main__":
    main()
