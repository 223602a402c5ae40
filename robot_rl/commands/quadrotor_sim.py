"""``robot-rl quadrotor-sim``: the simulator plays a motor-level quadrotor behind the ``quadrotor_motors`` topics.

The counterpart of the node's ``quadrotor_motors`` profile (``launch/config/quadrotor.yaml``), as ``robot-rl
crazyflie-sim`` is of the ``crazyflie`` profile: it publishes ``--odom-topic`` (``nav_msgs/Odometry``, REP 105:
pose in ``--frame-id``, twist in the body frame ``--child-frame-id``) at ``--rate`` Hz and consumes 4 motor
commands on ``--motor-topic`` (``std_msgs/Float32MultiArray``, in the policy's ``rotor_order``; ``rpm`` or the
policy's ``normalized`` [-1, 1], ``--command-unit``), held until the next one (zero-order hold), through our
quadrotor model (``sim.quadrotor``: first-order motors, RK4, the ``--frame``'s parameters, no disturbances or
noise). The vehicle is held at ``--start`` with its rotors at hover speed until the first command that spins a
rotor (a hand launch); below z = 0 it lies on the ground. A command that is not 4 finite numbers is counted
and ignored (the previous one stays). Needs rclpy (ROS 2) and torch in the same interpreter.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from robot_rl.commands.ros_sim_loop import spin_simulator


def run_quadrotor_sim(frame: str = "crazyflie", rate: float = 100.0,
                      start: tuple[float, float, float] = (0.0, 0.0, 1.0), duration: float = 0.0,
                      command_unit: str = "rpm", odom_topic: str = "odom", motor_topic: str = "motor_commands",
                      frame_id: str = "odom", child_frame_id: str = "base_link", report: Path | None = None,
                      max_wait: float = 60.0) -> dict[str, Any]:
    """Run until ``duration`` seconds after the launch (0: until Ctrl-C; with a duration, give up after
    ``max_wait`` seconds without a launch); return the summary."""
    if command_unit not in ("rpm", "normalized"):
        raise ValueError(f"--command-unit must be 'rpm' or 'normalized', not {command_unit!r}")
    if rate <= 0 or duration < 0:
        raise ValueError("--rate must be positive and --duration non-negative")
    import torch

    from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, STATE_DIM, VEL, action_to_rpm, quat_to_rotmat, rk4_step
    from sim.quadrotor.task import resolve_frame

    params = resolve_frame(frame)
    try:
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.clock import Clock, ClockType
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float32MultiArray
    except ImportError as exc:
        raise RuntimeError(f"robot-rl quadrotor-sim needs ROS 2 (rclpy) in this interpreter ({exc}): run it from "
                           ".venv-ros (bash deploy/ros2/make_venv.sh)") from exc
    torch.set_num_threads(1)
    pt = params.tensors(1, "cpu", torch.float64)
    state = torch.zeros(1, STATE_DIM, dtype=torch.float64)
    state[0, POS] = torch.tensor(start, dtype=torch.float64)
    state[0, QUAT] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    state[0, RPM] = params.hover_rpm
    rpm_cmd = torch.full((1, 4), params.hover_rpm, dtype=torch.float64)
    counts = {"commands": 0, "invalid_commands": 0}
    launched: list[float] = []  # the simulated time of the launch
    sim_time = [0.0]
    on_ground = [False]

    def on_motors(msg: Float32MultiArray) -> None:
        values = [float(v) for v in msg.data]
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            counts["invalid_commands"] += 1
            return
        counts["commands"] += 1
        cmd = torch.tensor([values], dtype=torch.float64)
        if command_unit == "normalized":
            cmd = action_to_rpm(cmd, params.rpm_min, params.rpm_max)
        rpm_cmd[:] = cmd.clamp(params.rpm_min, params.rpm_max)
        if not launched and bool((rpm_cmd > params.rpm_min).any()):
            launched.append(sim_time[0])
            node.get_logger().info("first command that spins a rotor: released")

    rclpy.init()
    node = rclpy.create_node("quadrotor_sim")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    odom_pub = node.create_publisher(Odometry, odom_topic, reliable)
    node.create_subscription(Float32MultiArray, motor_topic, on_motors, reliable)
    rec: dict[str, list] = {"t": [], "position": [], "quaternion": [], "rpm_command": []}
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = frame_id, child_frame_id

    def tick() -> None:
        nonlocal state
        if launched and not on_ground[0]:
            state = rk4_step(state, rpm_cmd, pt, 1.0 / rate)
            if state[0, 2] < 0.0:  # the floor: it stays where it hit
                on_ground[0] = True
                state[0, 2] = 0.0
                state[0, VEL] = 0.0
                state[0, OMEGA] = 0.0
        sim_time[0] += 1.0 / rate
        s = state[0]
        rot = quat_to_rotmat(s[QUAT])
        v_body = rot.T @ s[VEL]  # REP 105: the twist in the child (body) frame
        msg.header.stamp = node.get_clock().now().to_msg()
        p, q, v, w = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist.linear, msg.twist.twist.angular
        p.x, p.y, p.z = (float(x) for x in s[POS])
        q.w, q.x, q.y, q.z = (float(x) for x in s[QUAT])
        v.x, v.y, v.z = (float(x) for x in v_body)
        w.x, w.y, w.z = (float(x) for x in s[OMEGA])
        odom_pub.publish(msg)
        if launched:
            rec["t"].append(sim_time[0] - launched[0])
            rec["position"].append(s[POS].tolist())
            rec["quaternion"].append(s[QUAT].tolist())
            rec["rpm_command"].append(rpm_cmd[0].tolist())

    node.create_timer(1.0 / rate, tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
    node.get_logger().info(f"simulated {frame} quadrotor at {tuple(start)}: odometry on {odom_pub.topic_name}, "
                           f"motor commands ({command_unit}) on {motor_topic}")
    spin_simulator(node, lambda: launched[0] if launched else None, lambda: sim_time[0], duration=duration,
                   max_wait=max_wait, what="motor command")
    dist = [math.dist(p, start) for p in rec["position"]]
    summary: dict[str, Any] = {"flew_s": rec["t"][-1] if rec["t"] else 0.0, **counts,
                               "max_distance_m": max(dist, default=0.0), "on_ground": on_ground[0],
                               "final_position": rec["position"][-1] if rec["position"] else list(start)}
    if report is not None:
        from robot_rl.io import atomic_write_text

        atomic_write_text(Path(report), json.dumps({"summary": summary, "trajectory": rec}))
    return summary
