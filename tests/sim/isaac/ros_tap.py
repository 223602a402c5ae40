"""A DDS tap (runs in .venv-ros): brings the node up, records the simulator's state and the node's commands.

``python ros_tap.py OUT.json {odom|joint_states} STATE_TOPIC COMMAND_TOPIC NODE SECONDS``: subscribes to the state
(``nav_msgs/Odometry`` or ``sensor_msgs/JointState``) and the commands (``std_msgs/Float32MultiArray`` for motors,
``Float64MultiArray`` for joint targets) and prints ``ready``. Once the simulator's state arrives it configures
the node NODE (started with ``autostart:=false``) through its lifecycle services, waits until the tap has
discovered the node's command publisher and the node's state subscription, activates it (as an operator runs
``ros2 lifecycle set``) and records from then on, so the tap has every command from the first, which a replay of
the runtime needs (its action history starts at activation), until SECONDS after the first command that is not
all zeros (a quadrotor node commands motors off until its first odometry, which discovery can delay). Every
command row carries how many state messages had reached the tap before it, so a replay knows which states the
node could have used. Gives up (OUT.json then names the stage) 120 s after ``ready`` if the node is not active
by then, or 60 s after its activation without a command that is not all zeros.
"""

import json
import sys
import time

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.qos import QoSProfile, ReliabilityPolicy

out, kind, state_topic, command_topic, target = sys.argv[1:6]
seconds = float(sys.argv[6])
rclpy.init()
node = rclpy.create_node("isaac_export_tap")
qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
states: list[dict] = []
commands: list[dict] = []


def stamp(msg) -> list[int]:
    return [int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)]


def on_odom(msg) -> None:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    v, w = msg.twist.twist.linear, msg.twist.twist.angular
    states.append({"stamp": stamp(msg), "frame_id": msg.header.frame_id, "child_frame_id": msg.child_frame_id,
                   "position": [p.x, p.y, p.z], "orientation": [q.w, q.x, q.y, q.z],
                   "linear": [v.x, v.y, v.z], "angular": [w.x, w.y, w.z]})


def on_joint_state(msg) -> None:
    states.append({"stamp": stamp(msg), "frame_id": msg.header.frame_id, "name": list(msg.name),
                   "position": list(msg.position), "velocity": list(msg.velocity), "effort": list(msg.effort)})


def on_command(msg) -> None:
    commands.append({"t": time.monotonic(), "data": list(msg.data), "states_before": len(states)})


if kind == "odom":
    from nav_msgs.msg import Odometry
    from std_msgs.msg import Float32MultiArray

    node.create_subscription(Odometry, state_topic, on_odom, qos)
    node.create_subscription(Float32MultiArray, command_topic, on_command, qos)
else:
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    node.create_subscription(JointState, state_topic, on_joint_state, qos)
    node.create_subscription(Float64MultiArray, command_topic, on_command, qos)
print("ready", flush=True)
deadline = time.monotonic() + 120.0
stage = "waiting for the simulator's state"
stages = {"ready": time.monotonic()}  # when each stage ended


def spin_until(done) -> bool:
    while rclpy.ok() and not done():
        if time.monotonic() > deadline:
            return False
        rclpy.spin_once(node, timeout_sec=0.01)
    return True


def transition(label: str) -> bool:
    cli = node.create_client(ChangeState, f"{target}/change_state")
    if not cli.wait_for_service(timeout_sec=max(deadline - time.monotonic(), 0.1)):
        return False
    fut = cli.call_async(ChangeState.Request(transition=Transition(label=label)))
    return spin_until(fut.done) and bool(fut.result().success)


ok = spin_until(lambda: bool(states))
if ok:
    stages["state"] = time.monotonic()
    stage = "configuring the node"
    ok = transition("configure")
if ok:
    stages["configured"] = time.monotonic()
    stage = "discovering the node's publisher and subscription"
    ok = spin_until(lambda: node.count_publishers(command_topic) >= 1 and node.count_subscribers(state_topic) >= 2)
    settle = time.monotonic() + 0.5  # the node's side of the discovery
    ok = ok and spin_until(lambda: time.monotonic() > settle)
if ok:
    stages["discovered"] = time.monotonic()
    stage = "activating the node"
    ok = transition("activate")
if ok:
    stage = "recording"
    stages["active"] = time.monotonic()
    deadline = time.monotonic() + 60.0 + seconds
    first: list[float] = []

    def recorded() -> bool:
        if not first and any(any(c["data"]) for c in commands[-3:]):
            first.append(time.monotonic())
        return bool(first) and time.monotonic() - first[0] >= seconds

    ok = spin_until(recorded)
    stages["recorded"] = time.monotonic()
node.destroy_node()
rclpy.try_shutdown()
with open(out, "w") as f:
    json.dump({"states": states, "commands": commands, "error": None if ok else f"gave up {stage}",
               "stages": {k: round(v - stages["ready"], 2) for k, v in stages.items()}}, f)
