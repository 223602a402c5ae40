"""tests/skip_policy.py in a child pytest: skips fail under CI=true (except for missing hardware), and one
end-of-run line names what was skipped and how to enable it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="needs arm-none-eabi-gcc, qemu-system-arm (run firmware/install_toolchain.sh)")
def test_firmware():
    pass

def test_ros():
    pytest.skip(".venv-ros missing: run bash deploy/ros2/make_venv.sh")

@pytest.mark.skip(reason="no CUDA GPU on this machine")
def test_gpu():
    pass

@pytest.mark.xfail(reason="an expected failure is not a skip")
def test_expected_failure():
    assert False
'''


def child_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.skip_policy", "-p", "no:cacheprovider",
                           "-q", "-rA", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_skips_pass_locally_and_end_with_one_line_naming_the_enabling_commands(tmp_path):
    out = child_pytest(tmp_path, ci=None)
    assert out.returncode == 0, out.stdout
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("robot-rl tests: 3 skipped: ")
    assert "1 needs the Arm toolchain (enable: sudo firmware/install_toolchain.sh)" in last
    assert "1 needs the ROS 2 venv (enable: bash deploy/ros2/make_venv.sh)" in last
    assert "1 needs a CUDA GPU" in last


def test_under_ci_a_missing_toolchain_or_ros_venv_fails_the_run(tmp_path):
    out = child_pytest(tmp_path, ci="true")
    assert out.returncode == 1, out.stdout
    text = out.stdout
    assert "CI=true: this test may not skip (.venv-ros missing" in text
    assert "CI=true: this test may not skip (needs arm-none-eabi-gcc" in text
    assert "SKIPPED [1] test_sample.py" in text and "no CUDA GPU" in text  # no GPU in CI: still a skip
    assert "XFAIL" in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("robot-rl tests: 1 skipped: 1 needs a CUDA GPU") and "CI=true" in last


def test_ci_false_does_not_enforce(tmp_path):
    assert child_pytest(tmp_path, ci="false").returncode == 0
