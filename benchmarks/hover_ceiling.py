"""How many of the robust-hover benchmark's episodes can any controller save? Bounds on the reachable survival.

The ``robust_hover.py`` protocol flies 1,000 held-out vehicles (``--vehicle-seed``, the published span widened by
``--margin``), one paper episode each: a start up to 90 deg tilted, up to 1 m/s and 1 rad/s, rotors at the
paper's 10,851 RPM, a per-episode disturbance. This script bounds, per episode, whether crashing (leaving
+-0.6 m of the target on an axis) is physically avoidable, independent of any learned policy:

- **infeasible, vertical ideal**: the thrust axis points up from t = 0, every rotor spins up to full speed with
  the vehicle's tau_up (``hover_crashes.vertical_ideal_min_z``); if even this falls through the floor, no
  controller saves the episode.
- **infeasible, tilt-limited**: the same, but the thrust's vertical share is ``cos(theta)`` with the tilt
  ``theta`` bounded from below by how fast the vehicle can rotate: ``|d theta / dt| <= |omega_xy|`` and
  ``d |omega_xy| / dt <= (2 d f_max(t) + |tau_dist|) / I_xy`` (rotors at (+-d, +-d), each at most ``f_max(t)``
  of the full-speed spin-up; the gyroscopic term turns ``omega_xy`` without changing its length). Every rotor
  at full thrust *and* full torque at once, no need to stop the rotation at upright: a relaxation, so a
  crash of this bound is a crash of every controller (evaluated at the control steps, the simulator's RK4
  integrating the same motor law).
- **feasible**: an episode that some controller keeps inside the bounds has an action sequence that survives,
  so it is avoidable. Witnesses: the policies of ``RUN_DIR ...`` (each flown as ``robot-rl eval --vehicles``
  flies it); a few geometric controllers that know the vehicle, the true state (no noise, no latency) and the
  disturbance (thrust vector control, torque-priority mixing, optionally a one-step motor lead), flown in the
  torch reference env over the whole episode; and ``hover_crashes.oracle`` (the first policy plus an open-loop
  correction optimised through the differentiable env) on the episodes still undecided, counted only when the
  corrected start followed by the policy alone stays inside the bounds for the whole episode; with
  ``--planner-iters``, then ``hover_planner.plan`` (sampled offsets to the first policy's actions, each candidate
  flown to the end of the episode) on the episodes still undecided. The oracle and the planner fly without
  noise, and some of their saves are knife edges (flown in a batch of another size, other float rounding, they
  crash). So with ``--verify-draws K`` (default 32) a save counts as feasible only if the same correction keeps
  the policy inside the bounds in at least half of K flights with the evaluation's observation noise
  (``hover_planner.noisy_survival``), the evaluation's own conditions; ``"*_saved"`` is the noise-free count.

The rest is undecided. Last line: JSON ``{"vehicles", "infeasible_vertical", "infeasible_tilt",
"privileged_survive", "oracle_robust", "planner_saved", "planner_robust", "planner_noisy_expected" (with
--planner-iters; the last: the saves' summed survival shares under noise), "feasible", "undecided", "ceiling_low",
"ceiling_high", "policy_crashes_*", ...}``
(ceilings as survival fractions: at least ``feasible / vehicles``, at most ``1 - infeasible / vehicles`` with
``infeasible`` the episodes some bound proves lost). ``--attitude``: the attitude/thrust level's episodes (the run's
task, else ``crazyflie-hover-attitude-robust``'s); :func:`capped_infeasible` (the firmware's cap on the thrust
setpoint) bounds too, ``"infeasible_cap"``; the privileged witnesses are setpoint controllers
(:func:`privileged_setpoints_fly`, through the radio latency, the onboard PID and the cap), and the oracle and the
planner (which command motors) are off.

    python benchmarks/hover_ceiling.py [RUN_DIR ...] [--attitude] [--vehicles 1000] [--vehicle-seed 4000037]
        [--margin 0] [--planner-iters 60] [--planner-population 128] [--planner-device cpu]
        [--planner-noise-draws 0] [--verify-draws 32]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.hover_crashes import fly, oracle, vertical_ideal_min_z
from benchmarks.hover_planner import episode_env, fly_with_offsets, noisy_survival, plan
from robot_rl import presets  # noqa: F401
from robot_rl.commands.evaluate import resolve_policy
from robot_rl.commands.vehicle_eval import vehicle_distribution
from robot_rl.presets import crazyflie_hover_attitude_robust, crazyflie_hover_robust
from robot_rl.runs import load_actor, load_config
from sim.quadrotor.attitude import PWM_MAX, controller_params
from sim.quadrotor.attitude_level import vehicle_hover_thrust
from sim.quadrotor.config import DomainRandomization
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, VEL, quat_to_rotmat, rotor_speed_for_thrust
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED, vehicle_rpm

G = 9.81


def initial_conditions(task, n: int, dist) -> tuple[dict, object]:
    """The ``n`` held-out episodes' initial states, disturbances and vehicles (as ``hover_crashes.fly`` and
    ``robot-rl eval --vehicles`` draw them) and the frame's parameters."""
    cfg = replace(task, num_envs=n, device="cpu", noise=True, randomization=DomainRandomization(), vehicles=dist)
    env = QuadrotorHoverEnv(cfg, seed=dist.seed)
    env.reset(seed=dist.seed)
    init = {"state": env.state.clone(), "force": env.force.clone(), "torque": env.torque.clone(),
            "vehicles": {k: v.clone() for k, v in env.vehicles().items()}}
    return init, env.params


def tilt_limited_infeasible(init: dict, params, dt: float, limit: float, seconds: float = 2.0,
                            h: float = 1e-4) -> torch.Tensor:
    """``[n]`` bool: the episode falls below ``-limit`` at a control step whatever the controller (see the
    module docstring: full-speed spin-up for both thrust and torque, tilt bounded by the rotation rate)."""
    v = {k: x.double() for k, x in init["vehicles"].items()}
    kq, kl, rpm_max, _ = vehicle_rpm(params, v)
    s, force, torque = init["state"].double(), init["force"].double(), init["torque"].double()
    m, i_xy = v["mass"], params.inertia[0] * v["inertia_xy_scale"]
    d = abs(params.rotor_positions[0][0]) * v["arm_scale"]
    q = s[:, QUAT]
    theta = torch.acos((1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 2] ** 2)).clamp(-1.0, 1.0))
    spin = s[:, OMEGA][:, :2].norm(dim=-1)  # an upper bound on |omega_xy| as it evolves
    z, vz, w = s[:, 2], s[:, 9], s[:, RPM].max(-1).values
    t_dist = torque[:, :2].norm(dim=-1)
    per = int(round(dt / h))
    crash = torch.zeros(len(z), dtype=torch.bool)
    for k in range(int(seconds / h)):
        f = kq * w * w + kl * w
        az = 4.0 * f * torch.cos(theta.clamp(min=0.0)).clamp(min=0.0) / m - G + force[:, 2] / m
        vz = vz + h * az
        z = z + h * vz
        theta = theta - h * spin
        spin = spin + h * (2.0 * d * f + t_dist) / i_xy
        w = w + h * (rpm_max - w) / v["motor_tau_up"]
        if (k + 1) % per == 0:
            crash |= z < -limit
    return crash


def capped_infeasible(init: dict, params, dt: float, limit: float, thrust_cap: float,
                      seconds: float = 3.0, h: float = 1e-3) -> torch.Tensor:
    """``[n]`` bool, the attitude/thrust level: the episode falls below ``-limit`` at a control step whatever the
    setpoints, because the firmware caps the collective thrust setpoint at ``thrust_cap`` (PWM units).

    The mixer adds zero-sum corrections to the collective, lowers all four motors by any excess over 65535 and
    clamps each to [0, 65535], so the motor commands ``u_i`` (fractions of full PWM) satisfy ``sum u_i <= 4 c``
    (``c = thrust_cap / 65535``) or have one motor at 0; as rotor-speed commands ``max(u_i w_max, idle)`` they
    sum to at most ``C = 3 w_max + max((4 c - 3) w_max, idle)``. Where the motors slow down no slower than they
    spin up (``tau_down <= tau_up``), each speed stays below the first-order response to its command with
    ``tau_up``, so the speeds sum to at most ``S(t)``, the response of ``4 w_0`` to ``C``, and each is at most
    ``U(t)``, the spin-up to ``w_max``; the thrust (convex, increasing in speed) is then at most that of
    ``floor(S / U)`` rotors at ``U`` and one at the rest, along a thrust axis held vertical from t = 0. Motors
    with ``tau_down > tau_up`` can hold a speed sum above ``S`` (spin one up fast, let it coast down slowly):
    for them only :func:`tilt_limited_infeasible` (no cap) decides."""
    v = {k: x.double() for k, x in init["vehicles"].items()}
    kq, kl, w_max, _ = vehicle_rpm(params, v)
    s, fz = init["state"].double(), init["force"][:, 2].double()
    m, tau = v["mass"], v["motor_tau_up"]
    c = thrust_cap / PWM_MAX
    cap = 3.0 * w_max + torch.maximum((4.0 * c - 3.0) * w_max, v["idle_rpm"])
    z, vz = s[:, 2].clone(), s[:, 9].clone()
    u = s[:, RPM].max(-1).values
    total = 4.0 * u
    per = int(round(dt / h))
    crash = torch.zeros(len(z), dtype=torch.bool)
    for k in range(int(seconds / h)):
        full = torch.floor(total / u).clamp(max=4.0)
        rest = torch.where(full < 4.0, (total - full * u).clamp(min=0.0), torch.zeros_like(u))
        thrust = full * (kq * u * u + kl * u) + kq * rest * rest + kl * rest
        vz = vz + h * (thrust / m - G + fz / m)
        z = z + h * vz
        u = u + h * (w_max - u) / tau
        total = total + h * (cap - total) / tau
        if (k + 1) % per == 0:
            crash |= z < -limit
    return crash & (v["motor_tau_down"] <= tau)


def privileged_fly(task, init: dict, att_hz: float, pos_hz: float, max_tilt_deg: float, lead: bool,
                   steps: int, damping: float = 0.9, min_thrust: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fly every episode with a geometric controller that knows the vehicle, state and disturbance; returns
    ``(survived, settled)`` ``[n]`` (settled: within 0.1 m at the end, as the protocol's settle)."""
    n = init["state"].shape[0]
    cfg = replace(task, num_envs=n, device="cpu", noise=False, randomization=DomainRandomization(),
                  vehicles=replace(task.vehicles, enabled=True, seed=0), position_limit=1e3, episode_length=10**6)
    env = QuadrotorHoverEnv(cfg, seed=0)
    env.vehicle_values = torch.stack([init["vehicles"][k] for k in env.vehicles()], -1)
    env._apply_vehicles()
    env.state, env.force, env.torque = init["state"].clone(), init["force"].clone(), init["torque"].clone()
    env.target.zero_()
    pt, v = env.pt, init["vehicles"]
    kq, kl, rpm_max, _ = vehicle_rpm(env.params, v)
    m, inertia = pt.mass[:, 0], pt.inertia  # [n], [n, 3]
    rx, ry = pt.rotor_positions[..., 0], pt.rotor_positions[..., 1]
    mixer = torch.stack((torch.ones_like(rx), ry, -rx, pt.yaw_torque.expand_as(rx)), 1)  # [n, 4 wrench, 4 rotor]
    unmix = torch.linalg.inv(mixer)
    f_min = kq * v["idle_rpm"] ** 2 + kl * v["idle_rpm"]
    f_max = kq * rpm_max ** 2 + kl * rpm_max
    wn_a, wn_p = 2 * math.pi * att_hz, 2 * math.pi * pos_hz
    k_r, k_w = wn_a ** 2, 2 * damping * wn_a
    k_p, k_d = wn_p ** 2, 2 * 1.0 * wn_p
    tan_max = math.tan(math.radians(max_tilt_deg))
    alive = torch.ones(n, dtype=torch.bool)
    for _ in range(steps):
        s = env.state
        p, vel, om, rpm = s[:, POS], s[:, VEL], s[:, OMEGA], s[:, RPM]
        rot = quat_to_rotmat(s[:, QUAT])
        a_des = -k_p * p - k_d * vel - env.force / m[:, None]
        a_des[:, 2] = (a_des[:, 2] + G).clamp(min=0.3 * G)
        a_xy = a_des[:, :2]
        cap = a_des[:, 2:3] * tan_max
        a_des = torch.cat((a_xy * (cap / a_xy.norm(dim=-1, keepdim=True).clamp(min=1e-9)).clamp(max=1.0),
                           a_des[:, 2:]), -1)
        b3_des = a_des / a_des.norm(dim=-1, keepdim=True)
        b3 = rot[:, :, 2]
        err = torch.linalg.cross(b3, b3_des, dim=-1)
        angle = torch.atan2(err.norm(dim=-1), (b3 * b3_des).sum(-1))
        axis_b = torch.einsum("nji,nj->ni", rot, err) / err.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        alpha = k_r * angle[:, None] * axis_b - k_w * om
        alpha[:, 2] = -k_w * om[:, 2]
        tau = inertia * alpha + torch.linalg.cross(om, inertia * om, dim=-1) - env.torque
        thrust = (m * (a_des * b3).sum(-1)).clamp(min=0.0).maximum(min_thrust * m * G)
        f = torch.einsum("nij,nj->ni", unmix, torch.cat((thrust[:, None], tau), -1))
        # torque priority: shift the collective to fit the rotor limits where the spread allows
        over = (f.max(-1).values - f_max).clamp(min=0.0)
        f = f - over[:, None]
        under = (f_min - f.min(-1).values).clamp(min=0.0)
        f = (f + under[:, None]).clamp(f_min[:, None], f_max[:, None])
        w_des = rotor_speed_for_thrust(f, kq[:, None], kl[:, None])
        if lead:  # command what reaches w_des in one step of the first-order motor
            tau_m = torch.where(w_des >= rpm, pt.motor_time_constant, pt.motor_time_constant_down)
            w_des = rpm + (w_des - rpm) / (1.0 - torch.exp(-cfg.dt / tau_m))
        w_cmd = w_des.clamp(v["idle_rpm"][:, None], rpm_max[:, None])
        action = 2.0 * w_cmd / rpm_max[:, None] - 1.0
        env.state = env._advance(action.to(torch.float32))
        alive &= (env.state[:, POS].abs() <= task.position_limit).all(-1) & torch.isfinite(env.state).all(-1)
    settled = alive & (env.state[:, POS].norm(dim=-1) < 0.1)
    return alive, settled


@torch.no_grad()
def verify_oracle(actor, task, init: dict, idx: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``[len(idx)]`` bool: the oracle's corrected actions, then the policy alone to the end of the episode (no
    noise, as the oracle flies), stay inside the bounds throughout (the full-episode check of a saved one)."""
    env, restart = episode_env(task, init, idx)
    return fly_with_offsets(actor, env, restart, delta, 1, task.episode_length, task.position_limit)[1]


def privileged_setpoints_fly(task, dist, n: int, kxy: float, dxy: float, kz: float, dz: float,
                             max_tilt_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fly the held-out episodes (as ``robot-rl eval --vehicles`` draws them) at the attitude/thrust level with
    setpoints from a controller that knows the true state and each vehicle's hover thrust: a PD acceleration
    (``kxy``/``dxy`` horizontal, ``kz``/``dz`` vertical) turned into roll and legacy pitch (in the yaw frame, at
    most ``max_tilt_deg``), the hover thrust scaled by the square root of the vertical demand over the tilt's
    cosine (rotor thrust ~ speed^2 ~ PWM^2), and a yaw rate of -2 / s times the yaw. Through the radio latency,
    the onboard PID and the firmware's cap, like any policy. Returns ``(survived, settled)`` ``[n]``."""
    cfg = replace(task, num_envs=n, device="cpu", noise=True, randomization=DomainRandomization(), vehicles=dist)
    env = QuadrotorHoverEnv(cfg, seed=dist.seed)
    env.reset(seed=dist.seed)
    scale, offset = (torch.tensor(x) for x in cfg.attitude.scale_offset())
    hover = vehicle_hover_thrust(env.params, env.vehicles())  # each vehicle's hover thrust setpoint (PWM)
    gain, damp, lim = torch.tensor([kxy, kxy, kz]), torch.tensor([dxy, dxy, dz]), math.radians(max_tilt_deg)
    alive = torch.ones(n, dtype=torch.bool)
    for _ in range(cfg.episode_length):
        s = env.state
        w, x, y, z = s[:, QUAT].unbind(-1)
        yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        acc = -gain * (s[:, POS] - env.target) - damp * s[:, VEL]
        ax = torch.cos(yaw) * acc[:, 0] + torch.sin(yaw) * acc[:, 1]  # in the yaw frame
        ay = -torch.sin(yaw) * acc[:, 0] + torch.cos(yaw) * acc[:, 1]
        pitch = torch.atan(ax / G).clamp(-lim, lim)  # right-hand about y: thrust towards +x
        roll = (-torch.atan(ay / G)).clamp(-lim, lim)  # right-hand about x: thrust towards -y
        cos_tilt = torch.cos(torch.acos((1 - 2 * (x * x + y * y)).clamp(-1.0, 1.0)).clamp(max=1.2))
        thrust = hover * (((G + acc[:, 2]) / G).clamp(min=0.2) / cos_tilt).sqrt()
        sp = torch.stack((torch.rad2deg(roll), -torch.rad2deg(pitch), -2.0 * torch.rad2deg(yaw), thrust), -1)
        _, _, terminated, _, _ = env.step(((sp - offset) / scale).clamp(-1.0, 1.0))
        alive &= ~terminated
    settled = alive & ((env.state[:, POS] - env.target).norm(dim=-1) < 0.1)
    return alive, settled


CONTROLLERS = ("3:1.5:1:0", "3:0.9:1:0.7", "2:1.5:0:0", "2:0.9:1:0.7")
"""Privileged controllers flown by default, ``ATT_HZ:DAMPING:LEAD:MIN_THRUST`` (the best of a sweep over 200
episodes: 85, 83, 77 and 82 % survival alone; slow motors limit hand-tuned attitude loops)."""
SETPOINT_CONTROLLERS = ("4:3:6:4:20", "4:3:10:6:20", "3:2.5:8:5:15")
"""``--attitude``: privileged setpoint controllers, ``KXY:DXY:KZ:DZ:MAX_TILT_DEG`` (88.0, 88.1, 88.1 % alone)."""


def _shares(actor, task, init: dict, idx: torch.Tensor, offsets: torch.Tensor, hold: int, draws: int,
            device: str = "cpu") -> torch.Tensor:
    """``[len(idx)]``: the share of ``draws`` noisy flights each saving correction survives (1 where ``draws`` is
    0: the noise-free proof alone)."""
    if draws == 0:
        return torch.ones(len(idx))
    return noisy_survival(actor, task, init, idx, offsets, hold, draws, device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="*", help="policies whose survivors also count as feasible (the first one's "
                    "crashes are split; its actor seeds the oracle)")
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--vehicle-seed", type=int, default=VEHICLE_EVAL_SEED)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--controllers", nargs="*", default=None, help="ATT_HZ:DAMPING:LEAD:MIN_THRUST (--attitude: "
                    "KXY:DXY:KZ:DZ:MAX_TILT_DEG); default CONTROLLERS (SETPOINT_CONTROLLERS)")
    ap.add_argument("--oracle-iters", type=int, default=300, help="hover_crashes.oracle on the undecided episodes "
                    "(policy + optimised open-loop correction; 0: skip)")
    ap.add_argument("--oracle-horizon", type=int, default=150)
    ap.add_argument("--oracle-runs", type=int, default=1, help="seed the oracle from the first this many runs, in "
                    "turn, each on the episodes still undecided")
    ap.add_argument("--planner-iters", type=int, default=0, help="then hover_planner.plan on the episodes still "
                    "undecided: the cross-entropy method over offsets to the first run's actions (0: skip)")
    ap.add_argument("--planner-population", type=int, default=128)
    ap.add_argument("--planner-device", default="cpu", help="where the planner's flights run (e.g. cuda)")
    ap.add_argument("--planner-noise-draws", type=int, default=0, help="fly every planner candidate this many times "
                    "with the evaluation's observation noise; it survives only if all do (0: noise-free)")
    ap.add_argument("--verify-draws", type=int, default=32, help="an oracle or planner save counts only if it "
                    "survives at least half of this many flights with the evaluation's noise (0: noise-free proof)")
    ap.add_argument("--attitude", action="store_true", help="the attitude/thrust level (robust_hover.py --attitude's "
                    "episodes): the firmware's thrust cap bounds too; setpoint controllers witness, no oracle")
    args = ap.parse_args()
    if args.controllers is None:
        args.controllers = list(SETPOINT_CONTROLLERS if args.attitude else CONTROLLERS)
    if args.attitude:  # the oracle and the planner command motors, not setpoints
        args.oracle_iters = args.planner_iters = 0
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    runs = [Path(r) for r in args.run_dirs]
    task = load_config(runs[0]).task if runs else (crazyflie_hover_attitude_robust() if args.attitude
                                                    else crazyflie_hover_robust()).task
    if (task.action_level == "attitude_thrust") != args.attitude:
        raise SystemExit(f"{runs[0]} flies at the {task.action_level} level: pass --attitude exactly for "
                         "attitude_thrust runs")
    dist = vehicle_distribution(args.vehicle_seed, args.margin)
    init, params = initial_conditions(task, args.vehicles, dist)
    n, limit = args.vehicles, task.position_limit
    tw = init["vehicles"]["thrust_to_weight"]
    inf_v = vertical_ideal_min_z(init, params, torch.arange(n), task.dt) < -limit
    inf_t = tilt_limited_infeasible(init, params, task.dt, limit)
    inf_c = (capped_infeasible(init, params, task.dt, limit, controller_params(params).thrust_max) if args.attitude
             else torch.zeros(n, dtype=torch.bool))
    inf = inf_t | inf_c  # proved unavoidable
    print(f"{n} episodes: infeasible (vertical ideal) {int(inf_v.sum())}, (tilt-limited) {int(inf_t.sum())}; "
          f"T/W of the tilt-limited: {sorted(round(x, 2) for x in tw[inf_t].tolist())}", flush=True)
    out = {"vehicles": n, "vehicle_seed": args.vehicle_seed, "margin": args.margin,
           "infeasible_vertical": int(inf_v.sum()), "infeasible_tilt": int(inf_t.sum())}
    if args.attitude:
        out["infeasible_cap"] = int(inf_c.sum())
        print(f"infeasible under the firmware's {controller_params(params).thrust_max:.0f} thrust cap "
              f"{int(inf_c.sum())} (of the vehicles with tau_down <= tau_up); either {int(inf.sum())}", flush=True)
    survive = torch.zeros(n, dtype=torch.bool)
    rows = []
    for spec in args.controllers:
        if args.attitude:
            alive, settled = privileged_setpoints_fly(task, dist, n, *(float(x) for x in spec.split(":")))
        else:
            att, damp, lead, min_thrust = (float(x) for x in spec.split(":"))
            alive, settled = privileged_fly(task, init, att, 0.5, 30.0, bool(lead), task.episode_length, damp,
                                            min_thrust)
        survive |= alive
        rows.append({"controller": spec, "survival": alive.float().mean().item(),
                     "settle": settled.float().mean().item()})
        print(f"privileged {spec}: survival {alive.float().mean():.1%}, settle {settled.float().mean():.1%}; "
              f"union {int(survive.sum())} ({time.perf_counter() - t0:.0f} s)", flush=True)
    out |= {"privileged_survive": int(survive.sum()), "controllers": rows}
    policies = []
    for run in runs:
        policy, used = resolve_policy(run)
        r = fly(policy, load_config(run).task, n, dist)  # its own action scaling and inputs
        if not all(torch.equal(r["init"][k], init[k]) for k in ("state", "force", "torque")) or not all(
                torch.equal(x, init["vehicles"][k]) for k, x in r["init"]["vehicles"].items()):
            raise SystemExit(f"{run} flies other episodes than {runs[0]} (another task protocol)")
        policies.append(r["alive"])
        print(f"{used}: survival {r['alive'].float().mean():.1%}", flush=True)
    feasible = survive | torch.stack(policies).any(0) if policies else survive.clone()
    if runs:
        crashed = ~policies[0]
        out |= {"policy_survival": policies[0].float().mean().item(), "policy_crashes": int(crashed.sum()),
                "policy_crashes_tw_below_1_45": int((crashed & (tw < 1.45)).sum()),
                "policies_union_survive": int(torch.stack(policies).any(0).sum())}
        out["oracle_saved"] = out["oracle_verified"] = out["oracle_robust"] = 0
        for run in runs[:args.oracle_runs] if args.oracle_iters else ():
            idx = (~feasible & ~inf).nonzero()[:, 0]
            _, actor, _ = load_actor(run)
            orc = oracle(actor, task, init, idx, args.oracle_horizon, args.oracle_iters)
            ok = verify_oracle(actor, task, init, idx[orc["saved"]], orc["delta"][:, orc["saved"]])
            good = idx[orc["saved"]][ok]
            robust = _shares(actor, task, init, good, orc["delta"][:, orc["saved"]][:, ok], 1, args.verify_draws) >= 0.5
            feasible[good[robust]] = True
            out["oracle_saved"] += int(orc["saved"].sum())
            out["oracle_verified"] += int(ok.sum())
            out["oracle_robust"] += int(robust.sum())
            print(f"oracle from {run}: saves {int(orc['saved'].sum())} of the {len(idx)} undecided, {int(ok.sum())} "
                  f"of them also over the whole episode, {int(robust.sum())} also with noise", flush=True)
        if args.planner_iters:
            idx = (~feasible & ~inf).nonzero()[:, 0]
            _, actor, _ = load_actor(runs[0])
            elites = max(2, round(args.planner_population * 12 / 128))  # plan()'s default share: 12 of 128
            res = plan(actor.to(args.planner_device), task, init, idx, args.planner_iters, args.planner_population,
                       elites, device=args.planner_device, noise_draws=args.planner_noise_draws)
            saved = res["saved"]
            share = _shares(actor, task, init, idx[saved], res["offsets"][:, saved], 5, args.verify_draws,
                            args.planner_device)
            feasible[idx[saved][share >= 0.5]] = True
            out |= {"planner_saved": int(saved.sum()), "planner_robust": int((share >= 0.5).sum()),
                    "planner_noisy_expected": share.sum().item()}
            print(f"planner from {runs[0]}: saves {int(saved.sum())} of the {len(idx)} undecided; with the "
                  f"evaluation's noise {int((share >= 0.5).sum())} survive at least half of {args.verify_draws} "
                  f"flights (expected saves {share.sum():.1f})", flush=True)
        out |= {"policy_crashes_infeasible": int((crashed & inf).sum()),
                "policy_crashes_feasible": int((crashed & feasible).sum()),
                "policy_crashes_undecided": int((crashed & ~feasible & ~inf).sum())}
        print(f"of the first policy's {int(crashed.sum())} crashes: {out['policy_crashes_infeasible']} infeasible, "
              f"{out['policy_crashes_feasible']} feasible, {out['policy_crashes_undecided']} undecided")
    both = int((feasible & inf).sum())
    if both:
        raise RuntimeError(f"{both} episodes both survived and proved infeasible: a bound is wrong")
    out |= {"feasible": int(feasible.sum()), "undecided": int((~feasible & ~inf).sum()),
            "ceiling_low": feasible.float().mean().item(), "ceiling_high": 1.0 - int(inf.sum()) / n,
            "seconds": time.perf_counter() - t0}
    print(f"reachable survival: at least {out['ceiling_low']:.1%} (an action sequence is known), at most "
          f"{out['ceiling_high']:.1%} (the bounds); {time.perf_counter() - t0:.0f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
