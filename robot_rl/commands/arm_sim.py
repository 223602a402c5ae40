"""``robot-rl arm-sim``: the MuJoCo Panda of an arm task behind ros2_control's ROS 2 topics.

Topics (what a Panda under ros2_control with a ``joint_state_broadcaster``, a ``forward_command_controller``
for the arm and one for the finger, plus an object tracker, would carry; behaviour from ros2_controllers at
commit 94e74de35, see :mod:`sim.arm.ros2_control`):

* out ``/joint_states`` (``sensor_msgs/JointState``; 7 arm + 2 finger joints in a non-URDF order; reliable and
  volatile as the broadcaster's ``rclcpp::SystemDefaultsQoS``, keep-last 10 here where that leaves the depth to the
  rmw's default; a sensor-data subscriber is compatible) at ``--rate`` Hz, also the physics/controller-manager rate;
* in ``/<controller>/commands`` (``std_msgs/Float64MultiArray``, 7 joint position targets, URDF joint order);
* in ``/<gripper-controller>/commands`` (``std_msgs/Float64MultiArray``, one finger's opening in m);
* out ``--object-topic`` (``geometry_msgs/PoseStamped``, frame ``--frame``): the task's free object (cube);
* out ``--goal-topic`` (``geometry_msgs/PoseStamped``): ``--goal`` or the task's own goal (reach: the goal,
  peg: the hole), when there is one;
* out ``--wrench-topic`` (``geometry_msgs/WrenchStamped``, frame ``ft_sensor``): the wrist force/torque sensor as
  ``force_torque_sensor_broadcaster`` publishes it on ``~/wrench_filtered`` (the training sensor model:
  :class:`sim.arm.config.ArmWristFT`, its low-pass at ``--rate``).

With ``--duration`` it stops that many seconds after the first arm command and reports (``--report`` JSON)
whether the TCP stayed within ``--radius`` of the goal for ``--hold`` seconds (``panda-pick-cube``: whether the
cube was lifted and held as the task defines success, ``success``/``lifted_at_s``; ``panda-peg-insert``: when the
peg was first inserted as the task defines success, ``success``/``inserted_at_s``), with the controllers' counters
(dropped non-finite commands, size errors, limit and velocity violations). ``--pause-joint-states AT FOR``
stops ``/joint_states`` for FOR seconds, AT seconds after the first command (a stalled driver);
``--pause-wrench AT FOR`` stops the wrench the same way (a stalled force/torque sensor); the report's
``trajectory.wrench`` holds every published reading (time -1 before the first command). Needs rclpy,
mujoco and torch (the task scene) in one interpreter (``.venv-ros``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from robot_rl.commands.ros_sim_loop import spin_simulator


def run_arm_sim(task: str = "panda-pick-cube", seed: int = 0, rate: float = 100.0,
                controller: str = "forward_position_controller", gripper_controller: str = "gripper_controller",
                object_topic: str = "/object_pose", goal_topic: str = "/goal_pose",
                goal: tuple[float, float, float] | None = None, frame: str = "panda_link0", duration: float = 0.0,
                radius: float = 0.01, hold: float = 0.5, pause_joint_states: tuple[float, float] | None = None,
                report: Path | None = None, max_wait: float = 60.0,
                wrench_topic: str = "/force_torque_sensor_broadcaster/wrench_filtered",
                pause_wrench: tuple[float, float] | None = None) -> dict[str, Any]:
    """Serve the simulated arm until ``duration`` s after the first command (0: until Ctrl-C); the summary."""
    import numpy as np
    import rclpy
    from geometry_msgs.msg import PoseStamped, WrenchStamped
    from rclpy.clock import Clock, ClockType
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from sim.arm.ros2_control import SimulatedPanda

    if rate <= 0 or duration < 0 or radius <= 0 or hold < 0:
        raise ValueError("--rate and --radius must be positive, --duration and --hold non-negative")
    import torch

    torch.set_num_threads(1)
    arm = SimulatedPanda(task, seed, controller=controller.strip("/"), gripper_controller=gripper_controller.strip("/"),
                         wrench_period=1.0 / rate if wrench_topic else None)
    if goal is not None:
        arm.goal = np.asarray(goal, dtype=np.float64)
    rclpy.init()
    node = rclpy.create_node("arm_sim")
    log = node.get_logger()
    system_default = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    js_pub = node.create_publisher(JointState, "/joint_states", system_default)
    obj_pub = node.create_publisher(PoseStamped, object_topic, system_default) \
        if object_topic and arm.object_pose() is not None else None
    goal_pub = node.create_publisher(PoseStamped, goal_topic, system_default) \
        if goal_topic and arm.goal is not None else None
    wrench_pub = node.create_publisher(WrenchStamped, wrench_topic, system_default) if wrench_topic else None
    first: list[float] = []
    warned: dict[str, float] = {}

    def warn(text: str | None) -> None:
        if text is not None and time.monotonic() - warned.get(text[:30], -9.0) > 1.0:  # throttled like the real one
            warned[text[:30]] = time.monotonic()
            log.warning(text)

    def on_arm(msg: Float64MultiArray) -> None:
        if not first:
            first.append(arm.time)
            log.info("first arm command received")
        warn(arm.command_arm(msg.data))

    # every command is kept and checked in order (forward_command_controller subscribes with SystemDefaultsQoS and
    # applies only the newest, but here the velocity check must see the node's whole stream): when this Python
    # simulator stalled (a CI machine took 340 ms once), depth 10 dropped the oldest of the node's 50 Hz commands and
    # the next one counted as a velocity violation the node never sent
    commands_qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Float64MultiArray, f"/{arm.arm.name}/commands", on_arm, commands_qos)
    node.create_subscription(Float64MultiArray, f"/{arm.gripper.name}/commands",
                             lambda msg: warn(arm.command_gripper(msg.data)), commands_qos)
    rec: dict[str, list] = {"t": [], "tcp": [], "q": [], "published": [], "object": [], "lifted": [],
                            "inserted": [], "wrench": []}
    pause = {"last_q": None}

    def pose(position: list[float], quat: list[float], stamp: Any) -> PoseStamped:
        m = PoseStamped()
        m.header.stamp, m.header.frame_id = stamp, frame
        m.pose.position.x, m.pose.position.y, m.pose.position.z = position
        o = m.pose.orientation
        o.w, o.x, o.y, o.z = quat
        return m

    def tick() -> None:
        unstable = arm.unstable_at is not None
        arm.step(1.0 / rate)
        if not unstable and arm.unstable_at is not None:
            log.error(f"the simulated {arm.object_name} moves at {arm.object_speed():.0f} m/s: the physics blew up "
                      "(what follows is not physical; the summary's physics_unstable_at_s says when)")
        t_rel = arm.time - first[0] if first else -1.0
        stamp = node.get_clock().now().to_msg()
        paused = bool(first and pause_joint_states and 0 <= t_rel - pause_joint_states[0] < pause_joint_states[1])
        if not paused:
            names, pos, vel, eff = arm.joint_state()
            msg = JointState(name=names, position=pos, velocity=vel, effort=eff)
            msg.header.stamp, msg.header.frame_id = stamp, frame
            js_pub.publish(msg)
            pause["last_q"] = arm.q.tolist()
        obj = arm.object_pose()
        if obj_pub is not None and obj is not None:
            obj_pub.publish(pose(*obj, stamp))
        wrench_paused = bool(first and pause_wrench and 0 <= t_rel - pause_wrench[0] < pause_wrench[1])
        if wrench_pub is not None and not wrench_paused:
            w = WrenchStamped()
            w.header.stamp, w.header.frame_id = stamp, "ft_sensor"
            f, t = w.wrench.force, w.wrench.torque
            f.x, f.y, f.z, t.x, t.y, t.z = arm.wrench()
            wrench_pub.publish(w)
            # every reading, also those before the first command: the node may act on them before its commands
            # reach this simulator (DDS matches each topic separately)
            rec["wrench"].append([t_rel, f.x, f.y, f.z, t.x, t.y, t.z])
        if goal_pub is not None:
            goal_pub.publish(pose(arm.goal.tolist(), [1.0, 0.0, 0.0, 0.0], stamp))
        if first:
            rec["t"].append(t_rel)
            rec["tcp"].append(arm.tcp().tolist())
            rec["q"].append(arm.q.tolist())
            rec["published"].append(not paused)
            if (ins := arm.inserted()) is not None:
                rec["inserted"].append(ins)
            if obj is not None:
                rec["object"].append(obj[0])
                rec["lifted"].append(arm.lifted())
            if paused and "q_at_pause" not in rec:
                rec["q_at_pause"] = pause["last_q"]

    steady = Clock(clock_type=ClockType.STEADY_TIME)
    node.create_timer(1.0 / rate, tick, clock=steady)
    log.info(f"simulated Panda ({task}, seed {seed}) at {rate:g} Hz: /joint_states out, commands on "
             f"/{arm.arm.name}/commands and /{arm.gripper.name}/commands"
             + (f", object on {object_topic}" if obj_pub else "") + (f", goal {arm.goal.round(3).tolist()} on "
                                                                    f"{goal_topic}" if goal_pub else ""))
    try:
        spin_simulator(node, lambda: first[0] if first else None, lambda: arm.time, duration=duration,
                       max_wait=max_wait, what="arm command")
    finally:
        arm.close()
    summary: dict[str, Any] = {"task": task, "ran_s": rec["t"][-1] if rec["t"] else 0.0, **arm.counters()}
    t_first = first[0] if first else 0.0
    summary["physics_unstable_at_s"] = None if arm.unstable_at is None else arm.unstable_at - t_first
    if arm.goal is not None and rec["t"]:
        err = [math.dist(p, arm.goal) for p in rec["tcp"]]
        summary["goal"] = arm.goal.tolist()
        summary["final_error_m"] = err[-1]
        summary["reached_at_s"] = _held_from(rec["t"], err, radius, hold)
        summary["reached"] = summary["reached_at_s"] is not None
    if rec["lifted"] and rec["lifted"][0] is not None:  # pick: lifted and held, as the task defines success
        down = [0.0 if up else 1.0 for up in rec["lifted"]]
        summary["lifted_at_s"] = _held_from(rec["t"], down, 0.5, arm.success_hold_s)
        summary["success"] = summary["lifted_at_s"] is not None
        summary["lifted_at_end"] = bool(rec["lifted"][-1])
        summary["max_object_height_m"] = max(p[2] for p in rec["object"])
    if rec["inserted"]:  # peg: inserted as the task defines success (a training episode ends there)
        summary["inserted_at_s"] = next((t for t, ok in zip(rec["t"], rec["inserted"], strict=True) if ok), None)
        summary["success"] = summary["inserted_at_s"] is not None
    if report is not None:
        from robot_rl.io import atomic_write_text

        t0 = first[0] if first else 0.0  # report times relative to the first arm command, like the trajectory
        data = {"summary": summary, "trajectory": rec, "commands": [(t - t0, c) for t, c in arm.commands],
                "gripper": [(t - t0, w) for t, w in arm.gripper_commands]}
        atomic_write_text(Path(report), json.dumps(data))
    return summary


def _held_from(t: list[float], err: list[float], radius: float, hold: float) -> float | None:
    """First time from which the error stayed within ``radius`` for ``hold`` seconds (``None``: never)."""
    start = None
    for ti, e in zip(t, err, strict=True):
        if e > radius:
            start = None
        elif start is None:
            start = ti
        if start is not None and ti - start >= hold:
            return start
    return None
