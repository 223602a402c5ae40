"""robot-rl: learning (algorithms, networks, trainers) and the command-line interface."""

from pathlib import Path

import sim
from sim.numba_cache import drop_stale_numba_cache

__version__ = "0.1.0"

# robot_rl's kernels compile sim's (the env step inside the collection kernels)
drop_stale_numba_cache(Path(__file__).parent, imports_from=(Path(sim.__file__).parent,))
