"""robot-rl-node flies a recurrent (GRU) export over real DDS: its commands follow the runtime's sequence (the state
carried from step to step) and a deactivate/activate starts that sequence again from the zero state."""

import json
import subprocess

import numpy as np

from tests.deploy.recurrent_export import make_recurrent_export

from .conftest import NODE_EXE, ROOT, VENV_PYTHON, interrupt, node_env, ros_env
from .test_node import STATE, expected_quad

NAMESPACE = "/rrl_gru"
NODE = f"{NAMESPACE}/robot_rl_node"

PEER = """
import json, sys, time, rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32MultiArray
ns, node_name, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rclpy.init()
node = rclpy.create_node("gru_peer")
cmds, stamp = [], [1_000_000_000]
node.create_subscription(Float32MultiArray, ns + "/motor_commands", lambda m: cmds.append(list(m.data)),
                         QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
pub = node.create_publisher(Odometry, ns + "/odom", 10)
def tick():
    m = Odometry()
    m.header.frame_id, m.child_frame_id = "odom", "base_link"
    stamp[0] += 10_000_000
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp[0], 1_000_000_000)
    p, o = m.pose.pose.position, m.pose.pose.orientation
    p.x, p.y, p.z = s["pos"]
    o.w, o.x, o.y, o.z = s["quat"]
    t, w = m.twist.twist.linear, m.twist.twist.angular
    t.x, t.y, t.z = s["lin"]
    w.x, w.y, w.z = s["ang"]
    pub.publish(m)
node.create_timer(0.01, tick)
client = node.create_client(ChangeState, node_name + "/change_state")
assert client.wait_for_service(timeout_sec=60), "no lifecycle service"
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.002)
def transition(label):
    fut = client.call_async(ChangeState.Request(transition=Transition(label=label)))
    end = time.monotonic() + 10
    while not fut.done() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.005)
    return bool(fut.done() and fut.result().success)
out = {"configure": transition("configure")}
spin(0.5)
windows = []
for _ in range(2):
    cmds.clear()
    out.setdefault("activate", []).append(transition("activate"))
    spin(0.6)
    windows.append(list(cmds))
    out.setdefault("deactivate", []).append(transition("deactivate"))
    spin(0.2)
out["windows"] = windows
print(json.dumps(out))
"""


def _subsequence(got: np.ndarray, want: np.ndarray) -> list[int]:
    """Indices of ``want`` that ``got`` matches bit for bit, in order (a command lost in transit skips one)."""
    idx, j = [], 0
    for c in got:
        while j < len(want) and not np.array_equal(c, want[j]):
            j += 1
        assert j < len(want), f"command {c} is not the runtime's next one"
        idx.append(j)
        j += 1
    return idx


def test_node_carries_and_resets_the_recurrent_state(ros_venv, tmp_path):
    model = tmp_path / "gru"
    model.mkdir()
    make_recurrent_export(model)
    args = ["--params-file", str(ROOT / "launch/config/quadrotor.yaml"), "-r", f"__ns:={NAMESPACE}",
            "-p", f"model_path:={model}"]
    node = subprocess.Popen([str(NODE_EXE), "--ros-args", *args], stdout=open(tmp_path / "node.log", "w"),
                            stderr=subprocess.STDOUT, env=node_env(), cwd=tmp_path)
    try:
        peer = subprocess.run([str(VENV_PYTHON), "-c", PEER, NAMESPACE, NODE, json.dumps(STATE)], capture_output=True,
                              text=True, env=ros_env(), timeout=150)
    finally:
        interrupt(node)
    log = (tmp_path / "node.log").read_text()[-3000:]
    assert peer.returncode == 0, f"{peer.stderr[-2000:]}\nnode:\n{log}"
    out = json.loads(peer.stdout.strip().splitlines()[-1])
    assert out["configure"] and out["activate"] == [True, True] and out["deactivate"] == [True, True], log
    want = expected_quad(model, 120)
    assert np.abs(want[1:] - want[0]).max() > 1.0  # the commands move with the state and history (rpm)
    for window in out["windows"]:
        got = np.array([c for c in window if any(c)], np.float32)  # the safe (zero) command at deactivation
        assert len(got) >= 40, f"{len(got)} commands in 0.6 s at 100 Hz"
        idx = _subsequence(got, want)
        assert idx[0] == 0  # every activation starts from the zero state (and an empty history)
        assert len(idx) - 1 >= 0.8 * idx[-1]  # at most a few commands lost in transit
