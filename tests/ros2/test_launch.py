"""Launch files: `launch`/`launch_ros` are not on PyPI, so they run here against recording stubs.

The YAML files they reference are loaded by the real node with ``--params-file`` in test_node.py.
"""

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from deploy.ros2.profiles import NodeConfig

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """Stands in for every launch class: remembers its positional and keyword arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorder):
    pass


class DeclareLaunchArgument(Recorder):
    pass


class Node(Recorder):
    pass


class LaunchDescription(Recorder):
    pass


@pytest.fixture
def stub_launch(monkeypatch):
    mods = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
    }
    for name, attrs in mods.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.mark.parametrize("robot,profile", [("quadrotor", "quadrotor_motors"), ("arm", "arm"), ("panda", "arm")])
def test_launch_file_starts_the_console_script_with_its_yaml(stub_launch, robot, profile):
    path = ROOT / "launch" / f"{robot}.launch.py"
    compile(path.read_text(), str(path), "exec")
    desc = load(path)
    (entities,) = desc.args
    args = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert set(args) == {"model_path", "namespace", "params_file"} and "default_value" not in args["model_path"]
    (node,) = [e for e in entities if isinstance(e, Node)]
    kw = node.kwargs
    assert kw["executable"] == "robot-rl-node" and kw["package"] is None and kw["name"] == "robot_rl_node"
    assert kw["namespace"].args == ("namespace",)
    params_file, overrides = kw["parameters"]
    assert params_file.args == ("params_file",) and overrides["model_path"].args == ("model_path",)
    yaml_path = Path(args["params_file"]["default_value"])
    assert yaml_path.is_file() and yaml_path.parent == ROOT / "launch" / "config"
    params = yaml.safe_load(yaml_path.read_text())["/**"]["ros__parameters"]
    assert params["profile"] == profile
    NodeConfig.coerce(params)  # every key is a node parameter with a valid value


def test_crazyflie_launch_file_names_the_robot_and_its_yaml(stub_launch):
    path = ROOT / "launch" / "crazyflie.launch.py"
    desc = load(path)
    (entities,) = desc.args
    args = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert set(args) == {"model_path", "cf_name", "params_file"} and args["cf_name"]["default_value"] == "cf1"
    (node,) = [e for e in entities if isinstance(e, Node)]
    kw = node.kwargs
    assert kw["executable"] == "robot-rl-node" and kw["package"] is None and "namespace" not in kw
    params_file, overrides = kw["parameters"]
    assert overrides["cf_name"].args == ("cf_name",) and overrides["model_path"].args == ("model_path",)
    params = yaml.safe_load(Path(args["params_file"]["default_value"]).read_text())["/**"]["ros__parameters"]
    cfg = NodeConfig.coerce(params)
    assert cfg.profile == "crazyflie" and cfg.command_high[3] == 60000.0 and len(cfg.command_low) == 4
