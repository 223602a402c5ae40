#!/usr/bin/env bash
# Create .venv-ros at the repository root: numpy, onnxruntime, the PyPI ROS 2 wheels (rclpy + Fast DDS + the
# message packages the node uses), CPU torch + numba + tyro for `robot-rl crazyflie-sim` (the simulator behind
# Crazyswarm2's topics), mujoco for `robot-rl arm-sim` (the MuJoCo Panda behind ros2_control's topics), and
# robot-rl installed --no-deps, so that `robot-rl-node` and `robot-rl` are on
# .venv-ros/bin. The ROS wheels' .pth bootstrapper re-executes every interpreter start in this venv, which is
# why it is kept apart from .venv. The node itself never imports torch (tests/ros2 run it with torch blocked).
# Usage: bash deploy/ros2/make_venv.sh  (idempotent; re-run after pyproject changes; PYTHON=python3.12 to pick)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-ros}
PYTHON=${PYTHON:-python3}
ROS_PKGS="ros-rclpy ros-rmw-fastrtps-cpp ros-std-msgs ros-sensor-msgs ros-geometry-msgs ros-nav-msgs ros-std-srvs
ros-lifecycle-msgs"
stamp="$VENV/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt "$0" ]; then
    echo "make_venv.sh: $VENV is up to date"
    exit 0
fi
"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# CPU torch first so that nothing pulls a CUDA build (same spec as the Makefile)
$PIP install -q "${TORCH_SPEC:-torch==2.13.0}"
# shellcheck disable=SC2086
$PIP install -q numpy onnxruntime pyyaml tyro numba gymnasium "mujoco>=4.0" $ROS_PKGS
# diagnostic_msgs is optional: the node falls back to a documented std_msgs topic without it.
$PIP install -q ros-diagnostic-msgs || echo "make_venv.sh: ros-diagnostic-msgs unavailable; using the fallback topic"
$PIP install -q --no-deps -e .
"$VENV/bin/python" -c "import rclpy, std_msgs.msg, nav_msgs.msg, sensor_msgs.msg, std_srvs.srv, geometry_msgs.msg, \
onnxruntime, torch, mujoco, sim.quadrotor.crazyflie_link, sim.arm.ik"
touch "$stamp"
echo "make_venv.sh: $VENV ready ($("$VENV/bin/python" --version), robot-rl-node at $VENV/bin/robot-rl-node)"
