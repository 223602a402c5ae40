"""numba's cache after a callee in another module changes: stale without ``drop_stale_numba_cache``, fresh with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.numba_cache import drop_stale_numba_cache, sources_fingerprint

ROOT = Path(__file__).resolve().parents[2]

CALLER = """from numba import njit
from {pkg}.callee import value

@njit(cache=True)
def caller():
    return value() + 1
"""
CALLEE = """from numba import njit

@njit(cache=True)
def value():
    return {value}
"""
INIT_CHECKED = """from pathlib import Path
from sim.numba_cache import drop_stale_numba_cache
drop_stale_numba_cache(Path(__file__).parent)
"""


def _package(tmp: Path, name: str, init: str) -> Path:
    pkg = tmp / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init)
    (pkg / "caller.py").write_text(CALLER.format(pkg=name))
    (pkg / "callee.py").write_text(CALLEE.format(value=10))
    return pkg


def _run(tmp: Path, name: str) -> int:
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}", "ROBOT_RL_CACHE_DIR": str(tmp / "cache"),
           "NUMBA_NUM_THREADS": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", f"from {name}.caller import caller; print(caller())"], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def _edit_callee(pkg: Path) -> None:
    path = pkg / "callee.py"
    path.write_text(CALLEE.format(value=20))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new time even on a coarse-grained clock


def test_an_edited_callee_reaches_the_caller_only_with_the_check(tmp_path: Path) -> None:
    plain = _package(tmp_path, "plain_pkg", "")
    checked = _package(tmp_path, "checked_pkg", INIT_CHECKED)
    assert _run(tmp_path, "plain_pkg") == 11 and _run(tmp_path, "checked_pkg") == 11
    assert list((plain / "__pycache__").glob("caller.caller-*.nbi")), "numba did not cache the caller"
    _edit_callee(plain)
    _edit_callee(checked)
    # numba checks only the caller's own file: the plain package runs the old callee (the hazard this guards)
    assert _run(tmp_path, "plain_pkg") == 11
    assert _run(tmp_path, "checked_pkg") == 21
    assert _run(tmp_path, "checked_pkg") == 21  # and the recompiled kernel is cached and reused


def test_the_fingerprint_follows_sources_and_the_cache_folder_setting(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _package(tmp_path, "fp_pkg", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    before = sources_fingerprint((pkg,))
    assert sources_fingerprint((pkg,)) == before
    _edit_callee(pkg)
    edited = sources_fingerprint((pkg,))
    assert edited != before
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert sources_fingerprint((pkg,)) != edited


def test_the_record_skips_a_second_drop_and_an_unwritable_record_warns(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _package(tmp_path, "rec_pkg", "")
    monkeypatch.setenv("ROBOT_RL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    cached = pkg / "__pycache__" / "caller.caller-5.py311.nbi"
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert drop_stale_numba_cache(pkg) and not cached.exists()
    cached.write_bytes(b"x")
    assert not drop_stale_numba_cache(pkg) and cached.exists()
    _edit_callee(pkg)
    assert drop_stale_numba_cache(pkg) and not cached.exists()
    (tmp_path / "blocked").write_text("")  # a file where the record's folder should be
    monkeypatch.setenv("ROBOT_RL_CACHE_DIR", str(tmp_path / "blocked"))
    with pytest.warns(UserWarning, match="recompile at every import"):
        assert drop_stale_numba_cache(pkg)
