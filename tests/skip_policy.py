"""pytest plugin: skips are never quiet.

* With ``CI`` set to a true value (``CI=true``, as CI services and ``.ci/run`` set it) a test that skips fails
  instead, with its skip reason: CI installs the Arm toolchain and the ROS 2 venv, so a skip there means the
  suite did not test what it claims. The only skips allowed in CI are those for hardware CI does not have
  (a CUDA GPU).
* At the very end of every run one line says what was skipped, grouped by cause, with the one command that
  enables each group (``make test`` builds the ROS 2 venv itself; the Arm toolchain needs root).

Loaded by ``tests/conftest.py``; ``tests/test_skip_policy.py`` runs it in child pytest processes.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

# (substring of the skip reason, what is missing, the one command that enables it); first match wins, so the
# Arm tools come before the host compiler (test_qemu's reason names both).
CAUSES: tuple[tuple[str, str, str], ...] = (
    (".venv-ros", "the ROS 2 venv", "bash deploy/ros2/make_venv.sh"),
    (".venv-lerobot", "the LeRobot venv", "bash tests/robot_rl/data/make_lerobot_venv.sh"),
    ("isaaclab", "Isaac Lab (opt-in: an 8 GB Python 3.12 venv)", "make test-isaac"),
    ("crazyflie-firmware checkout", "a crazyflie-firmware checkout (opt-in)",
     "CRAZYFLIE_BASE=<path to crazyflie-firmware> make test"),
    ("'mujoco'", "the arm extra (MuJoCo)", ".venv/bin/pip install -e '.[dev,arm]'"),
    ("'pybullet'", "the backends extra (PyBullet)", ".venv/bin/pip install -e '.[dev,arm,backends]'"),
    ("'rotorpy'", "the judges extra (RotorPy)", ".venv/bin/pip install -e '.[judges]'"),
    ("'l2f'", "the judges extra (L2F)", ".venv/bin/pip install -e '.[judges]'"),
    ("'foundation_policy'", "the judges extra (RAPTOR's policy)",
     ".venv/bin/pip install -e '.[judges]'"),
    ("EGL", "Mesa EGL (headless rendering)", "sudo sim/install_headless_gl.sh"),
    ("arm-none-eabi-gcc", "the Arm toolchain", "sudo firmware/install_toolchain.sh"),
    ("qemu-system-arm", "the Arm toolchain", "sudo firmware/install_toolchain.sh"),
    ("compiler gcc", "a host C compiler", "sudo apt-get install gcc"),
    ("CUDA", "a CUDA GPU", "run on a machine with an NVIDIA GPU and a CUDA build of torch"),
    ("numba has fewer than 2 threads", "2 numba threads", "NUMBA_NUM_THREADS=2 make test (needs 2 cores)"),
)
# Isaac Lab is an opt-in even in CI: its venv (torch 2.11 with CUDA libraries) is ~8 GB and takes minutes to
# install, so `make test-isaac` runs those tests in their own venv (README "Isaac Lab"). The real Crazyflie
# firmware is a git clone (with submodules), which CI cannot make: no network beyond the package registries.
ALLOWED_IN_CI = ("a CUDA GPU", "Isaac Lab (opt-in: an 8 GB Python 3.12 venv)", "a crazyflie-firmware checkout (opt-in)")
_skipped: list[str] = []


def in_ci() -> bool:
    """Whether ``CI`` is set to a true value (GitHub Actions, GitLab and most services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def cause(reason: str) -> tuple[str, str | None]:
    """(what is missing, command that enables it) for a skip reason; unknown reasons come back verbatim."""
    for needle, what, command in CAUSES:
        if needle in reason:
            return what, command
    return reason, None


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _police(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    what, command = cause(reason)
    if in_ci() and what not in ALLOWED_IN_CI:
        report.outcome = "failed"
        report.longrepr = (f"CI=true: this test may not skip ({reason})"
                           + (f"; enable it with: {command}" if command else ""))
    else:
        _skipped.append(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    _police(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    _police(outcome.get_result())  # a module that skips itself at import (allow_module_level=True)


def summary_line(reasons: list[str]) -> str:
    """The one end-of-run line: what was skipped, by cause, and the command that enables each cause."""
    policy = " (CI=true: any other skip fails the run)" if in_ci() else ""
    if not reasons:
        return "robot-rl tests: nothing skipped" + policy
    groups: Counter[tuple[str, str | None]] = Counter(cause(r) for r in reasons)
    parts = [f"{n} {'needs' if n == 1 else 'need'} {what}" + (f" (enable: {command})" if command else "")
             for (what, command), n in groups.most_common()]
    return f"robot-rl tests: {len(reasons)} skipped: " + "; ".join(parts) + policy


def pytest_unconfigure(config: pytest.Config) -> None:
    # after pytest's own summary line, so that it is the last line of `make test`
    if getattr(config, "workerinput", None) is not None:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(summary_line(_skipped))
    _skipped.clear()
