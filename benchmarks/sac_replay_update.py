"""Explicit SAC: ``update(buffer.sample(...))`` against ``update_from_replay`` (one numba call), interleaved.

A replay of 20 000 random rows at ``crazyflie-hover-sac``'s shapes (policy 146, critic 28, 4 actions, 64-64
networks, batch 256); both variants draw fresh rows every call (``off_policy_profile.py``'s ``critic_update_us``
reuses one batch, which stays in cache). Reports CPU time of this thread per update (critic + actor step), best
and median over the rounds.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/sac_replay_update.py
"""

from __future__ import annotations

import argparse
import time

import torch

from robot_rl.algorithms.sac import SAC, SACConfig
from robot_rl.storage.replay import ReplayBuffer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    p, c, a, rows, batch = 146, 28, 4, 20_000, 256
    buf = ReplayBuffer.for_env(rows, p, c, a, 2)
    g = torch.Generator().manual_seed(0)
    buf.add(**{k: torch.randn(rows, *([w] if w else []), generator=g) for k, w in
               [("policy_obs", p), ("critic_obs", c), ("action", a), ("reward_terms", 2), ("reward", 0),
                ("next_policy_obs", p), ("next_critic_obs", c), ("terminated", 0)]})
    cfg = SACConfig(actor_hidden=(64, 64), critic_hidden=(64, 64), explicit=True, fused=True)
    algo = SAC(cfg, p, c, a, torch.Generator().manual_seed(0))
    for _ in range(4):  # the optimizers' state (their first steps go through torch)
        algo.update_from_replay(buf, batch)
    impls = {"sample+update": lambda: algo.update(buf.sample(batch, algo.gen)),
             "update_from_replay": lambda: algo.update_from_replay(buf, batch)}
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(args.rounds):
        for name, fn in impls.items():
            for _ in range(20):
                fn()
            t = time.thread_time()
            for _ in range(args.reps):
                fn()
            times[name].append((time.thread_time() - t) / args.reps * 1e6)
    for name, v in times.items():
        print(f"{name:<20} best {min(v):7.0f} us  median {sorted(v)[len(v) // 2]:7.0f} us per update")


if __name__ == "__main__":
    main()
