"""ROS 2 tests run the real node in .venv-ros (made by deploy/ros2/make_venv.sh); they skip without it."""

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv-ros" / "bin" / "python"
NODE_EXE = ROOT / ".venv-ros" / "bin" / "robot-rl-node"
_probe: dict[str, str | None] = {}


def ros_env() -> dict[str, str]:
    """Environment for node and peer: a private DDS domain per test run, discovery on localhost only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROS_", "RMW_", "PYTHON"))}
    env.update(ROS_DOMAIN_ID=str(100 + os.getpid() % 100), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
    return env


def node_env() -> dict[str, str]:
    """:func:`ros_env` for a ``robot-rl-node`` process, with torch made unimportable (.venv-ros has torch for the
    simulator; the node must not use it), and this checkout's packages ahead of whichever one .venv-ros was
    installed from."""
    return {**ros_env(), "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "ros2" / "no_torch"), str(ROOT)])}


def venv_problem() -> str | None:
    """Why .venv-ros cannot run the node (None when it can); probed once per session."""
    if "reason" not in _probe:
        if not VENV_PYTHON.exists() or not NODE_EXE.exists():
            _probe["reason"] = f"{VENV_PYTHON.parent.parent.name} missing: run bash deploy/ros2/make_venv.sh"
        else:
            code = "import rclpy, deploy.ros2.node, diagnostic_msgs.msg, lifecycle_msgs.srv; print('ok')"
            try:
                out = subprocess.run([str(VENV_PYTHON), "-c", code], capture_output=True, text=True, timeout=120,
                                     cwd=ROOT, env=ros_env())
                ok = out.returncode == 0 and out.stdout.strip().endswith("ok")
                tail = (out.stderr.strip().splitlines() or ["?"])[-1]
                _probe["reason"] = None if ok else f".venv-ros is broken ({tail})"
            except subprocess.TimeoutExpired:
                _probe["reason"] = ".venv-ros is broken (import rclpy timed out)"
    return _probe["reason"]


@pytest.fixture(scope="session")
def ros_venv() -> Path:
    reason = venv_problem()
    if reason:
        pytest.skip(reason)
    return VENV_PYTHON


def interrupt(*procs: subprocess.Popen) -> None:
    """Ctrl-C each process (a ROS node shuts down cleanly on SIGINT); kill what has not exited 10 s later."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


@contextlib.contextmanager
def sim_and_node(tmp_path: Path, sim_command: str, params_file: str, sim_args: list[str], node_params: list[str]):
    """``robot-rl <sim_command>`` (in .venv-ros) and ``robot-rl-node`` (``launch/config/<params_file>``, torch
    blocked) side by side; yields the simulator process and a dict that holds both log tails (``sim``, ``node``)
    once both have stopped."""
    sim = subprocess.Popen([str(VENV_PYTHON), "-m", "robot_rl.cli", sim_command, *sim_args],
                           stdout=open(tmp_path / "sim.log", "w"), stderr=subprocess.STDOUT, env=ros_env(), cwd=ROOT)
    params = [x for p in node_params for x in ("-p", p)]
    node = subprocess.Popen([str(NODE_EXE), "--ros-args", "--params-file", str(ROOT / "launch/config" / params_file),
                             *params], stdout=open(tmp_path / "node.log", "w"), stderr=subprocess.STDOUT,
                            env=node_env(), cwd=tmp_path)
    logs: dict[str, str] = {}
    try:
        yield sim, logs
    finally:
        interrupt(node)
        if sim.poll() is None:
            sim.kill()
        logs.update({k: (tmp_path / f"{k}.log").read_text()[-3000:] for k in ("sim", "node")})
