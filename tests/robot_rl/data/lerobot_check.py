"""Run in .venv-lerobot: load a dataset with LeRobot's own LeRobotDataset and dump what it returns.

Usage: python lerobot_check.py DATASET_DIR OUT.npz  (or --import-only). Writes, for every frame in LeRobot's
order, each numeric feature; LeRobot's episode table, tasks and meta.stats; and statistics recomputed from the
frames with LeRobot's compute_episode_stats + aggregate_stats, so the test can compare all of it with what
robot_rl.data wrote. Offline: a local root never touches the Hub.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def _stand_in_torchvision() -> None:
    # PyPI's torchvision wheels are CUDA builds that do not load on the CPU torch used here. LeRobot's dataset
    # module imports `torchvision.transforms` at module level but uses it only for image and video features,
    # which these datasets do not have; a stand-in package satisfies the import (and `datasets`' find_spec).
    stub = Path(tempfile.mkdtemp(prefix="tv-stand-in-")) / "torchvision"
    stub.mkdir()
    (stub / "__init__.py").write_text("from . import transforms  # noqa: F401\n")
    (stub / "transforms.py").write_text("")
    sys.path.insert(0, str(stub.parent))


def main() -> None:
    _stand_in_torchvision()
    import numpy as np
    from lerobot.datasets.compute_stats import aggregate_stats, compute_episode_stats
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if sys.argv[1:] == ["--import-only"]:
        print("lerobot dataset code imports")
        return
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    ds = LeRobotDataset("local/robot-rl-check", root=root)
    frames = [ds[i] for i in range(len(ds))]
    numeric = [k for k, ft in ds.meta.features.items() if ft["dtype"] not in ("image", "video", "string")]
    arrays = {f"frame/{k}": np.stack([np.atleast_1d(f[k].numpy()) for f in frames]) for k in numeric}
    tasks_per_frame = [f["task"] for f in frames]
    ep_stats = []
    for ep in range(ds.meta.total_episodes):
        lo, hi = int(ds.meta.episodes[ep]["dataset_from_index"]), int(ds.meta.episodes[ep]["dataset_to_index"])
        data = {k: arrays[f"frame/{k}"][lo:hi] for k in numeric}
        data = {k: (v[:, 0] if ds.meta.features[k]["shape"] == (1,) else v) for k, v in data.items()}
        ep_stats.append(compute_episode_stats(data, ds.meta.features))
    recomputed = aggregate_stats(ep_stats)
    for key, st in ds.meta.stats.items():
        for name, value in st.items():
            arrays[f"meta_stats/{key}/{name}"] = np.asarray(value, dtype=np.float64)
    for key, st in recomputed.items():
        for name, value in st.items():
            arrays[f"lerobot_stats/{key}/{name}"] = np.asarray(value, dtype=np.float64)
    summary = {
        "len": len(ds), "num_episodes": ds.num_episodes, "fps": ds.fps, "tasks_per_frame": tasks_per_frame,
        "tasks": {str(t): int(i) for t, i in zip(ds.meta.tasks.index, ds.meta.tasks["task_index"], strict=True)},
        "episode_lengths": [int(ds.meta.episodes[i]["length"]) for i in range(ds.meta.total_episodes)],
        "features": {k: {"dtype": ft["dtype"], "shape": list(ft["shape"])} for k, ft in ds.meta.features.items()},
    }
    np.savez(out, summary=json.dumps(summary), **arrays)
    print(f"lerobot loaded {len(ds)} frames in {ds.num_episodes} episodes")


if __name__ == "__main__":
    main()
