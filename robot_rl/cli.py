"""``robot-rl``: simulate, train, evaluate and export robot policies.

Commands:
  sim      run a task's simulator open-loop, plot it      robot-rl sim crazyflie --steps 500
  train    train a preset or task (or --resume a run)     robot-rl train crazyflie-hover --seed 0
           residual RL on a frozen BC base                 robot-rl train resip --base runs/dp-panda-peg-insert/seed0
           EXPO (edits + argmax-Q candidates) on it        robot-rl train expo --base runs/dp-panda-peg-insert/seed0
  eval     evaluate a run and write report.md            robot-rl eval runs/crazyflie-hover/seed0
  export   export a run's policy (ONNX + policy.json)     robot-rl export runs/crazyflie-hover/seed0
  demos    scripted-expert demonstrations (LeRobot v3.0)   robot-rl demos panda-pick-cube --episodes 200 --out d
  crazyflie-sim  a simulated Crazyflie behind Crazyswarm2's ROS 2 topics (needs rclpy)
                                                          robot-rl crazyflie-sim --cf cf1
  arm-sim  the MuJoCo Panda behind ros2_control's ROS 2 topics (needs rclpy)
                                                          robot-rl arm-sim --task panda-pick-cube
  quadrotor-sim  a motor-level quadrotor behind the node's quadrotor_motors topics (needs rclpy)
                                                          robot-rl quadrotor-sim --duration 5

Run ``robot-rl COMMAND --help`` for the options of a command.
"""

from __future__ import annotations

import json
import os
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
    expert: bool = False,
    action_noise: float = 0.0,
) -> None:
    """Run a registered task's simulator without a policy and plot it (default runs/sim_demo/TASK.png).

    ``crazyflie`` (= ``quadrotor-hover``): hover RPM from rest plus random-action episodes, position/attitude
    plot; a task without a demo of its own: ``episodes`` envs of random actions, reward plot. ``--expert``
    (tasks with a scripted expert, the Panda tasks): ``episodes`` expert episodes rendered to a video
    (``--out`` .mp4 or .gif, default runs/sim_demo/TASK.mp4; at most ``--steps`` steps each)."""
    if expert:
        from robot_rl.commands.sim_demo import expert_video

        summary = expert_video(task, steps, episodes, seed, out or Path("runs/sim_demo") / f"{task}.mp4",
                               action_noise)
        print(json.dumps({k: v for k, v in summary.items() if k != "video"}))
        print(f"video written to {summary['video']}")
        return
    from robot_rl.commands.sim_demo import run_sim_demo

    summary = run_sim_demo(task, steps, episodes, seed, out or Path("runs/sim_demo") / f"{task}.png")
    if "hover_max_drift_m" in summary:
        print(f"hover at {summary['hover_max_drift_m']:.2e} m max drift over {steps} steps; random-action "
              f"episodes lasted {summary['random_episode_steps']} steps")
    else:
        print(json.dumps({k: v for k, v in summary.items() if k != "plot"}))
    print(f"plot written to {summary['plot']}")


def demos(task: tyro.conf.Positional[str], out: Path, episodes: int = 200, seed: int = 0,
          action_noise: float = 0.1, num_envs: int = 16) -> None:
    """Roll out TASK's scripted expert and write a LeRobot v3.0 dataset to ``--out`` (never overwritten).

    Frames hold ``observation.state`` (the policy group: what the robot measures, noisy), ``privileged.state``
    (the critic group), ``action`` (the expert's clean label; the executed action had Gaussian noise of std
    ``--action-noise`` added), ``next.reward``, ``next.done`` and ``next.success``. Load it back with
    ``robot_rl.data.load_dataset``."""
    from robot_rl.commands.demos import record_demos

    summary = record_demos(task, episodes, seed, out, action_noise, num_envs)
    print(f"{summary['episodes']} episodes, {summary['frames']} frames of {summary['task']} written to "
          f"{summary['dataset']}; expert success rate {summary['success_rate']:.1%}")
    print(json.dumps({k: v for k, v in summary.items() if k != "dataset"}))


def evaluate(run_dir: tyro.conf.Positional[Path], episodes: int | None = None, sweep: bool = True,
             source: Literal["auto", "onnx", "checkpoint", "int8"] = "auto", video_episodes: int = 4,
             sim: tuple[str, ...] = ("ours",), sweep_episodes: int | None = None, vehicles: int = 0,
             vehicle_seed: int | None = None, vehicle_margin: float = 0.2) -> None:
    """Evaluate a run with its task's protocol (quadrotor-hover: 256 paper episodes + robustness sweep) and
    write report.md with plots.

    ``--episodes``: default the run's ``evaluation.episodes``. The episodes are held out (``evaluation.seed``):
    the in-training evaluations that choose when training stops fly ``evaluation.selection_seed``.
    ``--source int8`` flies the int8 C variant through its bit-exact NumPy reference (report_int8.md).
    Tasks that render (the Panda tasks) also get eval.mp4: ``--video-episodes`` held-out episodes (0: none).
    ``--sim ours mujoco pybullet`` flies the same episodes (and sweep) in each simulator backend and writes the
    transfer table and plot (report_transfer.md; one non-``ours`` simulator: report_<sim>.md); the Panda tasks
    (RL, behaviour-cloning and ResiP runs; ResiP: report.md) have ``--sim mujoco pybullet``, the plot tracing their
    first 4 episodes in each (transfer_trajectories*.png + .npz). Their robustness sweep (object mass and friction
    x0.8/x1.2, servo gains x0.8/x1.2, +10 ms latency) flies ``--sweep-episodes`` episodes per row (default 50, at
    most ``--episodes``); ``--no-sweep`` skips it.
    ``--vehicles N`` (quadrotor motor level) instead flies N vehicles drawn from the published Crazyflie span
    widened by ``--vehicle-margin`` of each range, on the held-out ``--vehicle-seed`` (report_vehicles.md, with
    survival/settle per vehicle and a plot of settle versus each parameter)."""
    from robot_rl.commands.bc import is_bc_run, run_bc_eval
    from robot_rl.commands.evaluate import print_summary, run_eval
    from robot_rl.commands.expo import is_expo_run, run_expo_eval
    from robot_rl.commands.vgps import is_vgps_run, run_vgps_eval

    if tuple(sim) != ("ours",) and (is_vgps_run(run_dir) or is_expo_run(run_dir)):
        raise ValueError(f"{run_dir}: --sim is not supported for EXPO and value-guided runs (they evaluate in the "
                         "task's reference simulator)")
    if is_vgps_run(run_dir):  # value-guided re-ranking: base vs re-ranked on the same held-out episodes
        summary = run_vgps_eval(run_dir, episodes)
        print(f"report written to {summary['report']}")
        return print(json.dumps(summary["headline"]))
    if is_expo_run(run_dir):  # EXPO refinement of a BC run: the deterministic on-the-fly policy
        summary = run_expo_eval(run_dir, episodes)
        print(f"report written to {summary['report']}")
        return print(json.dumps(summary["headline"]))
    from robot_rl.commands.resip import is_resip_run, run_resip_eval

    if is_resip_run(run_dir):  # residual RL: base alone and base + residual on the same held-out episodes
        summary = run_resip_eval(run_dir, episodes, sims=tuple(sim), sweep=sweep, sweep_episodes=sweep_episodes)
        print(f"report written to {summary['report']}")
        print(json.dumps({k: v for k, v in summary.items() if k != "report"}))
        return
    if vehicles:
        from robot_rl.commands.vehicle_eval import print_vehicle_summary, run_vehicle_eval
        from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED

        seed = VEHICLE_EVAL_SEED if vehicle_seed is None else vehicle_seed
        summary = run_vehicle_eval(run_dir, vehicles, seed, vehicle_margin, source)
        print(f"report written to {summary['report']}")
        return print_vehicle_summary(summary)

    if is_bc_run(run_dir):  # behaviour cloning (dp-/mse- presets): chunked, executed as deployed
        summary = run_bc_eval(run_dir, episodes, video_episodes, source, sims=tuple(sim), sweep=sweep,
                              sweep_episodes=sweep_episodes)
        print(f"report written to {summary['report']}")
        return print_summary(summary)
    summary = run_eval(run_dir, episodes, sweep, source, video_episodes, sims=sim, sweep_episodes=sweep_episodes)
    print(f"report written to {summary['report']}")
    print_summary(summary)


def export(run_dir: tyro.conf.Positional[Path], format: Literal["onnx", "c"] = "onnx",
           quantize: Literal["none", "int8"] = "none") -> None:
    """Export a run's policy to RUN/export (policy.onnx + policy.json; --format c adds C sources)."""
    from robot_rl.commands.bc import export_bc_run, is_bc_run
    from robot_rl.commands.expo import is_expo_run
    from robot_rl.commands.export import export_run
    from robot_rl.commands.resip import export_resip_run, is_resip_run
    from robot_rl.commands.vgps import is_vgps_run

    if is_expo_run(run_dir) or is_vgps_run(run_dir):
        from robot_rl.commands.candidates_export import export_candidates_run

        if format != "onnx" or quantize != "none":
            raise ValueError("a candidates (composed) policy exports to ONNX only")
        doc = export_candidates_run(run_dir)
        print(f"exported {run_dir / 'export'} (base sampler + {doc['composition']['network']}, k = "
              f"{doc['composition']['k']}; max |torch - onnxruntime| = "
              f"{doc['composition']['verification']['max_abs_error']:.2e})")
        return
    if is_resip_run(run_dir):
        if format != "onnx" or quantize != "none":
            raise ValueError("a residual (composed) policy exports to ONNX only")
        doc = export_resip_run(run_dir)
        print(f"exported {run_dir / 'export'} (base sampler + residual actor; max |torch - onnxruntime| = "
              f"{doc['composition']['verification']['max_abs_error']:.2e})")
        return
    doc = export_bc_run(run_dir) if is_bc_run(run_dir) else export_run(run_dir)
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


def arm_sim(task: str = "panda-pick-cube", seed: int = 0, rate: float = 100.0,
            controller: str = "forward_position_controller", gripper_controller: str = "gripper_controller",
            object_topic: str = "/object_pose", goal_topic: str = "/goal_pose",
            goal: tuple[float, float, float] | None = None, frame: str = "panda_link0", duration: float = 0.0,
            radius: float = 0.01, hold: float = 0.5, pause_joint_states: tuple[float, float] | None = None,
            report: Path | None = None, max_wait: float = 60.0,
            wrench_topic: str = "/force_torque_sensor_broadcaster/wrench_filtered",
            pause_wrench: tuple[float, float] | None = None) -> None:
    """Play a Panda behind ros2_control: /joint_states out, /<controller>/commands and the gripper's in.

    The world is the arm task's training scene (one env, ``--seed``); the tracked object and the goal go out
    as geometry_msgs/PoseStamped. ``--duration``: stop that many seconds after the first arm command (0: until
    Ctrl-C) and report whether the TCP held within ``--radius`` of the goal for ``--hold`` s (exit status 1 if
    not, where there is a goal). ``--pause-joint-states AT FOR``: a stalled joint-state stream;
    ``--pause-wrench AT FOR``: a stalled force/torque sensor.

    Args:
        task: arm task whose scene is simulated (sim.arm.ARM_TASKS).
        seed: episode seed of the scene (start pose, object placement, randomised gains).
        rate: joint-state and physics (controller-manager) rate, Hz.
        controller: arm forward position controller: commands on /<controller>/commands.
        gripper_controller: finger position controller: commands on /<gripper_controller>/commands.
        object_topic: tracked object pose (geometry_msgs/PoseStamped); "" = none.
        goal_topic: goal pose (geometry_msgs/PoseStamped); "" = none.
        goal: goal position (m, base frame); default: the task's own (reach: its goal, peg: the hole).
        frame: frame_id of the published poses and joint states (the arm's base).
        duration: stop this many seconds after the first arm command (0: run until Ctrl-C).
        radius: goal radius (m) of the reach check.
        hold: seconds the TCP must stay within the radius.
        pause_joint_states: AT FOR: no /joint_states for FOR s from AT s after the first command.
        report: JSON file for the summary, trajectory and every received command.
        max_wait: with a duration, give up after this many seconds without any arm command.
        wrench_topic: wrist force/torque sensor (geometry_msgs/WrenchStamped, frame ft_sensor, low-pass filtered as
            the force_torque_sensor_broadcaster's wrench_filtered); "" = none.
        pause_wrench: AT FOR: no wrench for FOR s from AT s after the first command.
    """
    from robot_rl.commands.arm_sim import run_arm_sim

    summary = run_arm_sim(task, seed, rate, controller, gripper_controller, object_topic, goal_topic, goal, frame,
                          duration, radius, hold, pause_joint_states, report, max_wait, wrench_topic,
                          pause_wrench)
    print(json.dumps(summary))
    if duration and "reached" in summary and not summary["reached"]:
        raise SystemExit(1)


def quadrotor_sim(frame: str = "crazyflie", rate: float = 100.0, start: tuple[float, float, float] = (0.0, 0.0, 1.0),
                  duration: float = 0.0, command_unit: Literal["rpm", "normalized"] = "rpm", odom_topic: str = "odom",
                  motor_topic: str = "motor_commands", frame_id: str = "odom", child_frame_id: str = "base_link",
                  report: Path | None = None, max_wait: float = 60.0) -> None:
    """Play a motor-level quadrotor behind the node's ``quadrotor_motors`` topics: odometry out, motors in.

    Our quadrotor model (first-order motors, RK4) flies the 4 motor commands it receives (zero-order hold); it
    is held at ``--start`` with its rotors at hover speed until the first command that spins a rotor.

    Args:
        frame: vehicle parameters (sim.quadrotor frames, e.g. crazyflie).
        rate: odometry and physics rate, Hz.
        start: start position (m, world = the odometry frame).
        duration: stop this many seconds after the launch (0: run until Ctrl-C).
        command_unit: unit of the motor commands: rpm, or the policy's normalized [-1, 1].
        odom_topic: nav_msgs/Odometry out (REP 105: twist in the body frame).
        motor_topic: std_msgs/Float32MultiArray motor commands in (4 values, the policy's rotor order).
        frame_id: header.frame_id of the odometry (the world).
        child_frame_id: child_frame_id of the odometry (the body).
        report: JSON file for the summary and the trajectory.
        max_wait: with a duration, give up after this many seconds without a launch.
    """
    from robot_rl.commands.quadrotor_sim import run_quadrotor_sim

    summary = run_quadrotor_sim(frame, rate, start, duration, command_unit, odom_topic, motor_topic, frame_id,
                                child_frame_id, report, max_wait)
    print(json.dumps(summary))


COMMANDS = {"sim": sim, "eval": evaluate, "export": export, "demos": demos, "crazyflie-sim": crazyflie_sim,
            "arm-sim": arm_sim, "quadrotor-sim": quadrotor_sim}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``robot-rl`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # MuJoCo picks its GL backend when first imported: headless offscreen rendering (videos) needs EGL
    os.environ.setdefault("MUJOCO_GL", "egl")
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
            raise ValueError(f"unknown command {cmd!r}; choose from {', '.join(['train', *COMMANDS])}")
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()
        print(f"robot-rl: error: {msg[0] if msg else type(exc).__name__}", file=sys.stderr)
        if len(msg) > 1:
            print("\n".join(msg[1:]), file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
