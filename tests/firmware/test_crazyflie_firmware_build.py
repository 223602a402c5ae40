"""The Crazyflie app built by the real crazyflie-firmware's out-of-tree make (opt-in: ``CRAZYFLIE_BASE``).

The other firmware tests compile the app against stand-in headers. This one hands ``firmware/crazyflie`` to a
real firmware checkout (``git clone --recursive https://github.com/bitcraze/crazyflie-firmware``), whose
``tools/make/oot.mk`` builds and links the whole image with the firmware's own flags (``-Os -Werror``) and
Kconfig: the app's calls and types must match what that firmware really declares. CI cannot clone it (no network
beyond the package registries), so the module skips unless ``CRAZYFLIE_BASE`` names a checkout::

    CRAZYFLIE_BASE=~/crazyflie-firmware .venv/bin/python -m pytest tests/firmware/test_crazyflie_firmware_build.py
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.export.c_export import export_c
from deploy.export.sample_policies import quadrotor_export
from tests.deploy.recurrent_export import make_recurrent_export

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
BASE = Path(os.environ.get("CRAZYFLIE_BASE", "/nonexistent")).expanduser()
SKIP_REASON = "needs a crazyflie-firmware checkout (opt-in: CRAZYFLIE_BASE=<path to crazyflie-firmware>)"

if not (BASE / "tools" / "make" / "oot.mk").is_file():
    pytest.skip(SKIP_REASON, allow_module_level=True)
if shutil.which("arm-none-eabi-gcc") is None:
    pytest.skip("arm-none-eabi-gcc not found", allow_module_level=True)


def build(tmp_path: Path, export_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """``make -C firmware/crazyflie`` on a copy of the app (the build writes ``gen/`` and ``build/`` there)."""
    app = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, app, ignore=shutil.ignore_patterns("gen", "build"))
    return subprocess.run(["make", "-C", str(app / "crazyflie"), f"POLICY={export_dir / 'c'}",
                           f"CRAZYFLIE_BASE={BASE}", f"-j{os.cpu_count() or 1}", *extra],
                          capture_output=True, text=True)


def symbols(elf: Path) -> dict[str, str]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: parts[1] for parts in map(str.split, out.splitlines()) if len(parts) == 3}


def autoconf(tmp_path: Path) -> str:
    return (tmp_path / "firmware" / "crazyflie" / "build" / "include" / "generated" / "autoconf.h").read_text()


@pytest.mark.parametrize("kind", ["mlp", "int8", "gru"])
def test_app_builds_and_links_into_the_real_firmware(tmp_path, kind):
    d = tmp_path / "export"
    if kind == "gru":
        make_recurrent_export(d, hidden=32)
    else:
        quadrotor_export(d, hidden=(64, 64))
    export_c(d, out_dir=d / "c", quantize="int8" if kind == "int8" else None)
    r = build(tmp_path, d)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert re.search(r"^Flash \|", r.stdout, re.M), r.stdout[-2000:]  # the firmware's size report: it linked
    sym = symbols(tmp_path / "firmware" / "crazyflie" / "build" / "cf2.elf")
    # the firmware's out-of-tree controller hooks are ours, and the policy is in the image
    for name in ("controllerOutOfTreeInit", "controllerOutOfTreeTest", "controllerOutOfTree", "rlp_policy",
                 "rlp_policy_forward", "rlp_policy_self_test"):
        assert sym.get(name) in ("T", "t", "D", "d", "R", "r"), name
    assert ("rlp_policy_commit" in sym) == (kind == "gru")
    config = autoconf(tmp_path)
    # app-config reaches the firmware's Kconfig: the app and the OOT controller on, battery compensation off
    assert "#define CONFIG_CONTROLLER_OOT 1" in config and "#define CONFIG_APP_ENABLE 1" in config
    assert "CONFIG_ENABLE_THRUST_BAT_COMPENSATED" not in config


def test_a_policy_above_the_time_budget_does_not_build(tmp_path):
    d = tmp_path / "export"
    quadrotor_export(d, hidden=(128, 128))  # 128 * 146 + 128 * 128 + 128 * 4 = 35,584 MACs > 24,000
    export_c(d, out_dir=d / "c")
    r = build(tmp_path, d)
    assert r.returncode != 0
    assert "RLP_CF_MAX_MACS" in r.stdout + r.stderr
