"""Launch robot-rl-node for one Crazyflie beside a running Crazyswarm2 server (profile crazyflie).

    ros2 launch launch/crazyflie.launch.py model_path:=/path/to/export [cf_name:=cf1] [params_file:=my.yaml]

Start Crazyswarm2 first (`ros2 launch crazyflie launch.py`), take off (e.g. `ros2 service call /cf1/takeoff ...`),
then `ros2 lifecycle set /robot_rl_node configure` and `... activate`: the node streams attitude/thrust setpoints
on /<cf_name>/cmd_vel_legacy from /<cf_name>/odom. Deactivate (or the e-stop service
`ros2 service call /robot_rl_node/emergency_stop std_srvs/srv/Trigger`) stops the stream; the e-stop also calls
/<cf_name>/emergency. The node is the pip console script `robot-rl-node` found on PATH (no ament package needed).
"""

# Self-contained on purpose (node_launch.py has the same imports): `ros2 launch` runs the system Python,
# which need not see the venv where robot-rl is installed, so a launch file must not import robot-rl itself.
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

DEFAULT_PARAMS = str(Path(__file__).resolve().parent / "config" / "crazyflie.yaml")


def generate_launch_description() -> LaunchDescription:
    """Arguments: model_path (export directory), cf_name (Crazyswarm2 robot name), params_file (YAML)."""
    return LaunchDescription([
        DeclareLaunchArgument("model_path", description="export directory with policy.onnx + policy.json"),
        DeclareLaunchArgument("cf_name", default_value="cf1", description="Crazyswarm2 robot name (topic prefix)"),
        DeclareLaunchArgument("params_file", default_value=DEFAULT_PARAMS, description="node parameters (YAML)"),
        Node(
            executable="robot-rl-node",
            package=None,
            name="robot_rl_node",
            parameters=[LaunchConfiguration("params_file"), {"model_path": LaunchConfiguration("model_path"),
                                                            "cf_name": LaunchConfiguration("cf_name")}],
            output="screen",
            emulate_tty=True,
        ),
    ])
