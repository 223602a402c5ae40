"""ROS 2 node loop: PolicyRunner.step latency next to onnxruntime, and robot-rl-node's achieved control rate.

(a) for a 146-64-64-4 hover-shaped policy, p50/p99 over ``--calls`` calls (median of ``--repeats`` repeats):
    ``PolicyRunner.step`` alone (its clock held at the last message's arrival, so the odometry is fresh and
    every step runs all checks, inference, clipping and the history update); a new odometry message every
    call, converted and accepted by the node's ``quadrotor_motors`` profile (``on_odometry``) and then the
    step; and ``onnxruntime``'s ``session.run`` on the same model.
(b) ``robot-rl-node`` at ``--rate`` Hz for ``--duration`` s (started in .venv-ros, autostart) while a peer
    process publishes odometry at ``--sensor-rate`` Hz and timestamps every command it receives: achieved rate,
    p99 period jitter and missed deadlines (periods > 1.5 control periods) as seen by the peer, plus the node's
    own counters from its diagnostics. Skipped with a note when .venv-ros is missing.

    PYTHONPATH=. .venv/bin/python benchmarks/node_loop.py [--duration 60]

The last line is one JSON object: runner_p50_us, runner_p99_us, odom_step_p50_us, odom_step_p99_us, ort_p50_us,
node_rate_hz, jitter_p99_ms, missed (and the peer's and the reference loop's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv-ros" / "bin" / "python"


def percentiles_us(fn, calls: int) -> tuple[float, float]:
    t = np.empty(calls)
    clock = time.perf_counter
    for i in range(calls):
        t0 = clock()
        fn()
        t[i] = clock() - t0
    return float(np.percentile(t, 50) * 1e6), float(np.percentile(t, 99) * 1e6)


def odometry_message(z: float = 1.03) -> SimpleNamespace:
    """A ``nav_msgs/Odometry`` as plain attributes (the profiles read messages by attribute only): near hover,
    slightly off the target, with the frames the ``quadrotor_motors`` profile expects by default (REP 105)."""
    ns = SimpleNamespace
    return ns(header=ns(stamp=ns(sec=0, nanosec=0), frame_id="odom"), child_frame_id="base_link",
              pose=ns(pose=ns(position=ns(x=0.02, y=-0.01, z=z), orientation=ns(w=1.0, x=0.0, y=0.0, z=0.0))),
              twist=ns(twist=ns(linear=ns(x=0.1, y=0.0, z=0.0), angular=ns(x=0.0, y=0.0, z=0.1))))


def bench_runner(export_dir: Path, calls: int, repeats: int) -> dict[str, float]:
    """Part (a): ``PolicyRunner.step`` alone, and a new odometry message converted and accepted by the node's
    ``quadrotor_motors`` profile (``on_odometry``: stamp check, quaternion, rotation, twist) followed by the step,
    every call; next to onnxruntime's ``session.run`` on the same observation."""
    from deploy.onnx_io import onnx_session
    from deploy.ros2.profiles import NodeConfig, make_profile

    profile = make_profile(NodeConfig(model_path=str(export_dir), target=[0.0, 0.0, 1.0]))
    runner = profile.runner
    msg = odometry_message()
    stamp = msg.header.stamp
    last = [0]
    clock = time.monotonic

    received = [0.0]

    def odom_and_step() -> None:
        ns = max(time.time_ns(), last[0] + 1)  # a new, strictly later stamp every call
        last[0] = ns
        stamp.sec, stamp.nanosec = divmod(ns, 1_000_000_000)
        received[0] = now = clock()
        profile.on_odometry(msg, now)
        runner.step(now)

    def step() -> None:
        runner.step(received[0])  # the clock held at the last message's arrival: odometry never turns stale

    odom_and_step()
    assert runner.step(clock())[1] is None, runner.last_reason
    session = onnx_session(export_dir / "policy.onnx")
    x = runner.obs.copy()
    feed, names = {"obs": x}, ["action"]
    np.testing.assert_allclose(session.run(names, feed)[0], runner.forward_batch(x), atol=0, rtol=0)
    accepted, safe = runner.sources["odom"].count, runner.safe_steps
    rows = []
    for _ in range(repeats):
        o50, o99 = percentiles_us(odom_and_step, calls)
        r50, r99 = percentiles_us(step, calls)
        s50, s99 = percentiles_us(lambda: session.run(names, feed), calls)
        rows.append((r50, r99, o50, o99, s50, s99))
    # every timed call took the full path: each message accepted, no safe step
    assert runner.sources["odom"].count - accepted == repeats * calls and runner.safe_steps == safe, (
        runner.sources["odom"].count - accepted, runner.safe_steps - safe, runner.last_reason)
    med = np.median(np.array(rows), axis=0)
    return {"runner_p50_us": med[0], "runner_p99_us": med[1], "odom_step_p50_us": med[2],
            "odom_step_p99_us": med[3], "ort_p50_us": med[4], "ort_p99_us": med[5]}


def peer(args: argparse.Namespace) -> None:
    """Part (b), the peer side (runs in .venv-ros): publish odometry, timestamp commands, read diagnostics."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float32MultiArray

    rclpy.init()
    node = rclpy.create_node("node_loop_peer")
    arrivals: list[float] = []
    diag: dict[str, str] = {}
    node.create_subscription(Float32MultiArray, "/bench/motor_commands", lambda m: arrivals.append(time.monotonic()),
                             QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: diag.update({kv.key: kv.value for s in m.status for kv in s.values}), 10)
    pub = node.create_publisher(Odometry, "/bench/odom", 10)
    msg = Odometry()
    msg.pose.pose.position.z, msg.pose.pose.orientation.w = 1.0, 1.0
    msg.header.frame_id, msg.child_frame_id = "odom", "base_link"  # the profile's expected frames

    def publish() -> None:
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)

    ex = SingleThreadedExecutor()
    ex.add_node(node)
    node.create_timer(1.0 / args.sensor_rate, publish)
    end = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        ex.spin_once(timeout_sec=0.01)
    warm = time.monotonic() + 1.0
    while time.monotonic() < warm:
        ex.spin_once(timeout_sec=0.01)
    arrivals.clear()
    safe_before = float(diag.get("safe_steps", "nan"))
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.01)
    n_cmd = len(arrivals)
    grace = time.monotonic() + 1.5  # one more diagnostics message
    diag.clear()
    while not diag and time.monotonic() < grace:
        ex.spin_once(timeout_sec=0.01)
    t = np.array(arrivals[:n_cmd])
    d = np.diff(t)
    period = 1.0 / args.rate
    num = lambda k: float(diag[k]) if k in diag else None  # noqa: E731
    out = {"commands": n_cmd, "peer_rate_hz": float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 else 0.0,
           "peer_jitter_p99_ms": float(np.percentile(np.abs(d - period), 99) * 1e3) if len(d) else None,
           "peer_missed": int((d > 1.5 * period).sum()), "peer_max_period_ms": float(d.max() * 1e3) if len(d) else None,
           "node_rate_hz": num("rate_hz"), "jitter_p99_ms": num("jitter_p99_ms"), "missed": num("missed_deadlines"),
           "max_period_ms": num("period_max_ms"), "overruns": num("overruns"), "safe_steps": num("safe_steps"),
           "ticks": num("ticks"), "safe_steps_in_window": (num("safe_steps") or 0.0) - safe_before}
    Path(args.out).write_text(json.dumps(out))
    node.destroy_node()
    rclpy.try_shutdown()


def bench_node(export_dir: Path, args: argparse.Namespace) -> dict[str, object]:
    """Part (b): start robot-rl-node and the peer in .venv-ros on a private DDS domain (localhost only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROS_", "RMW_", "PYTHON"))}
    env.update(ROS_DOMAIN_ID=str(100 + (os.getpid() + 50) % 100), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    node = subprocess.Popen([str(VENV_PY.parent / "robot-rl-node"), "--ros-args", "-r", "__ns:=/bench",
                             "-p", f"model_path:={export_dir}", "-p", "autostart:=true", "-p", "input_timeout_s:=0.1",
                             "-p", "target:=[0.0, 0.0, 1.0]", "-p", "diagnostics_period_s:=1.0",
                             "-p", f"realtime_priority:={args.realtime_priority}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "peer.json"
            subprocess.run([str(VENV_PY), __file__, "--peer", "--duration", str(args.duration), "--rate",
                            str(args.rate), "--sensor-rate", str(args.sensor_rate), "--out", str(out)],
                           env=env, check=True, timeout=args.duration + 90)
            return json.loads(out.read_text())
    finally:
        node.terminate()
        node.wait(10)


REFERENCE_LOOP = """
import os, sys, time
rate, seconds, prio = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
if prio > 0:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
period, t = 1.0 / rate, []
nxt = time.monotonic() + period
end = nxt + seconds
while nxt < end:
    time.sleep(max(0.0, nxt - time.monotonic()))
    t.append(time.monotonic())
    nxt += period
d = [b - a for a, b in zip(t, t[1:])]
print(len(d) / (t[-1] - t[0]), sorted(abs(x - period) for x in d)[int(0.99 * len(d))] * 1e3,
      sum(x > 1.5 * period for x in d), max(d) * 1e3)
"""


def bench_reference(args: argparse.Namespace) -> dict[str, float]:
    """The machine's own timing floor: a bare Python sleep-until-deadline loop at the same rate and priority."""
    out = subprocess.run([sys.executable, "-c", REFERENCE_LOOP, str(args.rate), str(args.reference_seconds),
                          str(args.realtime_priority)], capture_output=True, text=True, check=True)
    rate, jit, missed, longest = (float(v) for v in out.stdout.split())
    return {"ref_rate_hz": rate, "ref_jitter_p99_ms": jit, "ref_missed": missed, "ref_max_period_ms": longest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of part (b)")
    ap.add_argument("--rate", type=float, default=500.0, help="control rate of the node, Hz")
    ap.add_argument("--sensor-rate", type=float, default=100.0, help="odometry rate of the peer, Hz")
    ap.add_argument("--realtime-priority", type=int, default=0, help="node's SCHED_FIFO priority (0: normal)")
    ap.add_argument("--reference-seconds", type=float, default=10.0, help="length of the bare-loop reference")
    ap.add_argument("--skip-node", action="store_true", help="only part (a)")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return peer(args)
    from deploy.export.examples import export_hover_example

    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(tmp) / "hover"
        export_hover_example(export_dir, hidden=(64, 64), control_rate_hz=args.rate)
        res: dict[str, object] = bench_runner(export_dir, args.calls, args.repeats)
        print(f"(a) PolicyRunner.step p50 {res['runner_p50_us']:.1f} us, p99 {res['runner_p99_us']:.1f} us; "
              f"new odometry (on_odometry) + step p50 {res['odom_step_p50_us']:.1f} us, p99 "
              f"{res['odom_step_p99_us']:.1f} us; onnxruntime session.run p50 {res['ort_p50_us']:.1f} us, p99 "
              f"{res['ort_p99_us']:.1f} us (step / ort p50 = {res['runner_p50_us'] / res['ort_p50_us']:.2f})")
        node: dict[str, object] = {"node_rate_hz": None, "jitter_p99_ms": None, "missed": None}
        if args.skip_node:
            print("(b) skipped (--skip-node)")
        elif not VENV_PY.exists():
            print("(b) skipped: .venv-ros missing (bash deploy/ros2/make_venv.sh)")
        else:
            node = bench_node(export_dir, args)
            node.update(bench_reference(args))
            print(f"(b) node at {args.rate:g} Hz for {args.duration:g} s, odometry at {args.sensor_rate:g} Hz, "
                  f"realtime_priority {args.realtime_priority}. Node's timer: {node['node_rate_hz']:.1f} Hz over "
                  f"{node['ticks']:.0f} ticks, p99 |period - T| {node['jitter_p99_ms']:.2f} ms, {node['missed']:.0f} "
                  f"periods > 1.5 T (longest {node['max_period_ms']:.2f} ms), {node['overruns']:.0f} steps > T, "
                  f"{node['safe_steps_in_window']:.0f} safe steps while measuring. Peer's arrivals: "
                  f"{node['peer_rate_hz']:.1f} Hz over "
                  f"{node['commands']} commands, p99 jitter {node['peer_jitter_p99_ms']:.2f} ms, {node['peer_missed']} "
                  f"gaps > 1.5 T (longest {node['peer_max_period_ms']:.2f} ms). Reference bare sleep loop, "
                  f"same rate and priority, {args.reference_seconds:g} s: {node['ref_rate_hz']:.1f} Hz, p99 "
                  f"{node['ref_jitter_p99_ms']:.2f} ms, {node['ref_missed']:.0f} periods > 1.5 T (longest "
                  f"{node['ref_max_period_ms']:.2f} ms)")
    keys = ("runner_p50_us", "runner_p99_us", "odom_step_p50_us", "odom_step_p99_us", "ort_p50_us", "node_rate_hz",
            "jitter_p99_ms", "missed",
            "max_period_ms", "peer_rate_hz", "peer_jitter_p99_ms", "peer_missed", "ref_jitter_p99_ms", "ref_missed",
            "ref_max_period_ms")
    summary = {k: (round(float(v), 3) if v is not None else None) for k, v in {**res, **node}.items() if k in keys}
    if summary.get("missed") is not None:
        summary["missed"] = int(summary["missed"])
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
