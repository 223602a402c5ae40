"""Does a SAC hover run's critic tell a settled hover from an offset one, and what makes the policy sag?

Flies a SAC run's last actor (the one its last critic was trained for) on the held-out hover episodes
(``robot-rl eval``'s: 256 episodes, ``evaluation.seed``), and prints:

- the per-step reward gap between hovering 5 cm and 20 cm off the target under the run's final weights (with
  the learner's ``precision_bonus``), and that gap over the discount horizon ``1 / (1 - gamma)``: what the critic
  must resolve;
- the critic's RMS error against Monte-Carlo returns of the same flights (discounted sum of the learner's reward
  to the end of the episode, the critic's value of the last state added), and its twin disagreement: the
  critic's noise;
- the mean Q and the mean Monte-Carlo return of states 2-4 s into an episode, by distance to the target: whether
  the critic's values separate the settled states from the offset ones as the returns do;
- at those states, the critic's gradient along the collective thrust (``dQ/da`` summed over the four motors),
  split by the sign of the height error, where along the thrust the critic's Q peaks, and the pull of the
  entropy bonus's tanh correction toward a = 0 (``2 alpha a / (1 - a^2)`` per motor, summed) that the critic's
  gradient must balance: if the critic asks for more thrust where the drone sags and nothing holds the actor
  back, the sag is the actor's; if the critic is nearly flat there and the pull matches its gradient, the sag is
  where a weak critic gradient and the entropy bonus balance;
- the true effect on Q of 0.2 more collective thrust for one step 2.5 s into the episode (the flight with the
  pulse against the same flight without it, same noise), against the critic's;
- survival, settle and the mean final z offset of the deterministic actor (tanh of the mean, as deployed) and of
  the sampled one (as trained): whether the sag comes from the train/deploy difference of a stochastic policy.

Last line: JSON.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/sac_hover_critic.py runs/crazyflie-hover-sac-settle
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from robot_rl.algorithms.sac import SAC
from robot_rl.checkpoint import load_checkpoint
from robot_rl.runs import load_config
from sim.quadrotor.config import DomainRandomization, RewardWeights
from sim.quadrotor.task import QuadrotorHoverEnv, reward_from_terms
from sim.quadrotor.vehicles import VehicleDistribution

BINS = ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 1.0))


def learner_reward(terms: torch.Tensor, terminated: torch.Tensor, weights: RewardWeights, oc) -> torch.Tensor:
    """The reward the off-policy runner stores (``OffPolicyRunner._shaped``) for a quadrotor run."""
    r = reward_from_terms(terms, weights) + oc.termination_reward * terminated.float()
    if oc.precision_bonus:
        r = r + oc.precision_bonus * torch.exp(-terms[..., 0] / oc.precision_width ** 2)
    return r


def fly(env: QuadrotorHoverEnv, algo: SAC, seed: int, sample: bool, gen: torch.Generator):
    obs = env.reset(seed=seed)
    n, steps = env.num_envs, env.cfg.episode_length
    alive = torch.ones(n, dtype=torch.bool)
    rec = {"critic": [], "action": [], "terms": [], "terminated": [], "alive": []}
    for _ in range(steps):
        a = algo.actor.sample(obs["policy"], gen)[0] if sample else algo.actor(obs["policy"])
        rec["critic"].append(obs["critic"])
        rec["alive"].append(alive.clone())
        obs, _, terminated, _, info = env.step(a)
        rec["action"].append(a)
        rec["terms"].append(info["reward_terms"])
        rec["terminated"].append(terminated & alive)
        alive &= ~terminated
        rec.setdefault("final", []).append(info["final_obs"]["critic"][:, :3].clone())
    last = info["final_obs"]  # the states after the last step (all episodes time out there)
    out = {k: torch.stack(v) for k, v in rec.items()}
    out["last_critic"], out["last_action"] = last["critic"], algo.actor(last["policy"])
    return out, alive


def pulse_gain(env: QuadrotorHoverEnv, algo: SAC, seed: int, w: RewardWeights, oc, gamma: float,
               t0: int = 250, delta: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """The true effect on Q of ``delta`` more collective thrust for one step at ``t0``: the discounted learner
    reward to the end of the episode of that flight minus the unchanged one (same noise: the env's state
    including its random stream is restored), per episode alive at ``t0``, and the z error there."""
    obs = env.reset(seed=seed)
    alive = torch.ones(env.num_envs, dtype=torch.bool)
    for _ in range(t0):
        obs, _, terminated, _, _ = env.step(algo.actor(obs["policy"]))
        alive &= ~terminated
    start, z = env.state_dict(), obs["critic"][:, 2].clone()
    returns = []
    for d in (0.0, delta):
        env.load_state_dict(start)
        o, ret, disc, live = obs, torch.zeros(env.num_envs), 1.0, alive.clone()
        for t in range(env.cfg.episode_length - t0):
            a = algo.actor(o["policy"]) + (d if t == 0 else 0.0)
            o, _, terminated, _, info = env.step(a.clamp(-1, 1))
            ret += disc * live.float() * learner_reward(info["reward_terms"], terminated, w, oc)
            live &= ~terminated
            disc *= gamma
        returns.append(ret)
    return (returns[1] - returns[0])[alive], z[alive]


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--episodes", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.run)
    if cfg.algorithm != "sac":
        raise SystemExit(f"{args.run} is a {cfg.algorithm} run; this reads a SAC critic")
    tensors, meta = load_checkpoint(args.run / "checkpoint")
    task = replace(cfg.task, num_envs=args.episodes, device="cpu", noise=True, randomization=DomainRandomization(),
                   vehicles=VehicleDistribution())
    env = QuadrotorHoverEnv(task, seed=cfg.evaluation.seed)
    dims = env.obs_dims
    algo = SAC(cfg.sac, dims["policy"], dims["critic"], env.action_dim)
    for name in ("actor", "critic"):
        getattr(algo, name).load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items()
                                             if k.startswith(name + ".")})
    log_alpha = float(tensors["temperature.0"])
    alpha = float(torch.tensor(log_alpha).exp())
    w = RewardWeights(*tensors["env.reward_weights"].tolist()[:5], scale=float(tensors["env.reward_weights"][5]),
                      constant=float(tensors["env.reward_weights"][6]))
    oc, gamma = cfg.off_policy, cfg.sac.gamma
    gen = torch.Generator().manual_seed(0)

    # what the critic must resolve: the learner's reward at 5 cm and 20 cm from the target, all else at hover
    terms = torch.zeros(2, 5)
    terms[:, 0] = torch.tensor([0.05, 0.2]) ** 2
    r5, r20 = learner_reward(terms, torch.zeros(2, dtype=torch.bool), w, oc).tolist()
    out = {"run": str(args.run), "env_steps": meta["env_steps"], "weights": w.as_list(), "scale": w.scale,
           "constant": w.constant, "alpha": round(alpha, 5),
           "reward_5cm": round(r5, 3), "reward_20cm": round(r20, 3),
           "q_gap_5_vs_20cm_over_horizon": round((r5 - r20) / (1 - gamma), 1)}

    for mode in ("deterministic", "sampled"):
        rec, alive = fly(env, algo, cfg.evaluation.seed, mode == "sampled", gen)
        final = rec["final"][-1][alive]
        out[mode] = {"survival": round(alive.double().mean().item(), 4),
                     "settle": round(((final.norm(dim=-1) < cfg.evaluation.settle_radius).sum() / args.episodes)
                                     .item(), 4),
                     "median_final_error_m": round(final.norm(dim=-1).median().item(), 4),
                     "mean_final_offset_m": [round(v, 4) for v in final.mean(0).tolist()]}
        if mode != "deterministic":
            continue
        # Monte-Carlo returns of the learner's reward, bootstrapped with the critic at the last step
        r = learner_reward(rec["terms"], rec["terminated"], w, oc)  # [T, N]
        x = torch.cat((rec["critic"], rec["action"]), dim=-1)
        q2 = algo.critic(x.reshape(-1, x.shape[-1])).reshape(2, *x.shape[:2])  # [2, T, N]
        q = q2.min(0).values
        T = r.shape[0]
        g = torch.zeros_like(r)
        # the time-out: the episode would go on, so the critic's value of the state after the last step
        nxt = algo.critic(torch.cat((rec["last_critic"], rec["last_action"]), dim=-1)).squeeze(-1).min(0).values
        for t in range(T - 1, -1, -1):
            g[t] = r[t] + gamma * (~rec["terminated"][t]).float() * nxt
            nxt = g[t]
        live = rec["alive"]
        window = live.clone()
        window[:200] = False  # 2-4 s: past the recovery, where the settle is decided
        window[-100:] = False  # and far enough from the end that the bootstrap matters little
        dist = rec["critic"][..., :3].norm(dim=-1)
        err = (q - g)[window]
        out["critic_rms_error_vs_mc"] = round(err.pow(2).mean().sqrt().item(), 2)
        out["critic_mean_error_vs_mc"] = round(err.mean().item(), 2)
        out["twin_disagreement_rms"] = round((q2[0] - q2[1])[window].pow(2).mean().sqrt().item(), 2)
        rows = []
        for lo, hi in BINS:
            m = window & (dist >= lo) & (dist < hi)
            if int(m.sum()) == 0:
                continue
            rows.append({"dist_m": [lo, hi], "states": int(m.sum()), "mean_q": round(q[m].mean().item(), 1),
                         "mean_mc_return": round(g[m].mean().item(), 1),
                         "mean_reward": round(r[m].mean().item(), 3)})
        out["by_distance"] = rows
        # the critic's gradient along the collective thrust at the window's states
        xs, zs = x[window], rec["critic"][..., 2][window]
        with torch.enable_grad():
            xa = xs.clone().requires_grad_(True)
            algo.critic(xa).squeeze(-1).min(0).values.sum().backward()
        dthrust = xa.grad[:, -env.action_dim:].sum(-1)
        for name, m in (("below_5cm_or_more", zs < -0.05), ("within_5cm_in_z", zs.abs() <= 0.05),
                        ("above_5cm_or_more", zs > 0.05)):
            if int(m.sum()):
                out[f"dq_dthrust_{name}"] = {"states": int(m.sum()), "mean": round(dthrust[m].mean().item(), 2),
                                             "std": round(dthrust[m].std().item(), 2)}
                # the entropy bonus's tanh correction pulls each action toward 0: the actor's loss is stationary
                # where dQ/da_i = 2 alpha a_i / (1 - a_i^2); summed over the motors, the thrust gradient it holds
                a = xs[m][:, -env.action_dim:].clamp(-0.999, 0.999)
                pull = (2 * alpha * a / (1 - a * a)).sum(-1) if cfg.sac.squash_correction else torch.zeros(1)
                out[f"dq_dthrust_{name}"]["entropy_pull"] = round(pull.mean().item(), 2)
            # where along the collective thrust the critic's Q peaks: at the actor's action (the critic agrees with
            # the sag), or above it (the actor does not follow its critic)
            if int(m.sum()) and name != "above_5cm_or_more":
                deltas = torch.linspace(-0.2, 0.2, 21)
                qd = torch.stack([algo.critic(torch.cat((xs[m][:, :-env.action_dim],
                                                         (xs[m][:, -env.action_dim:] + d).clamp(-1, 1)), -1))
                                  .squeeze(-1).min(0).values.mean() for d in deltas])
                out[f"dq_dthrust_{name}"]["q_peak_at_thrust_offset"] = round(float(deltas[qd.argmax()]), 3)
                out[f"dq_dthrust_{name}"]["q_gain_at_peak"] = round(float(qd.max() - qd[10]), 2)
    gain, z = pulse_gain(env, algo, cfg.evaluation.seed, w, oc, gamma)
    sag = z < -0.05
    out["true_q_gain_of_a_thrust_pulse"] = {"delta": 0.2, "at_s": 2.5, "sagging_states": int(sag.sum()),
                                            "mean": round(gain[sag].mean().item(), 3) if int(sag.sum()) else None,
                                            "all_mean": round(gain.mean().item(), 3)}
    env.close()
    print(f"true Q gain of +0.2 collective thrust for one step at 2.5 s: {out['true_q_gain_of_a_thrust_pulse']}")
    print(f"{args.run} ({meta['env_steps']} env steps): reward/step 5 cm {r5:.3f}, 20 cm {r20:.3f}; "
          f"over the horizon {out['q_gap_5_vs_20cm_over_horizon']}")
    print(f"critic vs Monte-Carlo (2-4 s): rms {out['critic_rms_error_vs_mc']}, mean {out['critic_mean_error_vs_mc']}, "
          f"twin disagreement rms {out['twin_disagreement_rms']}")
    for row in out["by_distance"]:
        print(f"  {row['dist_m'][0]:.2f}-{row['dist_m'][1]:.2f} m: {row['states']} states, Q {row['mean_q']}, "
              f"MC {row['mean_mc_return']}, reward {row['mean_reward']}")
    for k, v in out.items():
        if k.startswith("dq_dthrust"):
            print(f"  {k}: {v}")
    for mode in ("deterministic", "sampled"):
        print(f"{mode}: {out[mode]}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
