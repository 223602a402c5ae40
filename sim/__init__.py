"""Batched environments and simulator backends (no dependency on robot_rl)."""

from pathlib import Path

from sim.numba_cache import drop_stale_numba_cache

drop_stale_numba_cache(Path(__file__).parent)
