"""Re-ranking with a value fitted to branched base rollouts: K chunks from one state, each with an outcome.

``rerank``'s IQL value learns from base rollouts where each state has one executed chunk, and does not rank one
state's K samples (benchmarks/README.md). ``rerank_oracle.py`` showed that the base's own samples hold better
chunks. This fits a value to exactly that contrast, offline, on episodes of the training seed (never the
evaluation seeds): ``rerank_oracle.run`` (the best of K by a ``--lookahead``-step simulated continuation runs)
records, at every replanning, the K candidates' executed parts and their scores (+1 success, -1 failure, 0
neither); an ensemble Q (:class:`robot_rl.residual.q_ensemble.QEnsemble` on the normalised observation history
and the executed chunk) regresses each candidate's score minus the mean score of its state (only the ranking
within a state matters, so the state's own value is not learned). Then re-ranking as ``rerank`` runs it
(:func:`robot_rl.residual.rerank.evaluate_rerank`: K samples, the highest Q runs) on the held-out episodes, the
plain base beside it. No policy training steps; ``value_env_steps`` counts every simulated step of the data.

    PYTHONPATH=. python benchmarks/rerank_branched.py runs/lift4/dp-seed0 --episodes 64 --k 8 --lookahead 64

Last line: {"task", "base_success", "rerank_success", "gained", "lost" (held-out episodes re-ranking won / lost
against the base), "value_env_steps", "k", "eval_episodes", "mixed_fraction" (states whose K scores differ)}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.rerank_oracle import run
from robot_rl.residual.q_ensemble import QEnsemble
from robot_rl.residual.rerank import evaluate_rerank
from robot_rl.runners.bc import load_policy


class BranchValue:
    """The re-ranking score of :func:`robot_rl.residual.rerank.rerank_act`: the ensemble mean of ``q``."""

    def __init__(self, q: QEnsemble) -> None:
        self.q = q.eval()

    @torch.no_grad()
    def score(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        return self.q(obs, chunk).mean(0)


def relative_scores(record: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One row per (state, candidate): history, executed chunk and the score minus its state's mean score."""
    hist = torch.cat([h.repeat_interleave(c.shape[1], dim=0) for h, c, _ in record])
    chunk = torch.cat([c.flatten(0, 1) for _, c, _ in record])
    scores = torch.cat([s for _, _, s in record])
    return {"obs": hist, "chunk": chunk, "target": (scores - scores.mean(1, keepdim=True)).flatten(),
            "mixed": (scores.max(1).values > scores.min(1).values).float()}


def fit(policy: Any, data: dict[str, torch.Tensor], steps: int, seed: int, batch_size: int = 256) -> BranchValue:
    """Regress ``data["target"]`` on (history, chunk) for ``steps`` Adam steps."""
    torch.manual_seed(seed)
    to = policy.n_obs_steps
    q = QEnsemble(2, data["obs"].shape[1], data["chunk"].shape[1], (256, 256), policy.obs_norm.mid.repeat(to),
                  policy.obs_norm.span.repeat(to))
    opt = torch.optim.Adam(q.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(data["target"]), (batch_size,), generator=gen)
        loss = ((q(data["obs"][idx], data["chunk"][idx]) - data["target"][idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return BranchValue(q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a dp-<task> run (the frozen base)")
    ap.add_argument("--episodes", type=int, default=64, help="branched training episodes (one per env)")
    ap.add_argument("--k", type=int, default=8, help="candidates per replanning, in the data and when re-ranking")
    ap.add_argument("--lookahead", type=int, default=64, help="control steps each candidate is simulated")
    ap.add_argument("--steps", type=int, default=5000, help="value gradient steps")
    ap.add_argument("--eval-episodes", type=int, default=200)
    ap.add_argument("--data", type=Path, default=None, help="keep the branched data here (torch.save); if the file "
                    "exists, load it instead of collecting")
    ap.add_argument("--seed", type=int, default=0, help="base noise and value seed (the training episodes: env "
                    "seed + 10000, as rerank's base rollouts)")
    args = ap.parse_args()
    if args.k < 2 or args.episodes < 1 or args.lookahead < 1 or args.steps < 1:
        raise SystemExit("need --k >= 2 and --episodes, --lookahead, --steps >= 1")
    torch.set_num_threads(1)
    policy, _ = load_policy(args.run)
    t0 = time.perf_counter()
    if args.data is not None and args.data.exists():
        col = torch.load(args.data)
        if col["options"]["run"] != str(args.run):
            raise SystemExit(f"{args.data} holds branched data of {col['options']['run']}, not of {args.run}")
        print(f"branched data from {args.data} (its options: {col['options']})", flush=True)
    else:
        record: list = []
        col = run(args.run, args.episodes, args.k, args.lookahead, args.seed, env_seed=args.seed + 10_000,
                  record=record)
        options = {"run": str(args.run), **{k: getattr(args, k) for k in ("episodes", "k", "lookahead", "seed")}}
        col = {**col, "record": record, "options": options}
        if args.data is not None:  # atomically: an interrupted save must not pass for data next time
            tmp = args.data.with_name(args.data.name + ".tmp")
            torch.save(col, tmp)
            os.replace(tmp, args.data)
    data = relative_scores(col["record"])
    print(json.dumps({"collected": len(data["target"]), "states": int(len(data["mixed"])),
                      "mixed_fraction": round(data["mixed"].mean().item(), 4), "oracle_success_train": col["success"],
                      "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)
    value = fit(policy, data, args.steps, args.seed)
    task = col["task"]
    base = evaluate_rerank(task, policy, None, 1, args.eval_episodes, seed=args.seed)
    reranked = evaluate_rerank(task, policy, value, args.k, args.eval_episodes, seed=args.seed)
    pairs = list(zip(base["episode_success"], reranked["episode_success"], strict=True))
    print(json.dumps({"task": task, "base_success": base["success"], "rerank_success": reranked["success"],
                      "gained": sum(r and not b for b, r in pairs), "lost": sum(b and not r for b, r in pairs),
                      "value_env_steps": col["env_steps_simulated"], "k": args.k, "eval_episodes": args.eval_episodes,
                      "mixed_fraction": round(data["mixed"].mean().item(), 4)}))


if __name__ == "__main__":
    main()
