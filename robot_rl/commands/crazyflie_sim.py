"""``robot-rl crazyflie-sim``: the simulator plays a Crazyflie behind Crazyswarm2's ROS 2 topics.

Publishes ``<cf>/odom`` (``nav_msgs/Odometry``) as the chosen Crazyswarm2 server ``--backend`` does (Crazyswarm2
1.0.5): ``cpp`` (its default) with ``header.frame_id`` = the robot name, no child frame, the linear twist in the
world frame, the estimator's quaternion and no angular rates (zeros); ``cflib`` with ``header.frame_id`` =
``world``, ``child_frame_id`` = the robot name, the linear twist in the body frame, the orientation built from
the firmware's negated (legacy) pitch and the gyro rates in deg/s. ``<cf>/pose`` (``geometry_msgs/PoseStamped``,
frame ``world``, true orientation) is published at the same ``--rate`` Hz. It consumes ``<cf>/cmd_vel_legacy``
(``geometry_msgs/Twist``) through the same radio and onboard attitude-controller model the ``attitude_thrust``
level trains with (:mod:`sim.quadrotor.crazyflie_link`), and serves ``<cf>/emergency`` (``std_srvs/Empty``).
Run a policy node beside it (``robot-rl-node`` with the ``crazyflie`` profile, or ``launch/crazyflie.launch.py``).

With ``--target-topic`` it also publishes the node's target (``geometry_msgs/PoseStamped``): the start position,
then ``--step`` added at ``--step-at`` seconds after the first setpoint; at the end it prints (and with
``--report`` writes) whether the drone held within ``--radius`` of the new target for ``--hold`` seconds.
Needs rclpy (ROS 2) and torch in the same interpreter.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from robot_rl.commands.ros_sim_loop import spin_simulator


def euler_zyx(w: float, x: float, y: float, z: float) -> tuple[float, float, float]:
    """Roll, pitch, yaw (rad) of a unit quaternion, ZYX convention (the firmware's)."""
    return (math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
            math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x)))),
            math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def quat_from_euler(roll: float, pitch: float, yaw: float) -> list[float]:
    """(w, x, y, z) of ZYX Euler angles (what Crazyswarm2's cflib server computes from the stabilizer log)."""
    cr, sr, cp, sp = math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy]


def backend_odometry(odo: dict[str, list[float]], backend: str, cf: str) -> tuple[str, str, list[float], list[float],
                                                                                     list[float]]:
    """(header.frame_id, child_frame_id, quaternion, twist.linear, twist.angular) as ``backend`` publishes them."""
    q, vb, w = odo["quaternion"], odo["linear_velocity_body"], odo["angular_velocity"]
    if backend == "cpp":
        qw, qx, qy, qz = q
        r = [[1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)],
             [2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)],
             [2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)]]
        world = [sum(r[i][j] * vb[j] for j in range(3)) for i in range(3)]
        return cf, "", list(q), world, [0.0, 0.0, 0.0]
    if backend == "cflib":
        roll, pitch, yaw = euler_zyx(*q)
        return "world", cf, quat_from_euler(roll, -pitch, yaw), list(vb), [math.degrees(v) for v in w]
    raise ValueError(f"--backend must be 'cpp' or 'cflib', not {backend!r}")


def run_crazyflie_sim(cf: str = "cf1", rate: float = 100.0, latency_ms: float = 10.0,
                      start: tuple[float, float, float] = (0.0, 0.0, 1.0), duration: float = 0.0,
                      target_topic: str = "", step: tuple[float, float, float] = (0.3, 0.0, 0.0),
                      step_at: float = 3.0, hold: float = 10.0, settle: float = 5.0, radius: float = 0.1,
                      report: Path | None = None, seed: int = 0, max_wait: float = 60.0,
                      backend: str = "cpp") -> dict[str, Any]:
    """Run until ``duration`` seconds after the first setpoint (0: until Ctrl-C; with a duration, give up after
    ``max_wait`` seconds without any setpoint); return the summary."""
    import rclpy
    import torch
    from geometry_msgs.msg import PoseStamped, Twist
    from nav_msgs.msg import Odometry
    from rclpy.clock import Clock, ClockType
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_srvs.srv import Empty

    from sim.quadrotor.crazyflie_link import (
        CommanderModel,
        SimulatedCrazyflie,
        VehicleConfig,
        hold_check,
        twist_to_setpoint,
    )

    backend_odometry({"quaternion": [1.0, 0, 0, 0], "linear_velocity_body": [0.0] * 3,
                      "angular_velocity": [0.0] * 3}, backend, cf)  # rejects an unknown backend before starting
    if rate <= 0 or latency_ms < 0 or duration < 0:
        raise ValueError("--rate must be positive, --latency-ms and --duration non-negative")
    torch.set_num_threads(1)
    cf = cf.strip("/")
    vehicle = SimulatedCrazyflie(VehicleConfig(rate_hz=rate, latency_ms=latency_ms, start=tuple(start), seed=seed))
    commander = CommanderModel()
    rclpy.init()
    node = rclpy.create_node("crazyflie_sim")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    odom_pub = node.create_publisher(Odometry, f"{cf}/odom", reliable)
    pose_pub = node.create_publisher(PoseStamped, f"{cf}/pose", reliable)
    target_pub = node.create_publisher(PoseStamped, target_topic, reliable) if target_topic else None
    steady = Clock(clock_type=ClockType.STEADY_TIME)

    def on_cmd(msg: Twist) -> None:
        commander.receive(twist_to_setpoint((msg.linear.x, msg.linear.y, msg.linear.z), msg.angular.z),
                          time.monotonic())

    def on_emergency(request: Empty.Request, response: Empty.Response) -> Empty.Response:
        commander.emergency = True
        node.get_logger().warning("emergency: motors stopped")
        return response

    node.create_subscription(Twist, f"{cf}/cmd_vel_legacy", on_cmd, reliable)
    node.create_service(Empty, f"{cf}/emergency", on_emergency)
    rec: dict[str, list] = {"t": [], "position": [], "quaternion": [], "target": [], "setpoint": []}
    first: list[float] = []
    target = list(start)

    def tick() -> None:
        now = time.monotonic()
        sp = commander.current(now)
        if sp is not None and not first:
            first.append(vehicle.time)
            node.get_logger().info("first setpoint received: flying")
        vehicle.step(sp)
        t_rel = vehicle.time - first[0] if first else -1.0
        if first and t_rel >= step_at:
            target[:] = [s + d for s, d in zip(start, step, strict=True)]
        odo = vehicle.odometry()
        stamp = node.get_clock().now().to_msg()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "world"
        (pose.pose.position.x, pose.pose.position.y, pose.pose.position.z) = odo["position"]
        q = odo["quaternion"]
        (pose.pose.orientation.w, pose.pose.orientation.x, pose.pose.orientation.y, pose.pose.orientation.z) = q
        odom = Odometry()
        frame, child, q_odom, v, w = backend_odometry(odo, backend, cf)
        odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, frame, child
        odom.pose.pose.position = pose.pose.position
        o = odom.pose.pose.orientation
        o.w, o.x, o.y, o.z = q_odom
        (odom.twist.twist.linear.x, odom.twist.twist.linear.y, odom.twist.twist.linear.z) = v
        (odom.twist.twist.angular.x, odom.twist.twist.angular.y, odom.twist.twist.angular.z) = w
        odom_pub.publish(odom)
        pose_pub.publish(pose)
        if target_pub is not None:
            tgt = PoseStamped()
            tgt.header.stamp, tgt.header.frame_id = stamp, "world"
            (tgt.pose.position.x, tgt.pose.position.y, tgt.pose.position.z) = target
            tgt.pose.orientation.w = 1.0
            target_pub.publish(tgt)
        if first:
            rec["t"].append(t_rel)
            rec["position"].append(odo["position"])
            rec["quaternion"].append(odo["quaternion"])
            rec["target"].append(list(target))
            rec["setpoint"].append(list(sp) if sp is not None else None)

    node.create_timer(1.0 / rate, tick, clock=steady)
    node.get_logger().info(f"simulated Crazyflie {cf} at {start}: odom on {odom_pub.topic_name}, setpoints on "
                           f"{cf}/cmd_vel_legacy, {latency_ms:g} ms radio latency")
    spin_simulator(node, lambda: first[0] if first else None, lambda: vehicle.time, duration=duration,
                   max_wait=max_wait, what="setpoint")
    errors = [math.dist(p, t) for p, t in zip(rec["position"], rec["target"], strict=True)]
    summary: dict[str, Any] = {"flew_s": rec["t"][-1] if rec["t"] else 0.0, "emergency": commander.emergency,
                               "on_ground": vehicle.on_ground}
    if target_topic and rec["t"]:
        summary.update(hold_check(rec["t"], errors, step_at, radius, hold, settle))
    if report is not None:
        from robot_rl.io import atomic_write_text

        atomic_write_text(Path(report), json.dumps({"summary": summary, "trajectory": rec}))
    return summary
