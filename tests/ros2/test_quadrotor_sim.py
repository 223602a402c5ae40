"""``robot-rl quadrotor-sim`` over real DDS: the motor-level counterpart of the node's ``quadrotor_motors`` profile.

A scripted peer (no node) checks the odometry it publishes (REP 105 frames, body-frame twist) and flies it: one
malformed command (refused and counted), hover rpm for 1 s (the vehicle holds its start), then motors off (it falls
and lies on the ground). Isaac Lab exports fly through it in tests/sim/isaac/test_node_on_exports.py.
"""

import json
import subprocess

import numpy as np

from sim.quadrotor.task import resolve_frame

from .conftest import ROOT, VENV_PYTHON, ros_env

PEER = """
import json, math, sys, time, rclpy
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32MultiArray
rclpy.init()
node = rclpy.create_node("motor_peer")
rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
pub = node.create_publisher(Float32MultiArray, "motor_commands", rel)
odom = []
node.create_subscription(Odometry, "odom", odom.append, rel)
end = time.monotonic() + 120
while not odom and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
while pub.get_subscription_count() == 0 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
first = odom[0]
pub.publish(Float32MultiArray(data=[1.0, math.nan, 1.0, 1.0]))
# matched on this side is not yet on the sim's: without the ack, the 100 Hz stream below could push the malformed
# message out of the depth-10 history before the sim's reader matched (seen once in CI under load)
assert pub.wait_for_all_acked(Duration(seconds=30)), "the malformed command was never acknowledged"
t0 = time.monotonic()
while time.monotonic() - t0 < 3.0:
    rpm = float(sys.argv[1]) if time.monotonic() - t0 < 1.0 else 0.0
    pub.publish(Float32MultiArray(data=[rpm] * 4))
    rclpy.spin_once(node, timeout_sec=0.01)
p = first.pose.pose
print(json.dumps({"frames": [first.header.frame_id, first.child_frame_id], "z": p.position.z,
                  "q": [p.orientation.w, p.orientation.x, p.orientation.y, p.orientation.z], "n_odom": len(odom)}))
"""


def test_quadrotor_sim_hovers_on_hover_rpm_and_falls_with_motors_off(ros_venv, tmp_path):
    hover = resolve_frame("crazyflie").hover_rpm
    env = ros_env()
    report = tmp_path / "sim.json"
    sim = subprocess.Popen([str(VENV_PYTHON), "-m", "robot_rl.cli", "quadrotor-sim", "--start", "0.2", "0", "1",
                            "--duration", "1.6", "--report", str(report)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        peer = subprocess.run([str(VENV_PYTHON), "-c", PEER, str(hover)], capture_output=True, text=True, env=env,
                              timeout=150)
        out, _ = sim.communicate(timeout=60)
    finally:
        if sim.poll() is None:
            sim.kill()
    assert peer.returncode == 0, peer.stderr[-2000:]
    seen = json.loads(peer.stdout.strip().splitlines()[-1])
    assert seen["frames"] == ["odom", "base_link"] and seen["z"] == 1.0 and seen["q"] == [1.0, 0.0, 0.0, 0.0]
    data = json.loads(report.read_text())
    s, traj = data["summary"], data["trajectory"]
    assert s["invalid_commands"] == 1 and s["commands"] >= 100, (s, out)
    t, pos = np.array(traj["t"]), np.array(traj["position"])
    hovering = pos[t < 0.9]
    assert len(hovering) > 50 and np.abs(hovering - [0.2, 0.0, 1.0]).max() < 1e-3, out  # hover rpm holds it
    assert s["on_ground"] and pos[-1][2] == 0.0 and pos[:, 2].min() >= 0.0  # motors off: it fell to the floor
    assert abs(s["flew_s"] - 1.6) < 0.02 and s["max_distance_m"] > 0.99
