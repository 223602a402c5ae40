"""Does an EXPO run's Q rank its candidates? Rolls out episodes where a chunk is chosen by ``--execute`` (``base``:
always the base's own chunk, candidate 0, i.e. the base alone; ``expo``: the argmax-Q candidate with mean edits,
the deployed policy) and, at every chunk decision, scores all candidates (the ``k`` base chunks' first actions and
their mean edits) with the run's Q ensemble; then compares the scores with what happened.

Figures (decisions of each env's first episode only; ``success`` is that episode's outcome, its Monte-Carlo return
up to the discount):

* ``value_auc``: how well Q(s, executed) separates decisions of episodes that succeed from those that fail (0.5:
  not at all). A Q that learned anything about the task values states.
* ``rank_corr``: under ``--execute base``, candidate 0 is a random draw among the ``k`` base chunks, so the
  correlation between its Q advantage ``Q(s, c0) - mean_j Q(s, c_j)`` and the episode's success is ~0 unless
  Q's ranking of chunks at a state predicts which one works (``rank_corr_se``: its standard error, 1/sqrt(n)).
* ``spread_candidates`` (std of Q over a state's base candidates), ``spread_members`` (std over ensemble members
  at the executed candidate), ``spread_states`` (std of Q(s, executed) over states): a ranking finer than the
  members' disagreement is noise.
* ``edit_size`` (mean |mean edit| per action dimension, normalised units) and ``edit_gain`` (mean Q(s, edit(c)) -
  Q(s, c)); ``chose_other`` / ``chose_edit``: how often the argmax is not candidate 0 / is an edit.

    PYTHONPATH=. python benchmarks/expo_diagnose.py RUN [--episodes 100] [--execute base|expo] [--seed 2000] \
        [--select-margin M]

``--execute expo --seed 1000003 --episodes 200`` runs exactly the task's held-out evaluation of the run (the same
episodes, base noise and policy as ``robot-rl eval RUN``), so its ``success`` is the held-out figure.

Last line: JSON of the figures above with ``success`` (the rollout's success rate) and ``decisions``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.expo import commit, propose
from robot_rl.residual.expo_inputs import agent_obs
from robot_rl.runners.expo import load_expo
from robot_rl.runners.resip import task_config
from sim.registry import get_task


def auc(score: torch.Tensor, label: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``label`` (ties count half)."""
    pos, neg = score[label], score[~label]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def corr(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    return float((x * y).sum() / (x.norm() * y.norm()).clamp(min=1e-12))


@torch.no_grad()
def diagnose(run: str, episodes: int, execute: str, seed: int, margin: float | None = None) -> dict[str, float]:
    cfg, policy, agent, _ = load_expo(run)
    if margin is not None:
        agent.cfg.select_margin = margin
    spec = get_task(cfg.task)
    env = spec.make_env(replace(task_config(cfg.task, cfg.wrench), num_envs=episodes, device="cpu"), seed=seed)
    obs = env.reset(seed=seed)
    base = FrozenChunkBase(policy, episodes, cfg.seed)
    base.reset(obs["policy"].float().cpu())
    k = cfg.expo.num_candidates
    done = torch.zeros(episodes, dtype=torch.bool)
    success = torch.zeros(episodes, dtype=torch.bool)
    rows: dict[str, list[torch.Tensor]] = {key: [] for key in ("env", "q", "q_std", "idx", "edit")}
    for _ in range(env.max_episode_steps):
        wrench = obs["wrench"].float().cpu() if cfg.wrench else None
        o = agent_obs(base.history, wrench)
        cands, due, chunks = propose(base, k)
        _, idx, all_c = agent.select(o, cands, stochastic=False)
        if len(due):
            q = agent.critic.q(o[due].repeat_interleave(2 * k, dim=0), all_c[due].reshape(-1, all_c.shape[-1]))
            q = q.view(q.shape[0], len(due), 2 * k)
            live = ~done[due]
            rows["env"].append(due[live])
            rows["q"].append(q.mean(0)[live])
            rows["q_std"].append(q.std(0)[live])
            rows["idx"].append(idx[due][live])
            rows["edit"].append((all_c[due, k:] - all_c[due, :k]).abs().mean((1, 2))[live])
        if execute == "base":
            idx = torch.zeros_like(idx)
        commit(base, due, chunks, idx)
        action = all_c[torch.arange(episodes), idx]
        obs, _, _, _, info = env.step(base.unnormalize_action(action))
        ended = info["done_mask"].cpu() & ~done
        success |= ended & info["success"].cpu().bool()
        done |= ended
        if bool(done.all()):
            break
        base.step(obs["policy"].float().cpu(), torch.zeros(episodes, dtype=torch.bool))  # as the evaluation does
    env.close()
    r = {key: torch.cat(v) for key, v in rows.items()}
    label = success[r["env"]]
    executed = r["q"][torch.arange(len(label)), r["idx"] if execute == "expo" else 0]
    adv = r["q"][:, 0] - r["q"][:, :k].mean(1)
    return {"success": success.double().mean().item(), "decisions": len(label),
            "value_auc": auc(executed, label), "rank_corr": corr(adv, label.double()) if k > 1 else float("nan"),
            "rank_corr_se": 1.0 / len(label) ** 0.5,
            "spread_candidates": r["q"][:, :k].std(1).mean().item() if k > 1 else 0.0,
            "spread_members": r["q_std"][:, 0].mean().item(), "spread_states": executed.std().item(),
            "edit_size": r["edit"].mean().item(), "edit_gain": (r["q"][:, k:] - r["q"][:, :k]).mean().item(),
            "chose_other": (r["idx"] != 0).double().mean().item(),
            "chose_edit": (r["idx"] >= k).double().mean().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="an EXPO run directory")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--execute", choices=("base", "expo"), default="base")
    ap.add_argument("--seed", type=int, default=2000, help="episode seed (1000003: the task's held-out episodes)")
    ap.add_argument("--select-margin", type=float, default=None, help="selection rule override (EXPOConfig)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = diagnose(args.run, args.episodes, args.execute, args.seed, args.select_margin)
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    print(json.dumps({"run": args.run, "execute": args.execute, "seed": args.seed,
                      "select_margin": args.select_margin, **out, "wall_s": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
