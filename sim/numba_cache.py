"""Numba's on-disk kernel cache, dropped when any source it could have compiled from changes.

numba keys a cached kernel on its own file's modification time and size only. A kernel that calls a kernel of
another module (``sim/arm/pick.py`` -> ``sim/arm/kinematics.py``, the TD3 kernels -> ``robot_rl/models/_blas.py``)
or reads another module's constants (frozen into the machine code) keeps running the old callee after that
module's file changes (a ``git pull``, a branch switch), with no error. :func:`drop_stale_numba_cache` runs when a
package is imported: it fingerprints the package's sources (and those of the packages it imports kernels from)
by path, size and modification time, and when the fingerprint differs from the one recorded at the last import,
deletes numba's cache files for every folder of the package before any kernel is compiled or loaded. The cost
is a recompilation after a change (what numba would do for the changed file anyway), ~1 ms per import otherwise.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path


def cache_root() -> Path:
    """robot-rl's own cache folder: ``$ROBOT_RL_CACHE_DIR``, else ``~/.cache/robot_rl``."""
    return Path(os.environ.get("ROBOT_RL_CACHE_DIR") or Path.home() / ".cache" / "robot_rl")


def _sources(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def sources_fingerprint(packages: tuple[Path, ...]) -> str:
    """Path, size and modification time of every ``*.py`` under ``packages``, and the numba cache folder setting
    (a different ``NUMBA_CACHE_DIR`` holds other cache files)."""
    rows = [f"NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR', '')}"]
    for package in packages:
        for path in _sources(package):
            try:
                st = path.stat()
            except FileNotFoundError:  # removed since the listing (a checkout in progress)
                continue
            rows.append(f"{path} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(rows) + "\n"


def _numba_cache_dirs(package: Path) -> set[Path]:
    """The folders numba caches the kernels of ``package``'s files in: its own locators, in its own order."""
    from numba.core import caching

    locators = getattr(getattr(caching, "CacheImpl", None), "_locator_classes", None)
    if locators is None:  # a numba without this (private) list: its default, the folder's __pycache__
        warnings.warn("numba.core.caching.CacheImpl._locator_classes is gone: dropping only __pycache__ caches",
                      stacklevel=3)
        return {p.parent / "__pycache__" for p in _sources(package)}

    def probe() -> None:  # a function defined nowhere in particular: the locators read only its line number
        pass

    dirs = set()
    for folder in sorted({p.parent for p in _sources(package)}):
        source = str(next(folder.glob("*.py")))
        for locator_class in locators:
            locator = locator_class.from_function(probe, source)
            if locator is not None:
                dirs.add(Path(locator.get_cache_path()))
                break
    return dirs


def drop_stale_numba_cache(package: Path, imports_from: tuple[Path, ...] = ()) -> bool:
    """Delete numba's cache files of ``package`` if its sources or ``imports_from``'s changed since the last
    call recorded them; returns whether it deleted. The record is one file per package folder under
    :func:`cache_root`; where it cannot be written the cache is dropped at every import (slow, never stale)."""
    package = package.resolve()
    current = sources_fingerprint((package, *(p.resolve() for p in imports_from)))
    stamp = cache_root() / "numba_sources" / f"{package.name}-{hashlib.sha1(str(package).encode()).hexdigest()[:12]}"
    try:
        if stamp.read_text() == current:
            return False
    except OSError:
        pass
    for folder in _numba_cache_dirs(package):
        for path in (*folder.glob("*.nbi"), *folder.glob("*.nbc")):
            path.unlink(missing_ok=True)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(current)
        os.replace(tmp, stamp)
    except OSError as e:
        warnings.warn(f"cannot record the numba cache's sources ({e}): {package.name}'s kernels recompile at "
                      "every import; set ROBOT_RL_CACHE_DIR to a writable folder", stacklevel=2)
    return True
