"""``robot-rl-node``: an rclpy lifecycle node that runs an exported policy through :class:`PolicyRunner`.

Lifecycle: ``configure`` loads the export and checks it against the parameters (a mismatch fails the
transition with a one-line error); ``activate`` starts a fixed-rate timer on the steady clock; ``deactivate``,
``error`` and ``shutdown`` publish one safe command. Sensors are subscribed with the sensor-data QoS
(best effort), commands are published reliable. ``~/emergency_stop`` (``std_srvs/Trigger``) publishes the
safe command at once and latches it until the next activation. Diagnostics (``diagnostic_msgs/DiagnosticArray``
on ``/diagnostics``, or JSON in ``std_msgs/String`` on ``~/diagnostics`` when diagnostic_msgs is missing)
carry the runner's counters, timer overruns and the period statistics.

All robot-specific logic lives in the ROS-free :mod:`deploy.ros2.profiles` and :mod:`deploy.runtime`.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
from dataclasses import fields
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

from deploy.ros2.profiles import ConfigError, NodeConfig, Profile, make_profile

try:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
except ImportError:  # pragma: no cover - depends on the installed wheels
    DiagnosticArray = None
from std_msgs.msg import String

NODE_NAME = "robot_rl_node"
PERIOD_RING = 4096  # periods kept for the jitter statistics
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def msg_class(name: str) -> type:
    """``"pkg/msg/Type"`` -> the message class."""
    pkg, kind, typ = name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), typ)


class PolicyNode(LifecycleNode):
    """Lifecycle node around a :class:`~deploy.ros2.profiles.Profile` (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        defaults = NodeConfig()
        dynamic = ParameterDescriptor(dynamic_typing=True)  # YAML "500" and "500.0" both work; coerced later
        for f in fields(NodeConfig):
            value = getattr(defaults, f.name)
            self.declare_parameter(f.name, value if value != [] else None, dynamic)
        self.profile: Profile | None = None
        self._timer = None
        self._subs: list[Any] = []
        self._pub = None
        self._msg: Any = None
        self._error = ""
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._reset_timing(0.01)
        self.create_service(Trigger, "~/emergency_stop", self._on_estop)
        topic = str(self.get_parameter("diagnostics_topic").value)
        if DiagnosticArray is not None:
            self._diag_pub = self.create_publisher(DiagnosticArray, topic, 10)
        else:
            self._diag_pub = self.create_publisher(String, "~/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics_period_s").value),
                                             self._publish_diagnostics, clock=self._steady)

    # ------------------------------------------------------------------ parameters
    def config(self) -> NodeConfig:
        """The current parameter values as a :class:`NodeConfig`."""
        return NodeConfig.coerce({f.name: self.get_parameter(f.name).value for f in fields(NodeConfig)})

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = self.config()
            profile = make_profile(cfg)
        except (ConfigError, ValueError) as exc:
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.get_logger().error(f"configure refused: {self._error}")
            return FAILURE
        self.profile, self._error = profile, ""
        for sub in profile.subscriptions():
            handler = sub.handler
            self._subs.append(self.create_subscription(
                msg_class(sub.msg_type), sub.topic, lambda m, h=handler: h(m, time.monotonic()),
                qos_profile_sensor_data))
        cmd_cls = msg_class(profile.command_type)
        self._pub = self.create_publisher(cmd_cls, profile.command_topic,
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._msg = cmd_cls()
        self._reset_timing(1.0 / profile.rate_hz)
        self.get_logger().info(
            f"configured: profile {profile.name}, model {cfg.export_dir()}, {profile.rate_hz:g} Hz, commands on "
            f"{self._pub.topic_name}, inputs {[s.topic for s in profile.subscriptions()]}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.profile is not None
        self.profile.runner.activate()
        self._reset_timing(1.0 / self.profile.rate_hz)
        self._timer = self.create_timer(self._period, self._tick, clock=self._steady)
        self.get_logger().info(f"activated: control loop at {self.profile.rate_hz:g} Hz")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        self._send_safe("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        self._send_safe("shutdown")
        self._teardown()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        self._send_safe("error")
        self._teardown()
        return SUCCESS

    # ------------------------------------------------------------------ control loop
    def _tick(self) -> None:
        try:
            self._control_step()
        except Exception as exc:  # a bug must not leave the last command standing
            self.profile.runner.estop(f"internal error: {type(exc).__name__}: {exc}")
            self._send_safe("internal error")
            self.get_logger().error(f"control step failed, safe command latched: {exc!r}")

    def _control_step(self) -> None:
        t = time.monotonic()
        dt = t - self._last_tick
        self._last_tick = t
        if self._ticks:
            self._periods[self._ticks % PERIOD_RING] = dt
            if dt > 1.5 * self._period:
                self._missed += 1
                self._max_late = max(self._max_late, dt)
        self._ticks += 1
        cmd, reason = self.profile.runner.step(t)
        if cmd is not None:
            self._msg.data = cmd.tolist()
            self._pub.publish(self._msg)
        if reason is not None and reason != self._last_logged:
            self.get_logger().warning(f"safe command: {reason}")
        self._last_logged = reason
        if time.monotonic() - t > self._period:
            self._overruns += 1

    def _send_safe(self, reason: str) -> None:
        """Publish the safe command once (if there is a configured profile and a safe command exists)."""
        if self.profile is None or self._pub is None:
            return
        cmd, _ = self.profile.runner.safe_command(reason)
        if cmd is not None:
            self._msg.data = cmd.tolist()
            self._pub.publish(self._msg)
        self.get_logger().info(f"safe command sent ({reason})")

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.profile is None:
            response.success, response.message = False, "not configured: no command to stop"
            return response
        self.profile.runner.estop("emergency stop")
        self._send_safe("emergency stop")
        self.get_logger().warning("emergency stop: safe command latched until re-activation")
        response.success, response.message = True, "safe command latched until re-activation"
        return response

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _teardown(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._pub is not None:
            self.destroy_publisher(self._pub)
        self._pub, self.profile = None, None

    # ------------------------------------------------------------------ diagnostics
    def _reset_timing(self, period: float) -> None:
        self._period = period
        self._periods = np.zeros(PERIOD_RING)
        self._ticks = self._missed = self._overruns = 0
        self._max_late = 0.0
        self._last_tick = time.monotonic()
        self._last_logged: str | None = None

    def timing(self) -> dict[str, float]:
        """Control-loop statistics since activation (periods of the last ``PERIOD_RING`` ticks)."""
        n = min(self._ticks - 1, PERIOD_RING)
        p = self._periods[:n] if n > 0 else np.array([self._period])
        return {"ticks": self._ticks, "rate_hz": float(1.0 / p.mean()), "period_max_ms": float(p.max() * 1e3),
                "jitter_p99_ms": float(np.percentile(np.abs(p - self._period), 99) * 1e3),
                "missed_deadlines": self._missed, "overruns": self._overruns,
                "max_missed_period_ms": self._max_late * 1e3}

    def _publish_diagnostics(self) -> None:
        state = self._state_machine.current_state[1] if hasattr(self, "_state_machine") else "unknown"
        values: dict[str, Any] = {"state": state, "error": self._error}
        level = 2 if self._error else 0
        if self.profile is not None:
            values.update(self.profile.runner.stats())
            values.update(self.timing())
            values["profile"] = self.profile.name
            if values["estopped"]:
                level = 2
            elif values["last_reason"]:
                level = 1
        message = self._error or str(values.get("last_reason") or state)
        if DiagnosticArray is None:
            self._diag_pub.publish(String(data=json.dumps({"level": level, "message": message, **values})))
            return
        status = DiagnosticStatus(level=bytes([level]), name=self.get_fully_qualified_name(), message=message,
                                  hardware_id=str(values.get("profile", "")),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``robot-rl-node`` (ROS arguments after ``--ros-args``)."""
    args = sys.argv if argv is None else argv
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    node = PolicyNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_timer()
        if rclpy.ok():
            node._send_safe("node exit")
            node.destroy_node()
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
