"""Test peer for robot-rl-node, run with .venv-ros/bin/python: drives the node over DDS and records what it sees.

Usage: ``peer.py CONFIG.json OUT.json``. The config names the quadrotor and arm nodes and the models to try;
the peer runs one fixed sequence of scenarios per node (lifecycle via ``~/change_state``, parameters via
``~/set_parameters``), publishes state at the sensor rate and writes every received command with its arrival
time into OUT.json. Assertions live in test_node.py (main venv), which recomputes the expected commands.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray
from std_srvs.srv import Trigger


class Peer:
    """One rclpy node with helpers to spin, call services and stream state."""

    def __init__(self) -> None:
        rclpy.init()
        self.node = rclpy.create_node("robot_rl_test_peer")
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self.diag: dict[str, dict[str, str]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.commands: list[tuple[float, list[float]]] = []
        self.sent: list[float] = []
        self.stream: Any = None  # callable returning the next state message, or None
        self._stamp = 1_000_000_000
        self._timer: Any = None
        self._clients: dict[str, Any] = {}

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            self.diag[st.name] = {kv.key: kv.value for kv in st.values}

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.ex.spin_once(timeout_sec=min(left, 0.002))

    def spin_until(self, pred: Any, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                return False
            self.ex.spin_once(timeout_sec=0.005)
        return True

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"service {name} not available")
        fut = client.call_async(request)
        if not self.spin_until(fut.done, timeout):
            raise RuntimeError(f"service {name} did not answer")
        return fut.result()

    def transition(self, node: str, label: str) -> bool:
        return bool(self.call(ChangeState, f"{node}/change_state",
                              ChangeState.Request(transition=Transition(label=label))).success)

    def state(self, node: str) -> str:
        return self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def set_params(self, node: str, **values: Any) -> bool:
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return all(r.successful for r in self.call(SetParameters, f"{node}/set_parameters", req).results)

    def get_params(self, node: str, names: list[str]) -> dict[str, Any]:
        res = self.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names))
        out = {n: parameter_value_to_python(v) for n, v in zip(names, res.values, strict=True)}
        return {k: list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v for k, v in out.items()}

    def diag_value(self, node: str, key: str, timeout: float = 2.0, pred: Any = bool) -> str:
        """Wait until the node's diagnostics carry ``key`` satisfying ``pred``; return it ('' on timeout)."""
        self.spin_until(lambda: pred(self.diag.get(node, {}).get(key, "")), timeout)
        return self.diag.get(node, {}).get(key, "")

    def next_stamp(self, msg: Any) -> Any:
        self._stamp += 10_000_000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self._stamp, 1_000_000_000)
        return msg

    def start_stream(self, pub: Any, make: Any, rate_hz: float) -> None:
        def tick() -> None:
            if self.stream is not None:
                pub.publish(self.next_stamp(self.stream()))
                self.sent.append(time.monotonic())
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
        self.stream = make
        self._timer = self.node.create_timer(1.0 / rate_hz, tick)

    def record(self, msg: Any) -> None:
        self.commands.append((time.monotonic(), list(msg.data)))

    def during(self, fn: Any, seconds: float) -> tuple[Any, list[tuple[float, list[float]]]]:
        """Clear, call ``fn()``, spin ``seconds``; return its result and the commands received since the clear,
        with arrival times relative to the moment ``fn`` returned (a tick already in flight arrives before it)."""
        self.commands = []
        result = fn()
        t_done = time.monotonic()
        self.spin_for(seconds)
        return result, [(t - t_done, c) for t, c in self.commands]

    def window(self, seconds: float) -> list[tuple[float, list[float]]]:
        """Clear, spin ``seconds``, return the commands received meanwhile."""
        self.commands = []
        self.spin_for(seconds)
        return list(self.commands)


def odometry(state: dict[str, list[float]]) -> Odometry:
    m = Odometry()
    m.header.frame_id, m.child_frame_id = state.get("frame", "odom"), state.get("child", "base_link")  # REP 105
    p, q, v, w = state["pos"], state["quat"], state["lin"], state["ang"]
    m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z = p
    o = m.pose.pose.orientation
    o.w, o.x, o.y, o.z = q
    m.twist.twist.linear.x, m.twist.twist.linear.y, m.twist.twist.linear.z = v
    m.twist.twist.angular.x, m.twist.twist.angular.y, m.twist.twist.angular.z = w
    return m


def wait_matched(peer: Peer, pub: Any, sub: Any) -> bool:
    return peer.spin_until(lambda: pub.get_subscription_count() > 0 and sub.get_publisher_count() > 0, 15.0)


def quad_scenarios(peer: Peer, cfg: dict[str, Any]) -> dict[str, Any]:
    node, ns, res, previous = cfg["node"], cfg["ns"], {}, ""
    res["params"] = peer.get_params(node, ["profile", "control_rate_hz", "odom_topic", "motor_topic", "command_low",
                                           "command_high", "max_command_delta", "twist_frame"])
    for name, params in [("missing", {}), ("corrupt", {"model_path": cfg["models"]["corrupt"]}),
                         ("mismatch", {"model_path": cfg["models"]["mismatch"]}),
                         ("norpm", {"model_path": cfg["models"]["norpm"]}),
                         ("rate", {"model_path": cfg["models"]["good"], "control_rate_hz": 50.0})]:
        peer.set_params(node, **params)
        ok = peer.transition(node, "configure")
        prev = res[previous]["error"] if previous else ""
        res[name] = {"ok": ok, "state": peer.state(node),
                     "error": peer.diag_value(node, "error", pred=lambda v, prev=prev: v and v != prev)}
        previous = name
    peer.set_params(node, control_rate_hz=100.0)
    res["configure"] = peer.transition(node, "configure")
    pub = peer.node.create_publisher(Odometry, f"{ns}/odom", 10)
    sub = peer.node.create_subscription(Float32MultiArray, f"{ns}/motor_commands", peer.record,
                                        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    res["matched"] = wait_matched(peer, pub, sub)
    state = dict(cfg["state"])
    peer.start_stream(pub, lambda: odometry(state), cfg["sensor_rate_hz"])
    peer.spin_for(0.3)
    peer.commands = []
    res["activate"] = peer.transition(node, "activate")
    peer.spin_for(1.0)
    res["nominal"] = list(peer.commands)
    # an old stamp with a far-away position must be dropped (it would otherwise make the command safe)
    old = odometry({**state, "pos": [5.0, 0.0, 0.0]})
    old.header.stamp.sec = 1
    pub.publish(old)
    res["out_of_order"] = peer.window(0.3)
    res["rejected"] = peer.diag_value(node, "odom_rejected_stamps", pred=lambda v: v not in ("", "0"))
    state["lin"] = [math.nan, 0.0, 0.0]
    res["nan"] = peer.window(0.2)
    res["nan_reason"] = peer.diag_value(node, "last_reason", pred=lambda v: "non-finite" in v)
    state["lin"] = list(cfg["state"]["lin"])
    res["nan_recovered"] = peer.window(0.2)
    stream, peer.stream = peer.stream, None
    peer.spin_for(0.02)
    t_stop = peer.sent[-1]
    res["stale"] = [(t - t_stop, c) for t, c in peer.window(0.4)]
    peer.stream = stream
    res["stale_recovered"] = peer.window(0.3)
    t0 = time.monotonic()
    res["estop_call"] = bool(peer.call(Trigger, f"{node}/emergency_stop", Trigger.Request()).success)
    res["estop"] = [(t - t0, c) for t, c in peer.window(0.3)]
    res["estop_diag"] = peer.diag_value(node, "estopped", pred=lambda v: v == "True")
    res["reactivate"] = [peer.transition(node, "deactivate"), peer.transition(node, "activate")]
    res["still_latched"] = peer.window(0.3)  # activation does not clear the e-stop
    clear = lambda: bool(peer.call(Trigger, f"{node}/clear_emergency_stop", Trigger.Request()).success)  # noqa
    res["clear_while_active"] = clear()
    res["inactive_estop"] = [peer.transition(node, "deactivate"), clear(),
                             bool(peer.call(Trigger, f"{node}/emergency_stop", Trigger.Request()).success),
                             peer.transition(node, "activate")]  # pressed while inactive: must hold
    res["inactive_latched"] = peer.window(0.3)
    res["cleared"] = [peer.transition(node, "deactivate"), clear(), peer.transition(node, "activate")]
    res["after_reactivate"] = peer.window(0.3)
    # live parameters: the target applies at once, a configure-time parameter is refused
    res["live_target"] = peer.set_params(node, target=[0.05, -0.03, 1.12])
    res["refused_param"] = peer.set_params(node, max_command_delta=[100.0])
    res["live_window"] = peer.window(0.2)
    peer.set_params(node, target=[0.0, 0.0, 1.0])
    # one message stamped an hour ahead of the node's clock (a clock step / restarted driver) must not block
    future = odometry(state)
    future.header.stamp.sec, future.header.stamp.nanosec = int(time.time()) + 3600, 0
    pub.publish(future)
    res["after_future"] = peer.window(0.3)
    res["future_stamps"] = peer.diag_value(node, "odom_future_stamps", pred=lambda v: v not in ("", "0"))
    peer.spin_for(0.05)
    res["timing"] = {k: peer.diag.get(node, {}).get(k, "") for k in ("rate_hz", "jitter_p99_ms", "overruns")}
    peer.spin_for(0.05)
    res["deactivate_ok"], res["deactivate"] = peer.during(lambda: peer.transition(node, "deactivate"), 0.3)
    res["shutdown_ok"], res["shutdown"] = peer.during(lambda: peer.transition(node, "shutdown"), 0.3)
    res["final_state"] = peer.state(node)
    peer.stream = None
    return res


def arm_scenarios(peer: Peer, cfg: dict[str, Any]) -> dict[str, Any]:
    node, res = cfg["node"], {}
    res["params"] = peer.get_params(node, ["profile", "joints", "controller", "max_command_delta", "goal"])
    peer.set_params(node, model_path=cfg["model"], joints=["a", "b", "c"])
    res["wrong_joints"] = {"ok": peer.transition(node, "configure"), "error": peer.diag_value(node, "error")}
    peer.set_params(node, joints=cfg["joints"])
    res["configure"] = peer.transition(node, "configure")
    pub = peer.node.create_publisher(JointState, "/joint_states", 10)
    sub = peer.node.create_subscription(Float64MultiArray, f"/{cfg['controller']}/commands", peer.record,
                                        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    res["matched"] = wait_matched(peer, pub, sub)
    js = dict(cfg["joint_state"])

    def joint_state() -> JointState:
        return JointState(name=js["name"], position=js["position"], velocity=js["velocity"])

    peer.start_stream(pub, joint_state, cfg["sensor_rate_hz"])
    peer.spin_for(0.3)
    peer.commands = []
    res["activate"] = peer.transition(node, "activate")
    peer.spin_for(1.0)
    res["nominal"] = list(peer.commands)
    js["position"] = [math.nan if n == "joint2" else v for n, v in zip(js["name"], js["position"], strict=True)]
    res["nan"] = peer.window(0.2)
    js["position"] = list(cfg["joint_state"]["position"])
    peer.stream = None
    res["stale"] = peer.window(0.4)
    peer.spin_for(0.05)
    res["deactivate_ok"], res["deactivate"] = peer.during(lambda: peer.transition(node, "deactivate"), 0.3)
    return res


def main() -> None:
    cfg = json.loads(open(sys.argv[1]).read())
    peer = Peer()
    out: dict[str, Any] = {}
    try:
        for key, fn in (("quad", quad_scenarios), ("arm", arm_scenarios)):
            peer.commands, peer.sent, peer.stream = [], [], None
            try:
                out[key] = fn(peer, cfg[key])
            except Exception as exc:  # report, so that the other node's scenarios still run
                out[key] = {"exception": repr(exc)}
    finally:
        with open(sys.argv[2], "w") as f:
            json.dump(out, f, default=str)
        peer.node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
