"""The ``isaac:`` task family in the registry, without Isaac Lab: naming it never imports ``isaaclab``, and
where Isaac Lab cannot be imported, asking for such a task is a one-line error naming the venv script."""

import subprocess
import sys

import pytest

from sim.registry import get_task, task_families


def test_registry_lookups_do_not_import_isaaclab():
    code = ("import sys; from sim.registry import task_names, task_families, get_task; task_names(); "
            "get_task('crazyflie'); assert 'isaac:' in task_families(); "
            "bad = [m for m in sys.modules if m.startswith('isaaclab')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_isaac_task_without_isaaclab_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "isaaclab_tasks", None)  # as on a machine without Isaac Lab
    monkeypatch.delitem(sys.modules, "sim.isaac.tasks", raising=False)
    with pytest.raises(ValueError, match=r"task 'isaac:Isaac-Cartpole' cannot be loaded: .*sim/isaac/make_venv.sh"):
        get_task("isaac:Isaac-Cartpole")
    assert "Isaac Lab" in task_families()["isaac:"]
    from robot_rl.config import get_training_config

    with pytest.raises(ValueError, match=r"cannot be loaded: .*make_venv.sh"):  # `robot-rl train isaac:...`
        get_training_config("isaac:Isaac-Cartpole")


def test_unknown_task_error_names_the_family():
    with pytest.raises(ValueError, match=r"isaac:<id> \(Isaac Lab"):
        get_task("no-such-task")
