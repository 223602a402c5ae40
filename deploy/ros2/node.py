"""``robot-rl-node``: an rclpy lifecycle node that runs an exported policy through :class:`PolicyRunner`.

Lifecycle: ``configure`` loads the export and checks it against the parameters (a mismatch fails the
transition with a one-line error); ``activate`` starts a fixed-rate timer on the steady clock; ``deactivate``,
``error`` and ``shutdown`` publish one safe command (where the command publisher is then destroyed, the node first
gives it up to ``FLUSH_TIMEOUT_S`` to go out). Sensors are subscribed with the sensor-data QoS
(best effort), commands are published reliable. ``~/emergency_stop`` (``std_srvs/Trigger``) publishes the
safe command at once and latches it, in any lifecycle state, across deactivate/activate, until
``~/clear_emergency_stop`` (``std_srvs/Trigger``, refused while active) clears it; a geofence breach or an
exception in the control step latches the same way. Parameters in ``NodeConfig.LIVE`` (``target``, ``goal``)
apply at once while configured; changing any other one then is refused with the reason. Diagnostics
(``diagnostic_msgs/DiagnosticArray``
on ``/diagnostics``, or JSON in ``std_msgs/String`` on ``~/diagnostics`` when diagnostic_msgs is missing)
carry the runner's counters, timer overruns and the period statistics.

A profile without a safe command (``crazyflie``) stops publishing instead; a profile may name a message to send
once before its first command (the Crazyflie's zero-thrust unlock; it and the first command wait until the
command topic has had a subscriber for ``UNLOCK_AFTER_MATCH_S``, so that discovery is complete on both sides)
and an ``std_srvs/Empty`` service the e-stop calls (``<cf>/emergency``). All robot-specific logic lives in the
ROS-free :mod:`deploy.ros2.profiles`, :mod:`deploy.ros2.crazyflie` and :mod:`deploy.runtime`.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import time
from dataclasses import fields
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Empty, Trigger

from deploy.ros2.profiles import ConfigError, NodeConfig, Profile, make_profile
from deploy.ros2.timing import LoopTiming

try:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
except ImportError:  # pragma: no cover - depends on the installed wheels
    DiagnosticArray = None
from std_msgs.msg import String

NODE_NAME = "robot_rl_node"
UNLOCK_AFTER_MATCH_S = 0.3  # s the command topic has had a subscriber before the unlock goes out
# s a last (safe) command gets on the wire before its publisher is destroyed. Fast DDS's asynchronous writer, deleted
# right after a write, lost 2 of 60 such samples on loopback and none with this wait. Its acknowledgements come
# with its ~3 s heartbeat, so the wait usually ends by timeout, which is not an error.
FLUSH_TIMEOUT_S = 0.1
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
        self._aux_pub = None
        self._msg: Any = None
        self._error = ""
        self._emergency: Any = None
        self._unlock_pending = False
        self._matched_since: float | None = None  # when the command publisher first saw a subscriber
        self._estop_pending: str | None = None  # pressed while unconfigured: latched into the next profile
        self._estop_signalled = False  # the robot's own emergency service was called for the current latch
        self._commanded = False  # a policy command went out since activation (later safe steps log at ERROR)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._reset_timing(0.01)
        self.create_service(Trigger, "~/emergency_stop", self._on_estop)
        self.create_service(Trigger, "~/clear_emergency_stop", self._on_clear_estop)
        self.add_on_set_parameters_callback(self._on_set_parameters)
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
    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Unconfigured: accept (read at configure). Configured: apply live ones, refuse the rest with a reason."""
        if self.profile is None:
            return SetParametersResult(successful=True)
        for p in params:
            why = self.profile.set_live(p.name, p.value) if p.name in NodeConfig.LIVE else \
                f"parameter {p.name} is read at configure: deactivate, cleanup, set it, then configure again"
            if why is not None:
                self.get_logger().warning(f"parameter change refused: {why}")
                return SetParametersResult(successful=False, reason=why)
            self.get_logger().info(f"parameter {p.name} applied live: {list(p.value) if p.value is not None else None}")
        return SetParametersResult(successful=True)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = self.config()
            profile = make_profile(cfg)
        except Exception as exc:  # ConfigError, and anything unforeseen: rclpy would swallow it without a log
            text = str(exc).splitlines()[0] if str(exc) else ""
            self._error = text if isinstance(exc, (ConfigError, ValueError)) else f"{type(exc).__name__}: {text}"
            self.get_logger().error(f"configure refused: {self._error}")
            return FAILURE
        self.profile, self._error = profile, ""
        profile.clock_ns = lambda: self.get_clock().now().nanoseconds
        if self._estop_pending is not None:
            profile.runner.estop(self._estop_pending)
            self._estop_pending = None
        for sub in profile.subscriptions():
            handler = sub.handler
            self._subs.append(self.create_subscription(
                msg_class(sub.msg_type), sub.topic, lambda m, h=handler: self._on_input(h, m), qos_profile_sensor_data))
        cmd_cls = msg_class(profile.command_type)
        self._pub = self.create_publisher(cmd_cls, profile.command_topic,
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        topics = [self._pub.topic_name] + ([profile.aux_command_topic] if profile.aux_command_topic else [])
        self._msg = cmd_cls()
        self._aux_pub = None
        if profile.aux_command_topic:  # e.g. an arm's gripper controller
            self._aux_pub = self.create_publisher(cmd_cls, profile.aux_command_topic,
                                                  QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            self._aux_msg = cmd_cls()
        self._emergency = None
        if profile.emergency_service:
            self._emergency = self.create_client(Empty, profile.emergency_service)
        self._reset_timing(1.0 / profile.rate_hz)
        self.get_logger().info(
            f"configured: profile {profile.name}, model {cfg.export_dir()}, {profile.rate_hz:g} Hz, commands on "
            f"{', '.join(topics)}, inputs {[s.topic for s in profile.subscriptions()]}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.profile is not None
        self.profile.runner.activate()
        if self.profile.runner.estopped is not None:
            self.get_logger().error(f"activated with the e-stop latched ({self.profile.runner.estopped}): safe "
                                    f"commands until ~/clear_emergency_stop")
        self._commanded = False
        self._reset_timing(1.0 / self.profile.rate_hz)
        gc.collect()
        gc.freeze()  # objects alive now never need scanning again: shorter collector pauses in the loop
        self._unlock_pending, self._matched_since = True, None
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

    def _on_input(self, handler: Any, msg: Any) -> None:
        """Hand a sensor message to the profile; a malformed message is dropped (the watchdog covers the gap)."""
        try:
            handler(msg, time.monotonic())
        except Exception as exc:
            self.get_logger().error(f"input message dropped: {exc!r}", throttle_duration_sec=1.0)
        notices = self.profile.runner.notices if self.profile is not None else None
        if notices:
            for text in notices:
                self.get_logger().warning(text)
            notices.clear()

    # ------------------------------------------------------------------ control loop
    def _tick(self) -> None:
        if self._timer is None:  # a timer event queued before deactivation must not command anything
            return
        try:
            self._control_step()
        except Exception as exc:  # a bug must not leave the last command standing
            self.profile.runner.estop(f"internal error: {type(exc).__name__}: {exc}")
            self._send_safe("internal error")
            self.get_logger().error(f"control step failed, safe command latched: {exc!r}")

    def _control_step(self) -> None:
        t = time.monotonic()
        self._timing.tick(t)
        runner = self.profile.runner
        cmd, reason = runner.step(t)
        if runner.estopped is not None and not self._estop_signalled:
            self._signal_estop(runner.estopped)  # e.g. a geofence breach latched in an input callback
        if cmd is not None and self._unlock_pending:
            # e.g. the Crazyflie's thrust lock: one zero setpoint right before the first command
            unlock = self.profile.unlock_message(self._msg)
            if unlock is None:
                self._unlock_pending = False
            elif self._subscriber_settled(t):
                self._unlock_pending = False
                self._pub.publish(unlock)
            else:
                cmd = None  # no command before the unlock: the firmware would ignore it anyway
        if cmd is not None:
            self._publish(cmd)
        if reason is None:
            self._commanded = self._commanded or cmd is not None  # not while holding back for the unlock
        elif reason.split(" (", 1)[0] != self._last_logged:  # "stale ... (N ms old ...)": log it once
            # before the first command (waiting for input) a warning; once flying, motors off / stream stopped
            # (rclpy wants one severity per call site: two calls)
            if self._commanded or runner.estopped:
                self.get_logger().error(f"safe command: {reason}")
            else:
                self.get_logger().warning(f"safe command: {reason}")
        self._last_logged = reason if reason is None else reason.split(" (", 1)[0]
        if time.monotonic() - t > self._period:
            self._timing.overruns += 1

    def _subscriber_settled(self, t: float) -> bool:
        """Whether the command topic has had a subscriber for :data:`UNLOCK_AFTER_MATCH_S`. DDS discovery is
        two-sided: the publisher may see the subscriber before the subscriber sees the publisher, and a one-shot
        message sent in between is dropped by the subscriber (a lost unlock leaves the Crazyflie's thrust locked
        while the node streams commands it ignores)."""
        if self._pub.get_subscription_count() == 0:
            self._matched_since = None
            return False
        if self._matched_since is None:
            self._matched_since = t
        return t - self._matched_since >= UNLOCK_AFTER_MATCH_S

    def _publish(self, cmd: Any) -> None:
        self._pub.publish(self.profile.fill(self._msg, cmd))
        if self._aux_pub is not None:
            self._aux_pub.publish(self.profile.fill_aux(self._aux_msg, cmd))

    def _send_safe(self, reason: str) -> None:
        """Publish the safe command once (if there is a configured profile and a safe command exists)."""
        if self.profile is None or self._pub is None:
            return
        cmd, _ = self.profile.runner.safe_command(reason)
        if cmd is not None:
            self._publish(cmd)
            self.get_logger().info(f"safe command sent ({reason})")
        else:
            self.get_logger().info(f"command stream stopped ({reason})")

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.profile is None:
            self._estop_pending = "emergency stop"
            self.get_logger().error("emergency stop while unconfigured: latched into the next configuration")
            response.success, response.message = True, "latched until ~/clear_emergency_stop"
            return response
        self.profile.runner.estop("emergency stop")
        self._send_safe("emergency stop")
        self._signal_estop("emergency stop")
        response.success, response.message = True, "safe command latched until ~/clear_emergency_stop"
        return response

    def _signal_estop(self, reason: str) -> None:
        """Log the latch at ERROR and call the robot's own emergency stop (Crazyflie: motors off) once."""
        self._estop_signalled = True
        if self._emergency is not None:
            self._emergency.call_async(Empty.Request())
            self.get_logger().error(f"called {self._emergency.srv_name}")
        self.get_logger().error(f"e-stop latched ({reason}): safe command until ~/clear_emergency_stop")

    def _on_clear_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._timer is not None:
            response.success, response.message = False, "refused while active: deactivate first"
            return response
        reason = self.profile.runner.clear_estop() if self.profile is not None else self._estop_pending
        self._estop_pending, self._estop_signalled = None, False
        response.success = True
        response.message = f"cleared ({reason})" if reason else "nothing was latched"
        self.get_logger().warning(f"e-stop {response.message}")
        return response

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _flush_commands(self) -> None:
        """Before the command publishers go: wait until their subscribers acknowledged everything published, at
        most ``FLUSH_TIMEOUT_S`` (no subscriber: no wait)."""
        for pub in (self._pub, self._aux_pub):
            if pub is not None:
                pub.wait_for_all_acked(Duration(seconds=FLUSH_TIMEOUT_S))

    def _teardown(self) -> None:
        self._flush_commands()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._pub is not None:
            self.destroy_publisher(self._pub)
        if self._aux_pub is not None:
            self.destroy_publisher(self._aux_pub)
        self._aux_pub = None
        if self._emergency is not None:
            self.destroy_client(self._emergency)
        self._pub, self.profile, self._emergency = None, None, None
        self._estop_signalled = False

    # ------------------------------------------------------------------ diagnostics
    def _reset_timing(self, period: float) -> None:
        self._period = period
        self._timing = LoopTiming(period, time.monotonic())
        self._last_logged: str | None = None

    def timing(self) -> dict[str, float]:
        """Control-loop statistics since activation (:class:`deploy.ros2.timing.LoopTiming`)."""
        return self._timing.stats()

    def _publish_diagnostics(self) -> None:
        state = self._state_machine.current_state[1] if hasattr(self, "_state_machine") else "unknown"
        values: dict[str, Any] = {"state": state, "error": self._error}
        level = 2 if self._error else 0
        if self.profile is not None:
            values.update(self.profile.runner.stats())
            values.update(self.profile.stats())
            values.update(self.timing())
            values["profile"] = self.profile.name
            if values["estopped"]:
                level = 2
            elif values["last_reason"] or values["clamped_now"]:
                level = 1
        elif self._estop_pending:
            level, values["estopped"] = 2, True
        clamped = values.get("clamped_now")
        message = self._error or str(values.get("last_reason") or (
            f"outside the training box: {clamped} clamped" if clamped else state))
        if DiagnosticArray is None:
            self._diag_pub.publish(String(data=json.dumps({"level": level, "message": message, **values})))
            return
        status = DiagnosticStatus(level=bytes([level]), name=self.get_fully_qualified_name(), message=message,
                                  hardware_id=str(values.get("profile", "")),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)


def make_executor(kind: str) -> Any:
    """rclpy's EventsExecutor (C++ event queue: far less overhead per callback) when available, else single."""
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        except ImportError:  # older rclpy (Humble) has no EventsExecutor
            pass
    elif kind != "single":
        raise SystemExit(f"robot-rl-node: executor must be 'events' or 'single', not {kind!r}")
    return SingleThreadedExecutor()


def set_realtime_priority(node: PolicyNode, priority: int) -> None:
    """SCHED_FIFO for the control thread (needs CAP_SYS_NICE or an rtprio limit); 0 keeps normal scheduling."""
    if priority <= 0:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        node.get_logger().info(f"control thread runs SCHED_FIFO priority {priority}")
    except (AttributeError, OSError) as exc:
        node.get_logger().warning(f"realtime_priority {priority} not applied ({exc}); normal scheduling")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``robot-rl-node`` (ROS arguments after ``--ros-args``).

    SIGINT/SIGTERM stop the loop between callbacks; the node then sends one safe command while the ROS
    context is still up (rclpy's own handlers would shut the context down first).
    """
    args = sys.argv if argv is None else argv
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    node = PolicyNode()
    set_realtime_priority(node, int(node.get_parameter("realtime_priority").value))
    executor = make_executor(str(node.get_parameter("executor").value))
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == SUCCESS:
                node.trigger_activate()
        while not stop and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_timer()
        if rclpy.ok():
            node._send_safe("node exit")
            node._flush_commands()
            node.destroy_node()
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
