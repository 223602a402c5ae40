"""Hover exports judged in simulators nobody here wrote, on their own Crazyflie models: RotorPy and L2F.

Issue 14 asks that the robust hover policy be judged in simulators nobody here wrote. Two are on PyPI (extra
``.[judges]``):

- **RotorPy** (``rotorpy==3.0.0``, UPenn): its own rigid-body dynamics (scipy RK45 over each control step), motor
  model (first-order, one time constant), rotor aerodynamics (rotor drag and induced inflow, ``aero=True``: its
  default) and its own vehicle files: ``rotorpy:crazyflie`` (30 g, inertia 1.43e-5 / 2.89e-5 kg m^2, k_eta 2.3e-8
  N/(rad/s)^2, up to 2,500 rad/s: thrust-to-weight 1.95, motor time constant 0.072 s) and
  ``rotorpy:crazyfliebrushless`` (44 g, thrust-to-weight 3.6: outside the span the robust presets train on).
- **L2F** (``l2f==2.0.18``, rl-tools' C++ simulator behind *Learning to Fly in Seconds* and RAPTOR, built from
  source): RK4 at 100 Hz over its own Crazyflie identification, ``l2f:crazyflie`` (30.6 g, inertia 9.4e-6 /
  1.75e-5 kg m^2, a thrust curve with a constant term, thrust-to-weight 1.47, motors 0.055 s up and 0.249 s down:
  slower down than the span's 0.15 s). Its motor state is the command fraction, without an RPM scale.

The episodes are the paper's, as ``robot-rl eval`` flies them (its 256 held-out episodes: initial states, noise
draws, the per-episode disturbance force and torque): our task code keeps building the observation, the action
history, the termination (0.6 m) and the settle test from the state, and the judge's step replaces the physics.
RotorPy integrates the disturbance itself (the world force added to its weight vector, the body torque to its body
wrench); L2F's Python step takes none, so its episodes fly without it. An action is a fraction of the vehicle's
full command, as on every per-env vehicle in training and on the Crazyflie's PWM: in RotorPy rotor speed
``(a + 1) / 2 * (max - min) + min`` over its ``rotor_speed_min/max`` (``--literal-rpm``: over the RPM range of the
export's ``policy.json`` instead, clipped to the vehicle's, as the issue's first measurement mapped them; RAPTOR
keeps the vehicle's; L2F has no RPM scale, so the flag does not change it). The rotors start at the paper's 10,851
RPM (in L2F: half of full command, the same fraction). ``--raptor`` adds RAPTOR's foundation policy
(:mod:`benchmarks.raptor_policy`).

    python benchmarks/judge_sims.py RUN_DIR [RUN_DIR ...] [--raptor] [--judge rotorpy:crazyflie ...]
        [--episodes 256] [--literal-rpm]

Last line: JSON ``{"episodes", "literal_rpm", "judges": {judge: {policy: {"survival", "settle",
"median_final_error_m"}}}}`` (policy: the run's preset, ``"raptor"``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.raptor_policy import RaptorPolicy
from robot_rl import presets  # noqa: F401
from robot_rl.commands.evaluate import resolve_policy
from robot_rl.runs import load_config
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, VEL
from sim.quadrotor.evaluation import evaluate
from sim.quadrotor.task import QuadrotorHoverEnv

ROTORPY_PACKAGE = "rotorpy==3.0.0"
L2F_PACKAGE = "l2f==2.0.18"
JUDGES = ("rotorpy:crazyflie", "rotorpy:crazyfliebrushless", "l2f:crazyflie")
L2F_RPM_SCALE = 21702.0
"""Our state keeps L2F's motor state (a command fraction) times the paper model's full speed, so that the paper's
10,851 RPM start is L2F's half command."""
RPM_PER_RAD_S = 60.0 / (2.0 * math.pi)
TO_ROTORPY = [3, 0, 1, 2]
"""RotorPy's rotors r1-r4 sit at (+x, +y), (+x, -y), (-x, -y), (-x, +y); ours (and L2F's) at (+x, -y), (-x, -y),
(-x, +y), (+x, +y): RotorPy's rotor k is our rotor ``TO_ROTORPY[k]`` (the spin directions agree)."""
FROM_ROTORPY = [1, 2, 3, 0]


def rotorpy_vehicle(name: str) -> dict:
    """RotorPy's own parameter file ``rotorpy.vehicles.<name>_params`` (its ``quad_params``)."""
    if f"rotorpy:{name}" not in JUDGES:
        raise SystemExit(f"unknown RotorPy vehicle {name!r}; choose from {', '.join(JUDGES)}")
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


def _check_judged_task(cfg: QuadrotorTaskConfig, judge: str) -> None:
    """A judge flies motor-level tasks on its own vehicle: no per-env vehicles, no domain randomisation."""
    if cfg.action_level != "motor_rpm" or cfg.vehicles.enabled or cfg.randomization.enabled:
        raise ValueError(f"{judge} flies motor-level tasks on its own vehicle (no vehicles, no randomisation)")


class RotorpyHoverEnv(QuadrotorHoverEnv):
    """The motor-level hover task whose physics is RotorPy's ``Multirotor`` with ``quad_params`` (see the module
    docstring); CPU, one RotorPy vehicle per env, not differentiable."""

    differentiable = False

    def __init__(self, cfg: QuadrotorTaskConfig, quad_params: dict, seed: int = 0,
                 command_rpm: tuple[float, float] | None = None) -> None:
        _check_judged_task(cfg, "RotorPy")
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


class L2fHoverEnv(QuadrotorHoverEnv):
    """The motor-level hover task whose physics is L2F's step on its own Crazyflie model (``params_json``: other
    L2F parameters, as ``l2f.parameters_to_json`` writes them); CPU, not differentiable, no disturbance."""

    differentiable = False

    def __init__(self, cfg: QuadrotorTaskConfig, seed: int = 0, params_json: str | None = None) -> None:
        _check_judged_task(cfg, "L2F")
        try:
            import l2f
        except ModuleNotFoundError as e:
            raise SystemExit(f"L2F is not installed: pip install {L2F_PACKAGE} ({e})") from e
        self.l2f = l2f
        # l2f_ names: the task owns ``device`` (torch's)
        self.l2f_device, self.l2f_env, self.l2f_params = l2f.Device(), l2f.Environment(), l2f.Parameters()
        self.l2f_rng = l2f.Rng()
        l2f.initialize_environment(self.l2f_device, self.l2f_env)
        l2f.initialize_rng(self.l2f_device, self.l2f_rng, seed)
        l2f.initial_parameters(self.l2f_device, self.l2f_env, self.l2f_params)
        if params_json is not None:
            l2f.parameters_from_json(self.l2f_device, self.l2f_env, params_json, self.l2f_params)
        self.l2f_states = [(l2f.State(), l2f.State()) for _ in range(cfg.num_envs)]
        super().__init__(cfg, seed=seed)

    def _advance(self, a: torch.Tensor) -> torch.Tensor:
        act = a.detach().double().clamp(-1.0, 1.0).numpy()
        s = self.state.detach().double().numpy()
        out = np.empty_like(s)
        for i, (now, nxt) in enumerate(self.l2f_states):
            now.position, now.orientation = s[i, POS].tolist(), s[i, QUAT].tolist()  # (w, x, y, z) in both
            now.linear_velocity, now.angular_velocity = s[i, VEL].tolist(), s[i, OMEGA].tolist()
            now.rpm = (s[i, RPM] / L2F_RPM_SCALE).tolist()
            self.l2f.step(self.l2f_device, self.l2f_env, self.l2f_params, now, act[i].tolist(), nxt, self.l2f_rng)
            out[i] = np.concatenate((nxt.position, nxt.orientation, nxt.linear_velocity, nxt.angular_velocity,
                                     np.asarray(nxt.rpm) * L2F_RPM_SCALE))
        return torch.from_numpy(out).to(torch.float32)


def judge_env(judge: str, cfg: QuadrotorTaskConfig, seed: int,
              command_rpm: tuple[float, float] | None = None) -> QuadrotorHoverEnv:
    """The hover task on ``judge`` (``<simulator>:<vehicle>``, one of :data:`JUDGES`)."""
    if judge not in JUDGES:
        raise SystemExit(f"unknown judge {judge!r}; choose from {', '.join(JUDGES)}")
    sim, vehicle = judge.split(":")
    if sim == "rotorpy":
        return RotorpyHoverEnv(cfg, rotorpy_vehicle(vehicle), seed=seed, command_rpm=command_rpm)
    return L2fHoverEnv(cfg, seed=seed)


def fly(policy, task: QuadrotorTaskConfig, judge: str, episodes: int, seed: int, settle_radius: float = 0.1,
        command_rpm: tuple[float, float] | None = None) -> dict:
    """Survival, settle (survived and within ``settle_radius`` at the end) and the survivors' median final error
    (None: none survived) over ``episodes`` paper episodes (``seed``: the evaluation's) on ``judge``, flown by
    :func:`sim.quadrotor.evaluation.evaluate`."""
    r = evaluate(policy, task, episodes, settle_radius, seed=seed,
                 make_env=lambda cfg, s: judge_env(judge, cfg, s, command_rpm))
    median = r["median_final_error_m"]
    return {"survival": r["survival"], "settle": r["settle"], "median_final_error_m": None if median != median
            else median}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+", type=Path, help="motor-level hover runs (their exports fly)")
    ap.add_argument("--raptor", action="store_true", help="also fly RAPTOR's foundation policy")
    ap.add_argument("--judge", nargs="+", default=list(JUDGES), choices=JUDGES)
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--literal-rpm", action="store_true", help="RotorPy: map each export's actions to the RPM range "
                    "of its policy.json (the paper model's 0-21,702 RPM) instead of the vehicle's full range")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    runs = [(d, load_config(d)) for d in args.run_dirs]
    for d, cfg in runs:
        if cfg.task.action_level != "motor_rpm":
            raise SystemExit(f"{d}: the judges fly motor-level runs only, got {cfg.task.action_level!r}")
    task, evaluation = runs[0][1].task, runs[0][1].evaluation  # the episodes: the first run's task and seed
    out: dict[str, dict] = {}
    for judge in args.judge:
        rows = {}
        for d, cfg in runs:
            policy, _ = resolve_policy(d)
            spec = json.loads((d / "export" / "policy.json").read_text())["action"]
            literal = (spec["rpm_min"], spec["rpm_max"]) if args.literal_rpm else None
            t0 = time.perf_counter()
            rows[cfg.preset] = fly(policy, cfg.task, judge, args.episodes, evaluation.seed, command_rpm=literal)
            print(f"{judge:<28} {cfg.preset:<28} {rows[cfg.preset]['survival']:>7.1%} "
                  f"{rows[cfg.preset]['settle']:>7.1%}  ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.raptor:
            rows["raptor"] = fly(RaptorPolicy(), task, judge, args.episodes, evaluation.seed)
            print(f"{judge:<28} {'raptor':<28} {rows['raptor']['survival']:>7.1%} {rows['raptor']['settle']:>7.1%}",
                  flush=True)
        out[judge] = rows
    print(json.dumps({"episodes": args.episodes, "literal_rpm": args.literal_rpm, "judges": out}))


if __name__ == "__main__":
    main()
