"""Does the re-ranking value carry a signal? Argmax vs argmin re-ranking and the value's success prediction.

Trains the chunk value exactly as ``robot-rl train vgps`` (base rollouts on seed ``seed + 10000`` + the base's
demonstrations), then on the task's held-out episodes (same base noise): the base, re-ranking with
the value (argmax of ``--k``) and with the negated value (argmin). A value that separates good from bad chunks
of one state puts argmax above the base and argmin below it; argmax ~ argmin ~ base says it does not. Between
states: the ROC AUC with which V of the first history, and Q of the first executed chunk, predict the success
of ``--probe-episodes`` fresh base episodes (seed ``seed + 20000``; 0.5 = no signal).

    PYTHONPATH=. python benchmarks/rerank_value_check.py --base RUN [--episodes 200] [--k 8]

Last line: {"base_success", "argmax_success", "argmin_success", "auc_v_start", "auc_q_start", ...}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.residual.rerank import base_rollouts, demo_episodes, evaluate_rerank, train_value
from robot_rl.residual.value import IQLConfig, chunk_windows_rl
from robot_rl.runners.bc import load_policy


class Negated(torch.nn.Module):
    """A value whose score is the negative of ``value``'s (re-ranking then runs the worst-scored chunk)."""

    def __init__(self, value: torch.nn.Module) -> None:
        super().__init__()
        self.value = value

    def score(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        return -self.value.score(obs, chunk)


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC of ``score`` for the binary ``label`` (ties count half)."""
    pos, neg = score[label], score[~label]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rollouts", type=int, default=200)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--probe-episodes", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = json.loads((Path(args.base) / "config.json").read_text())
    task, demos = cfg["task"], cfg.get("demos", "")
    policy, _ = load_policy(args.base)
    t0 = time.perf_counter()
    eps = base_rollouts(task, policy, args.rollouts, seed=args.seed + 10_000)
    eps += demo_episodes(demos, policy) if demos else []
    value = train_value(policy, eps, IQLConfig(), args.steps, args.seed)
    out = {"task": task, "episodes": args.episodes, "k": args.k, "value_wall_s": round(time.perf_counter() - t0, 1)}
    for name, v in (("base", None), ("argmax", value), ("argmin", Negated(value))):
        res = evaluate_rerank(task, policy, v, args.k, args.episodes, seed=args.seed)
        out[f"{name}_success"] = res["success"]
        print(json.dumps({"row": name, "success": res["success"], "mean_length": res["mean_episode_length"]}),
              flush=True)
    probe = base_rollouts(task, policy, args.probe_episodes, seed=args.seed + 20_000)
    to, n = policy.n_obs_steps, policy.n_action_steps
    first = [chunk_windows_rl(e["obs"], e["act"], e["rew"], e["terminated"], to, n, 0.99) for e in probe]
    obs = torch.as_tensor(np.stack([w["obs"][0] for w in first]), dtype=torch.float32)
    chunk = torch.as_tensor(np.stack([w["chunk"][0] for w in first]), dtype=torch.float32)
    label = np.array([bool(e["rew"].any()) for e in probe])
    with torch.no_grad():
        out["auc_v_start"] = auc(value.value(obs).numpy(), label)
        out["auc_q_start"] = auc(value.score(obs, chunk).numpy(), label)
    out["probe_success"] = float(label.mean())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
