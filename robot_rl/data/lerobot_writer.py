"""Write demonstration episodes as a LeRobot dataset (codebase v3.0), atomically.

The whole dataset is built in a hidden temporary folder beside ``out_dir`` and renamed into place at the end,
so a crash or a bad episode leaves no half-written dataset behind (and, with ``overwrite=True``, the old one
intact until the new one is complete).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_rl.data import stats as stats_mod
from robot_rl.data.lerobot_format import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_IN_MB,
    DATA_PATH_TEMPLATE,
    INDEX_FEATURES,
    INFO_PATH,
    STAT_KEYS,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_FILES_SIZE_IN_MB,
    DatasetFormatError,
    check_features,
    data_file_path,
    episode_arrays,
    episodes_file_path,
    infer_features,
    next_file,
)

_ARROW = {"float32": pa.float32(), "float64": pa.float64(), "int32": pa.int32(), "int64": pa.int64(),
          "bool": pa.bool_()}


def write_dataset(
    out_dir: str | Path,
    episodes: Iterable[Mapping[str, Any]],
    *,
    fps: int,
    task: str | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    names: Mapping[str, list[str]] | None = None,
    robot_type: str | None = None,
    overwrite: bool = False,
    data_file_size_mb: float = DATA_FILES_SIZE_IN_MB,
) -> Path:
    """Write ``episodes`` to ``out_dir`` in LeRobot's v3.0 layout and return ``out_dir``.

    Each episode maps feature keys to per-frame arrays ``[T, n]`` (or ``[T]`` for scalars), e.g.
    ``observation.state``, ``action``, ``next.reward``, ``next.done``, ``next.success``, plus an optional
    ``"task"`` string that overrides ``task``. Every episode must hold the same keys. ``features``
    (``{key: {"dtype", "shape", "names"}}``) is inferred from the first episode when omitted, with
    per-dimension ``names`` if given. Episodes may be a generator: frames are streamed to parquet files of
    about ``data_file_size_mb`` each. Bad data (NaN/inf, empty episode, wrong dims, missing key) raises
    :class:`DatasetFormatError` naming the episode and feature; nothing is left on disk then.
    """
    out_dir = Path(out_dir)
    if fps <= 0:
        raise DatasetFormatError(f"{out_dir}: fps must be positive, got {fps}")
    if out_dir.exists() and not overwrite:
        raise DatasetFormatError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _Writer(tmp, fps, task, features, names, robot_type, data_file_size_mb).write(episodes, out_dir)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


class _Writer:
    def __init__(self, root, fps, task, features, names, robot_type, data_file_size_mb):
        self.root, self.fps, self.default_task, self.robot_type = root, int(fps), task, robot_type
        self.features = {k: _plain_spec(v) for k, v in features.items()} if features is not None else None
        self.names = names
        self.max_bytes = int(data_file_size_mb * 1024 * 1024)
        self.tasks: dict[str, int] = {}
        self.meta_rows: list[dict[str, Any]] = []
        self.ep_stats: list[dict[str, stats_mod.Stats]] = []
        self.chunk, self.file, self.file_bytes, self.writer = 0, 0, 0, None
        self.total_frames = 0

    def write(self, episodes: Iterable[Mapping[str, Any]], final_dir: Path) -> None:
        for ep_index, episode in enumerate(episodes):
            self._add_episode(ep_index, episode, final_dir)
        self._close_data_file()
        if not self.meta_rows:
            raise DatasetFormatError(f"{final_dir}: no episodes to write")
        self._write_meta()

    def _add_episode(self, ep_index: int, episode: Mapping[str, Any], final_dir: Path) -> None:
        where = f"{final_dir}: episode {ep_index}"
        if not isinstance(episode, Mapping):
            raise DatasetFormatError(f"{where}: expected a mapping of feature arrays, got {type(episode).__name__}")
        if self.features is None:
            self.features = infer_features(episode, self.names)
        check_features(self.features)
        arrays, length = episode_arrays(episode, self.features, where)
        task = episode.get("task", self.default_task)
        if not isinstance(task, str) or not task:
            raise DatasetFormatError(f"{where}: no task description (pass task= or an episode 'task' string)")
        task_index = self.tasks.setdefault(task, len(self.tasks))
        frame_index = np.arange(length, dtype=np.int64)
        arrays["timestamp"] = (frame_index / self.fps).astype(np.float32)[:, None]
        arrays["frame_index"] = frame_index[:, None]
        arrays["episode_index"] = np.full((length, 1), ep_index, dtype=np.int64)
        arrays["index"] = (self.total_frames + frame_index)[:, None]
        arrays["task_index"] = np.full((length, 1), task_index, dtype=np.int64)

        nbytes = sum(a.nbytes for a in arrays.values())
        if self.writer is not None and self.file_bytes + nbytes > self.max_bytes:
            self._close_data_file()
            self.chunk, self.file = next_file(self.chunk, self.file)
        table = self._table(arrays)
        if self.writer is None:
            path = self.root / data_file_path(self.chunk, self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, table.schema)
        self.writer.write_table(table)
        self.file_bytes += nbytes

        ep_stats = stats_mod.episode_stats(arrays)
        self.ep_stats.append(ep_stats)
        row: dict[str, Any] = {
            "episode_index": ep_index,
            "tasks": [task],
            "length": length,
            "data/chunk_index": self.chunk,
            "data/file_index": self.file,
            "dataset_from_index": self.total_frames,
            "dataset_to_index": self.total_frames + length,
        }
        for key, st in ep_stats.items():
            for name in STAT_KEYS:
                row[f"stats/{key}/{name}"] = st[name].tolist()
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        self.meta_rows.append(row)
        self.total_frames += length

    def _table(self, arrays: Mapping[str, np.ndarray]) -> pa.Table:
        specs = {**self.features, **INDEX_FEATURES}
        columns, fields = [], []
        for key, spec in specs.items():
            arr, typ = arrays[key], _ARROW[spec["dtype"]]
            n = int(spec["shape"][0])
            if n == 1:
                col = pa.array(arr[:, 0], type=typ)
            else:
                col = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1), type=typ), n)
            columns.append(col)
            fields.append(pa.field(key, col.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    def _close_data_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.file_bytes = None, 0

    def _write_meta(self) -> None:
        all_features = {**self.features, **INDEX_FEATURES}
        episodes_path = self.root / episodes_file_path(0, 0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_episodes_table(self.meta_rows, list(all_features)), episodes_path)
        pq.write_table(_tasks_table(self.tasks), self.root / TASKS_PATH)
        dataset_stats = stats_mod.aggregate_all(self.ep_stats)
        _write_json(self.root / STATS_PATH, stats_mod.to_json(dataset_stats))
        n_eps = len(self.meta_rows)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": n_eps,
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{n_eps}"},
            "data_path": DATA_PATH_TEMPLATE,
            "video_path": None,
            "features": all_features,
        }
        _write_json(self.root / INFO_PATH, info)


def _plain_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    names = spec.get("names")
    return {"dtype": spec.get("dtype"), "shape": [int(s) for s in spec.get("shape", [])],
            "names": list(names) if names is not None else None}


def _episodes_table(rows: list[dict[str, Any]], feature_keys: list[str]) -> pa.Table:
    fields = [pa.field("episode_index", pa.int64()), pa.field("tasks", pa.list_(pa.string())),
              pa.field("length", pa.int64()), pa.field("data/chunk_index", pa.int64()),
              pa.field("data/file_index", pa.int64()), pa.field("dataset_from_index", pa.int64()),
              pa.field("dataset_to_index", pa.int64())]
    for key in feature_keys:
        for name in STAT_KEYS:
            fields.append(pa.field(f"stats/{key}/{name}", pa.list_(pa.int64() if name == "count" else pa.float64())))
    fields += [pa.field("meta/episodes/chunk_index", pa.int64()), pa.field("meta/episodes/file_index", pa.int64())]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)


def _tasks_table(tasks: Mapping[str, int]) -> pa.Table:
    # LeRobot writes this with pandas (`DataFrame.to_parquet`): the task string is the frame's index, stored as
    # the column `__index_level_0__` and declared in the pandas metadata so that `pd.read_parquet` restores it.
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema([pa.field("task_index", pa.int64()), pa.field("__index_level_0__", pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    ordered = sorted(tasks.items(), key=lambda kv: kv[1])
    return pa.Table.from_arrays([pa.array([i for _, i in ordered], pa.int64()),
                                 pa.array([t for t, _ in ordered], pa.string())], schema=schema)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4) + "\n")


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` over ``out_dir``; an existing ``out_dir`` is moved aside first, then removed."""
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    os.chmod(tmp, 0o755)
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
