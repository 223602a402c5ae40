"""The spin loop shared by the simulated robots behind ROS 2 topics (arm-sim, crazyflie-sim, quadrotor-sim)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def spin_simulator(node: Any, started: Callable[[], float | None], sim_time: Callable[[], float], *,
                   duration: float, max_wait: float, what: str) -> None:
    """Spin ``node`` (its timer steps the simulator) until ``duration`` simulated seconds after the first command,
    or forever with ``duration`` 0; give up after ``max_wait`` wall seconds without ``what`` (the first command).

    ``started()``: the simulated time of the first command (``None`` before it); ``sim_time()``: the simulated
    time now. Always destroys the node and shuts rclpy down (Ctrl-C ends the loop quietly).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        t0 = time.monotonic()
        while rclpy.ok():
            first = started()
            if duration and first is not None and sim_time() - first >= duration:
                break
            if duration and first is None and time.monotonic() - t0 > max_wait:
                node.get_logger().error(f"no {what} within {max_wait:g} s: giving up")
                break
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
