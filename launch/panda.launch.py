"""Launch robot-rl-node for a Franka Panda under ros2_control (profile arm, config/panda.yaml).

    ros2 launch launch/panda.launch.py model_path:=/path/to/export [namespace:=arm] [params_file:=my.yaml]

Beside a real Panda (franka_ros2 with a forward_position_controller and a gripper position controller) or
`robot-rl arm-sim --task panda-pick-cube` (the simulated one).

The node is the pip console script `robot-rl-node` found on PATH (no ament package needed). It starts
unconfigured unless the params file sets autostart: true; then
`ros2 lifecycle set /arm/robot_rl_node configure` and `... activate`.
"""

# Self-contained on purpose (the twin launch file repeats these lines): `ros2 launch` runs the system Python,
# which need not see the venv where robot-rl is installed, so a launch file must not import robot-rl itself.
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

DEFAULT_PARAMS = str(Path(__file__).resolve().parent / "config" / "panda.yaml")


def generate_launch_description() -> LaunchDescription:
    """Arguments: model_path (export directory), namespace, params_file (YAML, see config/panda.yaml)."""
    return LaunchDescription([
        DeclareLaunchArgument("model_path", description="export directory with policy.onnx + policy.json"),
        DeclareLaunchArgument("namespace", default_value="arm", description="namespace of the node and its topics"),
        DeclareLaunchArgument("params_file", default_value=DEFAULT_PARAMS, description="node parameters (YAML)"),
        Node(
            executable="robot-rl-node",
            package=None,
            name="robot_rl_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"model_path": LaunchConfiguration("model_path")}],
            output="screen",
            emulate_tty=True,
        ),
    ])
