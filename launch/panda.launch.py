"""Launch robot-rl-node for a Franka Panda under ros2_control (profile arm, config/panda.yaml).

    ros2 launch launch/panda.launch.py model_path:=/path/to/export [namespace:=arm] [params_file:=my.yaml]

Beside a real Panda (franka_ros2 with a forward_position_controller and a gripper position controller) or
`robot-rl arm-sim --task panda-pick-cube` (the simulated one).

The node is the pip console script `robot-rl-node` found on PATH (no ament package needed). It starts
unconfigured unless the params file sets autostart: true; then
`ros2 lifecycle set /arm/robot_rl_node configure` and `... activate`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # node_launch.py beside this file (no package needed)
from node_launch import node_launch_description  # noqa: E402


def generate_launch_description():
    """Arguments: model_path (export directory), namespace, params_file (YAML, see config/panda.yaml)."""
    return node_launch_description("panda", namespace="arm")
