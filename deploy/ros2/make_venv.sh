#!/usr/bin/env bash
# Create .venv-ros at the repository root: a torch-free venv with numpy, onnxruntime, the PyPI ROS 2 wheels
# (rclpy + Fast DDS + the message packages the node uses) and robot-rl installed --no-deps, so that the
# `robot-rl-node` console script is on .venv-ros/bin. The ROS wheels' .pth bootstrapper re-executes every
# interpreter start in this venv, which is why it is kept apart from .venv (torch is never installed here).
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
# shellcheck disable=SC2086
$PIP install -q numpy onnxruntime pyyaml $ROS_PKGS
# diagnostic_msgs is optional: the node falls back to a documented std_msgs topic without it.
$PIP install -q ros-diagnostic-msgs || echo "make_venv.sh: ros-diagnostic-msgs unavailable; using the fallback topic"
$PIP install -q --no-deps -e .
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "make_venv.sh: torch must not be installed in $VENV" >&2
    exit 1
fi
"$VENV/bin/python" -c "import rclpy, std_msgs.msg, nav_msgs.msg, sensor_msgs.msg, std_srvs.srv, onnxruntime"
touch "$stamp"
echo "make_venv.sh: $VENV ready ($("$VENV/bin/python" --version), robot-rl-node at $VENV/bin/robot-rl-node)"
