"""``robot-rl``: simulate, train, evaluate and export robot policies.

Commands:
  sim      run a task's simulator open-loop, plot it      robot-rl sim crazyflie --steps 500
  train    train a preset or task (or --resume a run)     robot-rl train crazyflie-hover --seed 0
  eval     evaluate a run and write report.md            robot-rl eval runs/crazyflie-hover/seed0
  export   export a run's policy (ONNX + policy.json)     robot-rl export runs/crazyflie-hover/seed0
  crazyflie-sim  a simulated Crazyflie behind Crazyswarm2's ROS 2 topics (needs rclpy)
                                                          robot-rl crazyflie-sim --cf cf1

Run ``robot-rl COMMAND --help`` for the options of a command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import tyro


def sim(
    task: tyro.conf.Positional[str],
    steps: int = 500,
    episodes: int = 3,
    seed: int = 0,
    out: Path | None = None,
) -> None:
    """Run a registered task's simulator without a policy and plot it (default runs/sim_demo/TASK.png).

    ``crazyflie`` (= ``quadrotor-hover``): hover RPM from rest plus random-action episodes, position/attitude
    plot; a task without a demo of its own: ``episodes`` envs of random actions, reward plot."""
    from robot_rl.commands.sim_demo import run_sim_demo

    summary = run_sim_demo(task, steps, episodes, seed, out or Path("runs/sim_demo") / f"{task}.png")
    if "hover_max_drift_m" in summary:
        print(f"hover at {summary['hover_max_drift_m']:.2e} m max drift over {steps} steps; random-action "
              f"episodes lasted {summary['random_episode_steps']} steps")
    else:
        print(json.dumps({k: v for k, v in summary.items() if k != "plot"}))
    print(f"plot written to {summary['plot']}")


def evaluate(run_dir: tyro.conf.Positional[Path], episodes: int | None = None, sweep: bool = True,
             source: Literal["auto", "onnx", "checkpoint", "int8"] = "auto", sim: tuple[str, ...] = ("ours",)) -> None:
    """Evaluate a run with its task's protocol (quadrotor-hover: 256 paper episodes + robustness sweep) and
    write report.md with plots.

    ``--episodes``: default the run's ``evaluation.episodes``. The episodes are held out (``evaluation.seed``):
    the in-training evaluations that choose when training stops fly ``evaluation.selection_seed``.
    ``--source int8`` flies the int8 C variant through its bit-exact NumPy reference (report_int8.md).
    ``--sim ours mujoco pybullet`` flies the same episodes (and sweep) in each simulator backend and writes the
    transfer table and plot (report_transfer.md; one non-``ours`` simulator: report_<sim>.md)."""
    from robot_rl.commands.evaluate import print_summary, run_eval

    summary = run_eval(run_dir, episodes, sweep, source, sims=sim)
    print(f"report written to {summary['report']}")
    print_summary(summary)


def export(run_dir: tyro.conf.Positional[Path], format: Literal["onnx", "c"] = "onnx",
           quantize: Literal["none", "int8"] = "none") -> None:
    """Export a run's policy to RUN/export (policy.onnx + policy.json; --format c adds C sources)."""
    from robot_rl.commands.export import export_run

    doc = export_run(run_dir)
    v = doc["verification"]
    print(f"exported {run_dir / 'export'} (max |torch - onnxruntime| = "
          f"{max(v['max_abs_error_random'], v['max_abs_error_on_distribution']):.2e})")
    if format == "c" or quantize != "none":
        from deploy.export.c_export import export_c

        info = export_c(run_dir / "export", quantize=None if quantize == "none" else quantize)
        print(f"C sources written to {info['out_dir']}")


def crazyflie_sim(cf: str = "cf1", rate: float = 100.0, latency_ms: float = 10.0,
                  start: tuple[float, float, float] = (0.0, 0.0, 1.0), duration: float = 0.0,
                  target_topic: str = "", step: tuple[float, float, float] = (0.3, 0.0, 0.0), step_at: float = 3.0,
                  hold: float = 10.0, settle: float = 5.0, radius: float = 0.1, report: Path | None = None,
                  seed: int = 0, max_wait: float = 60.0, backend: Literal["cpp", "cflib"] = "cpp") -> None:
    """Play a Crazyflie behind Crazyswarm2's topics: <cf>/odom and <cf>/pose out, <cf>/cmd_vel_legacy in.

    Setpoints go through the attitude_thrust level's radio and onboard-controller model. ``--duration``: stop
    that many seconds after the first setpoint (0: run until Ctrl-C; ``--max-wait`` s without any setpoint also
    ends a run with a duration). ``--target-topic``: also publish the
    policy node's target, step it by ``--step`` at ``--step-at`` s and check the hold (exit status 1 if it fails).
    """
    from robot_rl.commands.crazyflie_sim import run_crazyflie_sim

    summary = run_crazyflie_sim(cf, rate, latency_ms, start, duration, target_topic, step, step_at, hold, settle,
                                radius, report, seed, max_wait, backend)
    print(json.dumps(summary))
    if target_topic and not summary.get("passed", False):
        raise SystemExit(1)


COMMANDS = {"sim": sim, "eval": evaluate, "export": export, "crazyflie-sim": crazyflie_sim}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``robot-rl`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        if not argv:
            raise SystemExit(2)
        return
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "train":
            from robot_rl.commands.train import train_main

            train_main(rest)
        elif cmd in COMMANDS:
            tyro.cli(COMMANDS[cmd], args=rest, prog=f"robot-rl {cmd}")
        else:
            raise ValueError(f"unknown command {cmd!r}; choose from train, eval, export, sim, crazyflie-sim")
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()
        print(f"robot-rl: error: {msg[0] if msg else type(exc).__name__}", file=sys.stderr)
        if len(msg) > 1:
            print("\n".join(msg[1:]), file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
