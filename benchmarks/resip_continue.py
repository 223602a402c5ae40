"""Continue a ResiP run from its checkpoint with a smaller fixed exploration std (a late std drop).

``robot-rl train --resume`` continues a run with its saved config only; this script copies RUN's checkpoint into
OUT, sets the residual's log-std to ``--log-std`` (fixed) and trains on to ``--total-env-steps``, everything else
(optimiser state, env, base noise, RNG) as saved. It measures whether the deterministic residual that deploys
gains when the last part of training explores less (``benchmarks/README.md``, the wrench section).

    PYTHONPATH=. python benchmarks/resip_continue.py RUN OUT --log-std -2 --total-env-steps 1000000

Last line: {"run", "out", "from_env_steps", "env_steps", "log_std", "train_time_s"}; judge OUT with
``benchmarks/resip_failures.py OUT``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from robot_rl.commands.resip import load_resip_config
from robot_rl.runners.resip import ResiPRunner


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="ResiP run directory (or a copy of one of its checkpoints)")
    p.add_argument("out", help="new run directory (must not hold a checkpoint)")
    p.add_argument("--log-std", type=float, required=True, help="fixed log-std from the checkpoint on")
    p.add_argument("--total-env-steps", type=int, required=True)
    p.add_argument("--checkpoint-every", type=int, default=100_000)
    args = p.parse_args()
    src, out = Path(args.run), Path(args.out)
    if (out / "checkpoint.json").exists():
        raise SystemExit(f"{out} already holds a checkpoint; choose another OUT")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copy(src / name, out / name)
    cfg = load_resip_config(src)
    if cfg.learn_std:
        raise SystemExit("the run learns its std; this script fixes it")
    cfg.total_env_steps, cfg.checkpoint_every, cfg.log_std_init = (args.total_env_steps, args.checkpoint_every,
                                                                   args.log_std)
    runner = ResiPRunner(cfg, out)  # writes OUT/config.json with the new std and budget
    runner.load(out / "checkpoint")
    start = runner.env_steps
    with torch.no_grad():
        runner.actor.log_std.fill_(args.log_std)
    res = runner.train()
    if runner.logger:
        runner.logger.close()
    print(json.dumps({"run": str(src), "out": str(out), "from_env_steps": start, "env_steps": res["env_steps"],
                      "log_std": args.log_std, "train_time_s": res["train_time_s"]}))


if __name__ == "__main__":
    main()
