"""The launch description shared by the launch files in this folder: one ``robot-rl-node`` with a params file.

`ros2 launch` runs the system Python, which need not see the venv where robot-rl is installed, so this module
imports only `launch` / `launch_ros`; the launch files next to it import it by path.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def node_launch_description(config: str, namespace: str) -> LaunchDescription:
    """Arguments model_path (export directory), namespace (default ``namespace``), params_file (default
    ``config/<config>.yaml`` beside this file)."""
    default_params = str(Path(__file__).resolve().parent / "config" / f"{config}.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("model_path", description="export directory with policy.onnx + policy.json"),
        DeclareLaunchArgument("namespace", default_value=namespace, description="namespace of the node and its topics"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
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
