"""Hover exports judged in RotorPy, a multirotor simulator nobody here wrote, on its own Crazyflie models.

Issue 14 asks that the robust hover policy be judged in simulators nobody here wrote. RotorPy (``pip install
rotorpy==3.0.0``, UPenn) brings its own rigid-body dynamics (scipy RK45 over each control step), motor model
(first-order, one time constant), rotor aerodynamics (rotor drag and induced inflow, ``aero=True``: its default)
and its own vehicle files: ``crazyflie`` (30 g, inertia 1.43e-5 / 2.89e-5 kg m^2, k_eta 2.3e-8 N/(rad/s)^2, up to
2,500 rad/s: thrust-to-weight 1.95, motor time constant 0.072 s) and ``crazyfliebrushless`` (44 g, thrust-to-weight
3.6: outside the span the robust presets train on). Nothing of its physics or parameters is ours.

The episodes are the paper's, as ``robot-rl eval`` flies them (its 256 held-out episodes: initial states, noise
draws, the per-episode disturbance force and torque): our task code keeps building the observation, the action
history, the termination (0.6 m) and the settle test from the state, and RotorPy's ``Multirotor.step`` replaces
the physics. The disturbance enters RotorPy's own integration (the world force added to its weight vector, the
body torque to its body wrench). An action is a fraction of the vehicle's full command, as on every per-env vehicle
in training and on the Crazyflie's PWM: rotor speed ``(a + 1) / 2 * (max - min) + min`` over RotorPy's
``rotor_speed_min/max`` (``--literal-rpm``: over the RPM range of the export's ``policy.json`` instead, clipped
to the vehicle's, as the issue's first measurement mapped them; RAPTOR keeps the vehicle's). The rotors start at
the paper's 10,851 RPM. ``--raptor`` adds RAPTOR's foundation policy (:mod:`benchmarks.raptor_policy`).

    python benchmarks/rotorpy_hover.py RUN_DIR [RUN_DIR ...] [--raptor] [--vehicle crazyflie crazyfliebrushless]
        [--episodes 256] [--literal-rpm]

Last line: JSON ``{"episodes", "literal_rpm", "vehicles": {vehicle: {policy: {"survival", "settle",
"median_final_error_m"}}}}`` (policy: the run's preset, ``"raptor"``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.raptor_policy import RaptorPolicy
from robot_rl import presets  # noqa: F401
from robot_rl.commands.evaluate import resolve_policy
from robot_rl.runs import load_config
from sim.quadrotor.config import DomainRandomization, QuadrotorTaskConfig
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, VEL
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicles import VehicleDistribution

ROTORPY_PACKAGE = "rotorpy==3.0.0"
VEHICLES = ("crazyflie", "crazyfliebrushless")
RPM_PER_RAD_S = 60.0 / (2.0 * math.pi)
TO_ROTORPY = [3, 0, 1, 2]
"""RotorPy's rotors r1-r4 sit at (+x, +y), (+x, -y), (-x, -y), (-x, +y); ours (and L2F's) at (+x, -y), (-x, -y),
(-x, +y), (+x, +y): RotorPy's rotor k is our rotor ``TO_ROTORPY[k]`` (the spin directions agree)."""
FROM_ROTORPY = [1, 2, 3, 0]


def rotorpy_vehicle(name: str) -> dict:
    """RotorPy's own parameter file ``rotorpy.vehicles.<name>_params`` (its ``quad_params``)."""
    if name not in VEHICLES:
        raise SystemExit(f"unknown RotorPy vehicle {name!r}; choose from {', '.join(VEHICLES)}")
    try:
        return importlib.import_module(f"rotorpy.vehicles.{name}_params").quad_params
    except ModuleNotFoundError as e:
        raise SystemExit(f"RotorPy is not installed: pip install {ROTORPY_PACKAGE} ({e})") from e


def _disturbed_multirotor(quad_params: dict):
    """A RotorPy ``Multirotor`` (its defaults: ``aero=True``, RK45) that also feels a world force and a body torque."""
    from rotorpy.vehicles.multirotor import Multirotor

    class DisturbedMultirotor(Multirotor):
        def __init__(self) -> None:
            super().__init__(quad_params, control_abstraction="cmd_motor_speeds")
            self.gravity_force = self.weight.copy()
            self.body_torque = np.zeros(3)

        def disturb(self, force: np.ndarray, torque: np.ndarray) -> None:
            self.weight = self.gravity_force + force  # RotorPy's v_dot = (weight + R F_body) / mass
            self.body_torque = torque

        def compute_body_wrench(self, body_rates, rotor_speeds, body_airspeed_vector):
            force, moment = super().compute_body_wrench(body_rates, rotor_speeds, body_airspeed_vector)
            return force, moment + self.body_torque

    return DisturbedMultirotor()


class RotorpyHoverEnv(QuadrotorHoverEnv):
    """The motor-level hover task whose physics is RotorPy's ``Multirotor`` with ``quad_params`` (see the module
    docstring); CPU, one RotorPy vehicle per env, not differentiable."""

    differentiable = False

    def __init__(self, cfg: QuadrotorTaskConfig, quad_params: dict, seed: int = 0,
                 command_rpm: tuple[float, float] | None = None) -> None:
        if cfg.action_level != "motor_rpm" or cfg.vehicles.enabled or cfg.randomization.enabled:
            raise ValueError("RotorPy flies motor-level tasks on its own vehicle (no vehicles, no randomisation)")
        self.quad_params = quad_params
        #: Rotor speeds (rad/s) that actions -1 and +1 command: the vehicle's range, or ``command_rpm`` (RPM).
        self.command_range = ((quad_params["rotor_speed_min"], quad_params["rotor_speed_max"]) if command_rpm is None
                              else (command_rpm[0] / RPM_PER_RAD_S, command_rpm[1] / RPM_PER_RAD_S))
        self.vehicles_rp = [_disturbed_multirotor(quad_params) for _ in range(cfg.num_envs)]
        super().__init__(cfg, seed=seed)

    def _advance(self, a: torch.Tensor) -> torch.Tensor:
        lo, hi = self.command_range  # RotorPy clips the command to its vehicle's range
        cmd = ((a.detach().double().clamp(-1.0, 1.0).numpy() + 1.0) * (0.5 * (hi - lo)) + lo)[:, TO_ROTORPY]
        s = self.state.detach().double().numpy()
        force, torque = self.force.double().numpy(), self.torque.double().numpy()
        out = np.empty_like(s)
        for i, vehicle in enumerate(self.vehicles_rp):
            q = s[i, QUAT]
            state = {"x": s[i, POS].copy(), "v": s[i, VEL].copy(), "q": np.r_[q[1:], q[:1]], "w": s[i, OMEGA].copy(),
                     "wind": np.zeros(3), "rotor_speeds": s[i, RPM][TO_ROTORPY] / RPM_PER_RAD_S}
            vehicle.disturb(force[i], torque[i])
            new = vehicle.step(state, {"cmd_motor_speeds": cmd[i]}, self.dt)
            out[i] = np.concatenate((new["x"], new["q"][3:], new["q"][:3], new["v"], new["w"],
                                     new["rotor_speeds"][FROM_ROTORPY] * RPM_PER_RAD_S))
        return torch.from_numpy(out).to(torch.float32)


@torch.no_grad()
def fly(policy, task: QuadrotorTaskConfig, quad_params: dict, episodes: int, seed: int,
        settle_radius: float = 0.1, command_rpm: tuple[float, float] | None = None) -> dict:
    """Survival, settle (survived and within ``settle_radius`` at the end) and the survivors' median final error
    over ``episodes`` paper episodes (``seed``: the evaluation's) in RotorPy."""
    cfg = replace(task, num_envs=episodes, device="cpu", noise=True, randomization=DomainRandomization(),
                  vehicles=VehicleDistribution())
    env = RotorpyHoverEnv(cfg, quad_params, seed=seed, command_rpm=command_rpm)
    obs = env.reset(seed=seed)
    if hasattr(policy, "begin_episodes"):
        policy.begin_episodes(episodes)
    alive = torch.ones(episodes, dtype=torch.bool)
    err = torch.zeros(episodes)
    for _ in range(cfg.episode_length):
        obs, _, terminated, _, info = env.step(policy(obs["policy"]).to(torch.float32))
        alive &= ~terminated
        err = info["final_obs"]["critic"][:, :3].norm(dim=-1)
    settled = alive & (err < settle_radius)
    return {"survival": float(alive.float().mean()), "settle": float(settled.float().mean()),
            "median_final_error_m": float(err[alive].median()) if bool(alive.any()) else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+", type=Path, help="motor-level hover runs (their exports fly)")
    ap.add_argument("--raptor", action="store_true", help="also fly RAPTOR's foundation policy")
    ap.add_argument("--vehicle", nargs="+", default=list(VEHICLES), choices=VEHICLES)
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--literal-rpm", action="store_true", help="map each export's actions to the RPM range of its "
                    "policy.json (the paper model's 0-21,702 RPM) instead of the vehicle's full range")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    runs = [(d, load_config(d)) for d in args.run_dirs]
    for d, cfg in runs:
        if cfg.task.action_level != "motor_rpm":
            raise SystemExit(f"{d}: RotorPy flies motor-level runs only, got {cfg.task.action_level!r}")
    task, evaluation = runs[0][1].task, runs[0][1].evaluation  # the episodes: the first run's task and seed
    out: dict[str, dict] = {}
    for name in args.vehicle:
        params = rotorpy_vehicle(name)
        rows = {}
        for d, cfg in runs:
            policy, _ = resolve_policy(d)
            spec = json.loads((d / "export" / "policy.json").read_text())["action"]
            literal = (spec["rpm_min"], spec["rpm_max"]) if args.literal_rpm else None
            t0 = time.perf_counter()
            rows[cfg.preset] = fly(policy, cfg.task, params, args.episodes, evaluation.seed, command_rpm=literal)
            print(f"{name:<20} {cfg.preset:<28} {rows[cfg.preset]['survival']:>7.1%} "
                  f"{rows[cfg.preset]['settle']:>7.1%}  ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.raptor:
            rows["raptor"] = fly(RaptorPolicy(), task, params, args.episodes, evaluation.seed)
            print(f"{name:<20} {'raptor':<28} {rows['raptor']['survival']:>7.1%} {rows['raptor']['settle']:>7.1%}",
                  flush=True)
        out[name] = rows
    print(json.dumps({"episodes": args.episodes, "literal_rpm": args.literal_rpm, "vehicles": out}))


if __name__ == "__main__":
    main()
