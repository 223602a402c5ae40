"""Launch robot-rl-node for a quadrotor motor-level policy (profile quadrotor_motors).

    ros2 launch launch/quadrotor.launch.py model_path:=/path/to/export [namespace:=cf1] [params_file:=my.yaml]

The node is the pip console script `robot-rl-node` found on PATH (no ament package needed). It starts
unconfigured unless the params file sets autostart: true; then
`ros2 lifecycle set /cf1/robot_rl_node configure` and `... activate`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # node_launch.py beside this file (no package needed)
from node_launch import node_launch_description  # noqa: E402


def generate_launch_description():
    """Arguments: model_path (export directory), namespace, params_file (YAML, see config/quadrotor.yaml)."""
    return node_launch_description("quadrotor", namespace="cf1")
