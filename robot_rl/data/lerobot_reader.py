"""Load a LeRobot v3.0 dataset of low-dimensional features back as numpy arrays per episode, checked.

Torch-free and independent of the `lerobot` package: training code gets ``[T, n]`` arrays per episode and the
dataset statistics (for normalisation); any inconsistency raises :class:`DatasetFormatError` in one line naming
the file, and the episode where there is one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_rl.data import stats as stats_mod
from robot_rl.data.lerobot_format import (
    CODEBASE_VERSION,
    EPISODES_DIR,
    INDEX_FEATURES,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    DatasetFormatError,
    check_finite,
)


@dataclass
class DemoDataset:
    """A loaded dataset: ``episodes[i][key]`` is ``[T_i, n]`` (index columns included, as ``[T_i, 1]``)."""

    root: Path
    fps: int
    features: dict[str, dict[str, Any]]
    episodes: list[dict[str, np.ndarray]]
    stats: dict[str, dict[str, np.ndarray]]
    tasks: list[str]
    episode_tasks: list[str] = field(default_factory=list)
    robot_type: str | None = None

    @property
    def num_frames(self) -> int:
        return sum(len(ep["frame_index"]) for ep in self.episodes)

    def concat(self, key: str) -> np.ndarray:
        """One feature over all episodes, frames in dataset order: ``[num_frames, n]``."""
        return np.concatenate([ep[key] for ep in self.episodes], axis=0)


def load_dataset(root: str | Path, keys: Iterable[str] | None = None) -> DemoDataset:
    """Load the dataset at ``root`` (written by :func:`robot_rl.data.write_dataset` or by LeRobot).

    ``keys`` restricts the features loaded (index columns always come along). Only numeric features of
    shape ``(n,)`` are supported; image and video features raise an error naming them.
    """
    root = Path(root)
    info = _read_json(root, INFO_PATH)
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetFormatError(f"{root / INFO_PATH}: codebase_version {version!r}, this loader reads "
                                 f"{CODEBASE_VERSION!r}")
    features: dict[str, dict[str, Any]] = info.get("features") or {}
    wanted = [k for k in features if k not in INDEX_FEATURES] if keys is None else list(keys)
    for key in wanted:
        if key not in features:
            raise DatasetFormatError(f"{root / INFO_PATH}: no feature '{key}' (has {sorted(features)})")
        ft = features[key]
        if ft.get("dtype") in ("image", "video") or len(ft.get("shape", [])) != 1:
            raise DatasetFormatError(f"{root / INFO_PATH}: feature '{key}' ({ft.get('dtype')}, shape "
                                     f"{ft.get('shape')}) is not a low-dimensional vector")
    columns = [*wanted, *INDEX_FEATURES]
    stats = stats_mod.from_json(_read_json(root, STATS_PATH))
    tasks = _read_tasks(root)
    meta = _read_episode_meta(root)
    if len(meta) != info.get("total_episodes"):
        raise DatasetFormatError(f"{root / INFO_PATH}: total_episodes {info.get('total_episodes')} but "
                                 f"{len(meta)} episodes in {EPISODES_DIR}")
    data_path = info.get("data_path", "")
    cache: dict[str, dict[str, np.ndarray]] = {}
    episodes, episode_tasks = [], []
    for row in meta:
        rel = data_path.format(chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))
        if rel not in cache:
            cache = {rel: _read_data_file(root, rel, columns, features)}  # files are visited in order
        episodes.append(_slice_episode(root, rel, cache[rel], row, columns, features))
        episode_tasks.append((row.get("tasks") or [""])[0])
    return DemoDataset(root=root, fps=int(info["fps"]), features=features, episodes=episodes, stats=stats,
                       tasks=tasks, episode_tasks=episode_tasks, robot_type=info.get("robot_type"))


def _read_json(root: Path, rel: str) -> dict[str, Any]:
    path = root / rel
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing (is {root} a LeRobot v3.0 dataset?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path}: not valid JSON ({err})") from None


def _read_table(path: Path, root: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing (referenced by {root / EPISODES_DIR})")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise DatasetFormatError(f"{path}: unreadable parquet ({str(err).splitlines()[0]})") from None


def _read_tasks(root: Path) -> list[str]:
    table = _read_table(root / TASKS_PATH, root)
    name = "__index_level_0__" if "__index_level_0__" in table.column_names else "task"
    if name not in table.column_names or "task_index" not in table.column_names:
        raise DatasetFormatError(f"{root / TASKS_PATH}: needs columns task_index and the task string")
    order = np.argsort(table.column("task_index").to_numpy())
    return [table.column(name).to_pylist()[i] for i in order]


def _read_episode_meta(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetFormatError(f"{root / EPISODES_DIR}: no episode metadata files")
    rows: list[dict[str, Any]] = []
    keep = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
            "dataset_to_index"]
    for path in files:
        table = _read_table(path, root)
        missing = [c for c in keep if c not in table.column_names]
        if missing:
            raise DatasetFormatError(f"{path}: missing columns {missing}")
        rows.extend(table.select(keep).to_pylist())
    rows.sort(key=lambda r: r["episode_index"])
    for i, row in enumerate(rows):
        if row["episode_index"] != i:
            raise DatasetFormatError(f"{files[0].parent.parent}: episode indices are not 0..N-1 (found "
                                     f"{row['episode_index']} at position {i})")
    return rows


def _read_data_file(root: Path, rel: str, columns: list[str], features: dict) -> dict[str, np.ndarray]:
    path = root / rel
    table = _read_table(path, root)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DatasetFormatError(f"{path}: missing columns {missing}")
    out = {}
    for key in columns:
        n = int(features[key]["shape"][0])
        col = table.column(key).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
            lengths = col.value_lengths().to_numpy(zero_copy_only=False)
            if len(lengths) and (lengths != n).any():
                bad = int(np.argmax(lengths != n))
                raise DatasetFormatError(f"{path}: feature '{key}' row {bad} has {lengths[bad]} values, "
                                         f"info.json says shape [{n}]")
            values = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
        elif n == 1:
            values = col.to_numpy(zero_copy_only=False).reshape(-1, 1)
        else:
            raise DatasetFormatError(f"{path}: feature '{key}' is a scalar column, info.json says shape [{n}]")
        out[key] = values.astype(features[key]["dtype"], copy=False)
    return out


def _slice_episode(root: Path, rel: str, data: dict[str, np.ndarray], row: dict[str, Any], columns: list[str],
                   features: dict) -> dict[str, np.ndarray]:
    path, ep = root / rel, int(row["episode_index"])
    where = f"{path}: episode {ep}"
    ep_col = data["episode_index"][:, 0]
    rows = np.flatnonzero(ep_col == ep)
    length = int(row["length"])
    if len(rows) != length:
        raise DatasetFormatError(f"{where}: {len(rows)} frames in the data file, metadata says {length}")
    if length == 0:
        raise DatasetFormatError(f"{where}: empty episode (0 frames)")
    episode = {key: data[key][rows] for key in columns}
    if not np.array_equal(episode["frame_index"][:, 0], np.arange(length)):
        raise DatasetFormatError(f"{where}: frame_index is not 0..{length - 1}")
    global_index = episode["index"][:, 0]
    if global_index[0] != row["dataset_from_index"] or global_index[-1] != row["dataset_to_index"] - 1:
        raise DatasetFormatError(f"{where}: index runs {global_index[0]}..{global_index[-1]}, metadata says "
                                 f"{row['dataset_from_index']}..{row['dataset_to_index'] - 1}")
    for key in columns:
        check_finite(episode[key], where, key)
    return episode
