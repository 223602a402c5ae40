"""Why robust hover episodes crash: classify every crash over held-out vehicles and bound what was avoidable.

Flies RUN_DIR's policy (its export, else its checkpoint) over the ``robust_hover.py`` vehicles (``--vehicles``
drawn with ``--vehicle-seed`` from the published span widened by ``--margin``; one paper episode each) in the
torch reference env, exactly as ``robot-rl eval --vehicles`` does, and for every crash records when it happened,
which position bound ended it (the task's only termination: |p_i - target_i| > ``position_limit`` on an axis),
the initial state and the vehicle. Then three bounds on the crashed episodes:

- **vertical ideal**: the thrust axis points up from t = 0 and every rotor is commanded to full speed (spin-up
  from the initial speed with the vehicle's tau_up; the episode's disturbance force included). If even this
  falls through the lower bound, no controller saves the episode.
- **oracle**: the policy plus an open-loop correction of its actions, optimised per episode by gradient
  descent through the differentiable torch env, knowing the vehicle, its initial state and disturbances, without
  observation noise (``--oracle-horizon`` steps, a barrier near the bounds, a terminal cost towards rest at the
  target). An episode the oracle keeps inside the bounds, ending slow and upright near the target, was
  avoidable for a controller that knew the vehicle; one it does not save is counted as unavoidable (an upper
  estimate of the unavoidable share: the optimiser may miss a solution).
- **counterfactual starts**: the same policy, vehicles and disturbances from milder initial states (level, at
  rest, rotors at the vehicle's hover speed), which shows which part of the paper's initial state hurts.

Last line: JSON ``{"vehicles", "survival", "crashes", "crash_axes", "unavoidable_vertical", "oracle_saved",
"oracle_unsaved", ...}``.

    python benchmarks/hover_crashes.py RUN_DIR [--vehicles 1000] [--oracle-iters 300]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.hover_planner import episode_env
from robot_rl import presets  # noqa: F401
from robot_rl.commands.evaluate import resolve_policy
from robot_rl.commands.vehicle_eval import vehicle_distribution
from robot_rl.models.recurrent import GRUActor
from robot_rl.runs import load_actor, load_config
from sim.quadrotor.config import DomainRandomization
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, VEL
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED, vehicle_rpm

AXES = ("x", "y", "z")


class _MildStartEnv(QuadrotorHoverEnv):
    """The hover env whose resets then apply ``mild`` ⊆ {level, still} to the initial state (``hover_rpm`` is the
    task's own ``init_rpm_hover``)."""

    mild: tuple[str, ...] = ()

    def _reset_envs(self, mask: torch.Tensor) -> None:
        super()._reset_envs(mask)
        s = self.state.clone()
        if "level" in self.mild:
            s[:, QUAT] = torch.tensor([1.0, 0.0, 0.0, 0.0])
        if "still" in self.mild:
            s[:, VEL] = 0.0
            s[:, OMEGA] = 0.0
        self.state = torch.where(mask[:, None], s, self.state)


def tilt_deg(q: torch.Tensor) -> torch.Tensor:
    """Angle between body z and world z (deg) of quaternions ``[..., 4]``."""
    cos = 1.0 - 2.0 * (q[..., 1] ** 2 + q[..., 2] ** 2)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


@torch.no_grad()
def fly(policy, task, n: int, dist, mild: tuple[str, ...] = ()) -> dict:
    """One episode per vehicle as :func:`sim.quadrotor.evaluation.evaluate` flies it, with crash details."""
    cfg = replace(task, num_envs=n, device="cpu", noise=True, randomization=DomainRandomization(), vehicles=dist)
    if "hover_rpm" in mild:  # rotors at each vehicle's hover speed
        cfg = replace(cfg, init_rpm_relative=False, init_rpm_hover=True)
    env_cls = type("Env", (_MildStartEnv,), {"mild": mild})
    env = env_cls(cfg, seed=dist.seed)
    obs = env.reset(seed=dist.seed)
    if hasattr(policy, "begin_episodes"):  # a recurrent policy: zero state for these episodes
        policy.begin_episodes(n)
    init = {"state": env.state.clone(), "force": env.force.clone(), "torque": env.torque.clone(),
            "vehicles": {k: v.clone() for k, v in env.vehicles().items()}}
    alive = torch.ones(n, dtype=torch.bool)
    crash_step = torch.full((n,), -1, dtype=torch.long)
    crash_axis = torch.full((n,), -1, dtype=torch.long)
    crash_sign = torch.zeros(n)
    crash_tilt = torch.full((n,), float("nan"))
    max_tilt = torch.zeros(n)
    for t in range(cfg.episode_length):
        obs, _, terminated, _, info = env.step(policy(obs["policy"]).to(torch.float32))
        critic = info["final_obs"]["critic"]
        rel = critic[:, :3]
        cos = critic[:, 11]  # R[2, 2]: body z . world z
        tilt = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
        max_tilt = torch.where(alive, torch.maximum(max_tilt, tilt), max_tilt)
        new = alive & terminated
        if bool(new.any()):
            axis = (rel.abs() / cfg.position_limit).argmax(-1)
            crash_step = torch.where(new, t + 1, crash_step)
            crash_axis = torch.where(new, axis, crash_axis)
            crash_sign = torch.where(new, torch.sign(rel.gather(1, axis[:, None])[:, 0]), crash_sign)
            crash_tilt = torch.where(new, tilt, crash_tilt)
        alive &= ~terminated
    env.close()
    return {"alive": alive, "crash_step": crash_step, "crash_axis": crash_axis, "crash_sign": crash_sign,
            "crash_tilt": crash_tilt, "max_tilt": max_tilt, "init": init, "params": env.params,
            "position_limit": cfg.position_limit, "dt": cfg.dt}


def vertical_ideal_min_z(init: dict, params, idx: torch.Tensor, dt: float, seconds: float = 3.0) -> torch.Tensor:
    """Lowest height reached (relative to the target) when the thrust axis is vertical from t = 0 and every
    rotor is commanded to full speed: spin-up ``d w / dt = (w_max - w) / tau_up`` from the initial speed."""
    v = {k: x[idx].double() for k, x in init["vehicles"].items()}
    kq, kl, rpm_max, _ = vehicle_rpm(params, v)
    s = init["state"][idx].double()
    z, vz, w = s[:, 2], s[:, 9], s[:, RPM].mean(-1)
    fz = init["force"][idx, 2].double()
    g = 9.81
    lowest = z.clone()
    h = 1e-3
    for _ in range(int(seconds / h)):
        thrust = 4.0 * (kq * w * w + kl * w)
        az = thrust / v["mass"] - g + fz / v["mass"]
        vz = vz + h * az
        z = z + h * vz
        w = w + h * (rpm_max - w) / v["motor_tau_up"]
        lowest = torch.minimum(lowest, z)
        if bool((vz > 0).all()):
            break
    return lowest


def corrected_flight(actor, env, restart, delta: torch.Tensor, limit: float):
    """The policy with ``delta[t]`` added to its actions for ``len(delta)`` steps from ``restart()`` (a recurrent
    actor starts at zero): ``(barrier, terminal, ok, peak)`` per env. ``barrier``: summed over the steps, from
    0.08 m inside the bound; ``terminal``: the end state's distance from rest, upright, at the target; ``ok``:
    never beyond ``limit`` and ending slower than 0.5 m/s, within 30 deg of upright and 0.5 m of the target."""
    n = delta.shape[1]
    obs = restart()
    recurrent = isinstance(actor, GRUActor)
    state = actor.initial_state(n) if recurrent else None
    barrier, peak = torch.zeros(n), torch.zeros(n)
    for t in range(delta.shape[0]):
        if recurrent:
            action, state = actor(obs["policy"], state)
        else:
            action = actor(obs["policy"])
        obs, *_ = env.step(action + delta[t])
        over = env.state[:, POS].abs().max(-1).values
        peak = torch.maximum(peak, over.detach())
        # grows like log beyond the bound: states long after a crash must not swamp the gradient
        barrier = barrier + torch.log1p(torch.nn.functional.relu((over - (limit - 0.08)) / 0.08)).square()
    s = env.state
    tilt_cos = 1.0 - 2.0 * (s[:, 4] ** 2 + s[:, 5] ** 2)
    ok = ((peak < limit) & (s[:, VEL].norm(dim=-1) < 0.5) & (tilt_cos > math.cos(math.radians(30)))
          & (s[:, POS].norm(dim=-1) < 0.5)).detach()
    terminal = (s[:, VEL].square().sum(-1) + 0.1 * s[:, OMEGA].square().sum(-1) + 2.0 * (1.0 - tilt_cos)
                + s[:, POS].square().sum(-1)).clamp(max=10.0)
    return barrier, terminal, ok, peak


def blind_copies(init: dict, idx: torch.Tensor, copies: int, seed: int = 0) -> dict:
    """Initial conditions of ``copies * len(idx)`` envs (copy-major): every copy starts from its episode's state;
    copy 0 keeps the episode's vehicle and disturbance, copy k > 0 takes those of a random episode of ``init``."""
    m, total = len(idx), len(init["state"])
    others = torch.randint(0, total, (copies - 1, m), generator=torch.Generator().manual_seed(seed))
    vid = torch.cat([idx[None], others]).reshape(-1)
    sid = idx.repeat(copies)
    return {"state": init["state"][sid], "force": init["force"][vid], "torque": init["torque"][vid],
            "vehicles": {k: v[vid] for k, v in init["vehicles"].items()}}


def saves(ok: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``[m]``: the episodes an iteration saves, from ``ok`` ``[copies, m]`` (each copy passes the oracle's test)
    and ``kept`` (the same for the policy alone): copy 0 passes and no other copy that ``kept`` fails."""
    return ok[0] & (ok[1:] | ~kept[1:]).all(0)


def _say(line: str) -> None:
    print(line, flush=True)


def oracle(actor, task, init: dict, idx: torch.Tensor, horizon: int, iters: int, lr: float = 0.02,
           copies: int = 1, blind_steps: int = 0, seed: int = 0, log=_say) -> dict:
    """Per crashed episode, an open-loop correction ``delta_t`` added to the policy's actions, optimised by
    gradient descent through the differentiable torch env (same vehicle, initial state, disturbances and latency;
    no observation noise; no termination while optimising) to keep every axis inside the bound: a barrier from
    0.08 m inside the bound, and a terminal cost towards rest, upright, at the target. Saved = the corrected
    flight stays inside the bound and ends slower than 0.5 m/s, within 30 deg of upright and 0.5 m of the target
    (the policy then holds it: checked by flying the remaining steps with the policy alone).

    ``copies`` K > 1 (``hover_blind.py``): each episode also flies as K - 1 copies from its start with the vehicles
    and disturbances of random episodes of ``init`` (:func:`blind_copies`, ``seed``), and the correction of the
    first ``blind_steps`` steps is one shared by the K copies (blind to vehicle and disturbance); an episode is
    saved only in an iteration that loses no copy the policy alone keeps (:func:`saves`). Returns ``{"saved",
    "peak", "noise_free_crash", "delta"}``, each of copy 0 (``delta``: the correction of the first saving
    iteration)."""
    if not 0 <= blind_steps <= horizon or copies < 1:
        raise ValueError(f"need 0 <= blind_steps <= horizon and copies >= 1, got {blind_steps}, {horizon}, {copies}")
    m, limit = len(idx), task.position_limit
    env, restart = episode_env(task, blind_copies(init, idx, copies, seed), torch.arange(copies * m))
    for p in actor.parameters():
        p.requires_grad_(False)
    shared = torch.zeros(blind_steps, m, 4, requires_grad=True)
    own = torch.zeros(horizon - blind_steps, copies * m, 4, requires_grad=True)
    opt = torch.optim.Adam([shared, own], lr=lr)
    saved = torch.zeros(m, dtype=torch.bool)
    best = torch.zeros(horizon, m, 4)  # per saved episode: the correction of its first saving iteration
    kept = plain_peak = None
    for it in range(iters + 1):
        delta = torch.cat([shared.repeat(1, copies, 1), own])
        barrier, terminal, ok, peak = corrected_flight(actor, env, restart, delta, limit)
        ok, peak = ok.reshape(copies, m), peak.reshape(copies, m)[0]
        if it == 0:
            kept, plain_peak = ok, peak.clone()  # the policy alone, without noise
        else:
            new = saves(ok, kept) & ~saved
            best[:, new] = delta.detach()[:, :m][:, new]
            saved |= new
        if it == iters:
            break
        loss = (barrier + 0.1 * terminal).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        env.detach()
        if it % 25 == 0:
            log(f"  oracle iter {it}: saved {int(saved.sum())}/{m}, loss {loss.item():.3g}")
    return {"saved": saved, "peak": peak, "noise_free_crash": plain_peak >= limit, "delta": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--vehicle-seed", type=int, default=VEHICLE_EVAL_SEED)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--oracle-horizon", type=int, default=150)
    ap.add_argument("--oracle-iters", type=int, default=150)
    ap.add_argument("--no-mild", action="store_true", help="skip the counterfactual starts")
    ap.add_argument("--out", default=None, help="write per-crash rows here (JSON; default RUN_DIR/crashes.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run_dir = Path(args.run_dir)
    cfg = load_config(run_dir)
    policy, used = resolve_policy(run_dir)
    dist = vehicle_distribution(args.vehicle_seed, args.margin)
    r = fly(policy, cfg.task, args.vehicles, dist)
    crashed = (~r["alive"]).nonzero()[:, 0]
    n_c = len(crashed)
    init, veh = r["init"], r["init"]["vehicles"]
    s0 = init["state"]
    print(f"{used}: {args.vehicles} vehicles, survival {r['alive'].float().mean():.1%}, {n_c} crashes")
    axes = {f"{'+' if sg > 0 else '-'}{AXES[a]}": 0 for a in range(3) for sg in (1, -1)}
    for i in crashed.tolist():
        axes[f"{'+' if r['crash_sign'][i] > 0 else '-'}{AXES[int(r['crash_axis'][i])]}"] += 1
    steps = r["crash_step"][crashed].float()
    print(f"crash bound: {axes}; crash step median {steps.median():.0f}, quartiles "
          f"{np.quantile(steps.numpy(), [0.25, 0.75]).tolist() if n_c else []}")

    # initial-state and vehicle statistics, crashed vs all
    tilt0 = tilt_deg(s0[:, QUAT])
    _, _, rpm_max, rpm_hover = vehicle_rpm(r["params"], veh)
    rows = {"initial tilt (deg)": tilt0, "initial v_z (m/s)": s0[:, 9], "initial |v| (m/s)": s0[:, VEL].norm(dim=-1),
            "initial |omega| (rad/s)": s0[:, OMEGA].norm(dim=-1), "initial z (m)": s0[:, 2],
            "initial rpm / hover rpm": s0[:, 13] / rpm_hover, "disturbance F_z / weight": init["force"][:, 2]
            / (veh["mass"] * 9.81), "thrust_to_weight": veh["thrust_to_weight"], "motor_tau_up": veh["motor_tau_up"],
            "inertia_xy_scale": veh["inertia_xy_scale"], "latency_steps": veh["latency_steps"]}
    print(f"{'':<28} {'all: mean':>10} {'crashed: mean':>14}")
    for k, x in rows.items():
        print(f"{k:<28} {x.mean():>10.3f} {x[crashed].mean() if n_c else float('nan'):>14.3f}")

    low = vertical_ideal_min_z(init, r["params"], crashed, r["dt"])
    unavoidable_v = (low < -r["position_limit"])
    print(f"vertical ideal (instantly upright, full thrust): {int(unavoidable_v.sum())} of {n_c} crashes fall "
          f"through the lower bound anyway")

    mild = {}
    for variant in () if args.no_mild else (("level",), ("still",), ("hover_rpm",), ("level", "still", "hover_rpm")):
        m = fly(policy, cfg.task, args.vehicles, dist, mild=variant)
        name = "+".join(variant)
        mild[name] = {"survival": m["alive"].float().mean().item(),
                      "crashed_now_survive": int(m["alive"][crashed].sum())}
        print(f"start {name:<24}: survival {mild[name]['survival']:.1%}; of the {n_c} crashes "
              f"{mild[name]['crashed_now_survive']} now survive")

    _, actor, _ = load_actor(run_dir)
    orc = oracle(actor, cfg.task, init, crashed, args.oracle_horizon, args.oracle_iters)
    saved = orc["saved"]
    print(f"without observation noise the policy alone still crashes {int(orc['noise_free_crash'].sum())} of them")
    print(f"oracle (policy + optimised correction; {args.oracle_horizon} steps, {args.oracle_iters} iters): saves "
          f"{int(saved.sum())} of {n_c} crashes; unsaved {int((~saved).sum())} (of which vertical-ideal "
          f"unavoidable: {int((~saved & unavoidable_v).sum())}); implied ceiling on survival "
          f"{1 - int((~saved).sum()) / args.vehicles:.1%}")

    per = []
    for j, i in enumerate(crashed.tolist()):
        per.append({"vehicle": i, "crash_step": int(r["crash_step"][i]),
                    "bound": f"{'+' if r['crash_sign'][i] > 0 else '-'}{AXES[int(r['crash_axis'][i])]}",
                    "tilt_at_crash_deg": round(float(r["crash_tilt"][i]), 1),
                    "max_tilt_deg": round(float(r["max_tilt"][i]), 1),
                    "vertical_ideal_min_z": round(float(low[j]), 3), "oracle_saved": bool(saved[j]),
                    "noise_free_crash": bool(orc["noise_free_crash"][j])}
                   | {k: round(float(x[i]), 4) for k, x in rows.items()}
                   | {k: round(float(x[i]), 5) for k, x in veh.items()})
    out = Path(args.out) if args.out else run_dir / "crashes.json"
    out.write_text(json.dumps(per, indent=1))
    print(f"per-crash rows: {out}; {time.perf_counter() - t0:.0f} s")
    print(json.dumps({"vehicles": args.vehicles, "vehicle_seed": args.vehicle_seed, "margin": args.margin,
                      "survival": r["alive"].float().mean().item(), "crashes": n_c, "crash_axes": axes,
                      "crash_step_median": steps.median().item() if n_c else None,
                      "unavoidable_vertical": int(unavoidable_v.sum()), "oracle_saved": int(saved.sum()),
                      "oracle_unsaved": int((~saved).sum()),
                      "noise_free_crashes": int(orc["noise_free_crash"].sum()), "mild_starts": mild}))


if __name__ == "__main__":
    main()
