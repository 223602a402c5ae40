"""Facts of LeRobot's dataset layout, codebase version v3.0 (read from huggingface/lerobot, `lerobot/datasets/`).

A dataset is a folder::

    meta/info.json                              codebase_version, fps, features {key: {dtype, shape, names}}, ...
    meta/stats.json                             per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/tasks.parquet                          one row per task: index = task string, column task_index
    meta/episodes/chunk-000/file-000.parquet    one row per episode: length, tasks, data file, row range, stats/...
    data/chunk-000/file-000.parquet             one row per frame: the features + timestamp, frame_index,
                                                episode_index, index, task_index; many episodes per file

A feature of shape ``(1,)`` is a scalar parquet column, a feature of shape ``(n,)`` a fixed-size list column.
Frame conventions (LeRobot's): ``action[t]`` is taken at ``observation.*[t]``; ``next.reward[t]``,
``next.done[t]`` and ``next.success[t]`` describe the transition that action leads to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILES_SIZE_IN_MB = 100  # a data file is closed once it holds this much (LeRobot's default)
VIDEO_FILES_SIZE_IN_MB = 200  # written to info.json for LeRobot; these datasets hold no video

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
DATA_DIR = "data"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH_TEMPLATE = DATA_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH_TEMPLATE = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)

# Columns every frame carries; the writer fills them, callers never pass them.
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
SUPPORTED_DTYPES = ("float32", "float64", "int32", "int64", "bool")


class DatasetFormatError(ValueError):
    """A dataset (or data handed to the writer) breaks the format; the message names the file and episode."""


def data_file_path(chunk_index: int, file_index: int) -> str:
    return DATA_PATH_TEMPLATE.format(chunk_index=chunk_index, file_index=file_index)


def episodes_file_path(chunk_index: int, file_index: int) -> str:
    return EPISODES_PATH_TEMPLATE.format(chunk_index=chunk_index, file_index=file_index)


def next_file(chunk_index: int, file_index: int) -> tuple[int, int]:
    """The (chunk, file) after this one: LeRobot fills a chunk folder with CHUNKS_SIZE files, then opens the next."""
    return (chunk_index + 1, 0) if file_index == CHUNKS_SIZE - 1 else (chunk_index, file_index + 1)


def infer_features(
    episode: Mapping[str, Any], names: Mapping[str, list[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """Feature specs ``{key: {"dtype", "shape", "names"}}`` from one episode's arrays ``[T, *shape]``.

    ``names`` gives per-dimension names (LeRobot shows them in its tools; give them for state and action).
    The key ``"task"`` (a string) is not a feature. 0-d per-frame values (arrays ``[T]``) become shape ``(1,)``.
    """
    names = dict(names or {})
    features: dict[str, dict[str, Any]] = {}
    for key, value in episode.items():
        if key == "task":
            continue
        arr = np.asarray(value)
        if arr.ndim == 0:
            raise DatasetFormatError(f"feature '{key}': expected an array [T, ...] per episode, got a scalar")
        shape = [1] if arr.ndim == 1 else list(arr.shape[1:])
        dtype = _dtype_name(key, arr.dtype)
        feature_names = names.pop(key, None)
        if feature_names is not None and (len(shape) != 1 or len(feature_names) != shape[0]):
            raise DatasetFormatError(f"feature '{key}': {len(feature_names)} names for shape {tuple(shape)}")
        features[key] = {"dtype": dtype, "shape": shape, "names": list(feature_names) if feature_names else None}
    if names:
        raise DatasetFormatError(f"names given for keys the episode does not have: {sorted(names)}")
    return features


def _dtype_name(key: str, dtype: np.dtype) -> str:
    if dtype == np.bool_:
        return "bool"
    if np.issubdtype(dtype, np.floating):
        return "float64" if dtype == np.float64 else "float32"
    if np.issubdtype(dtype, np.integer):
        return "int64"
    raise DatasetFormatError(f"feature '{key}': dtype {dtype} is not one of {SUPPORTED_DTYPES}")


def check_features(features: Mapping[str, Mapping[str, Any]]) -> None:
    """Reject specs LeRobot would misread or this writer cannot store (one-dimensional numeric features only)."""
    if "action" not in features:
        raise DatasetFormatError("features: a demonstration dataset needs an 'action' feature")
    for key, ft in features.items():
        if key in INDEX_FEATURES or key == "task":
            raise DatasetFormatError(f"feature '{key}' is written by the writer itself; do not pass it")
        if ft.get("dtype") not in SUPPORTED_DTYPES:
            raise DatasetFormatError(f"feature '{key}': dtype {ft.get('dtype')!r} not in {SUPPORTED_DTYPES}")
        shape = list(ft.get("shape", []))
        if len(shape) != 1 or int(shape[0]) < 1:
            raise DatasetFormatError(f"feature '{key}': shape {shape} is not one-dimensional ([n], n >= 1)")
        names = ft.get("names")
        if names is not None and len(names) != shape[0]:
            raise DatasetFormatError(f"feature '{key}': {len(names)} names for shape {shape}")


def episode_arrays(
    episode: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]], where: str
) -> tuple[dict[str, np.ndarray], int]:
    """The episode's feature arrays as ``[T, n]`` in the declared dtype, checked; ``where`` names it in errors."""
    missing = [k for k in features if k not in episode]
    extra = [k for k in episode if k not in features and k != "task"]
    if missing or extra:
        raise DatasetFormatError(f"{where}: missing features {missing}, unexpected keys {extra}")
    arrays: dict[str, np.ndarray] = {}
    length = None
    for key, ft in features.items():
        raw = np.asarray(episode[key])
        n = int(ft["shape"][0])
        arr = raw.reshape(-1, 1) if (raw.ndim == 1 and n == 1) else raw
        if arr.ndim != 2 or arr.shape[1] != n:
            raise DatasetFormatError(f"{where}: feature '{key}' has shape {raw.shape}, expected [T, {n}]")
        if length is None:
            length = arr.shape[0]
        elif arr.shape[0] != length:
            raise DatasetFormatError(f"{where}: feature '{key}' has {arr.shape[0]} frames, others have {length}")
        check_finite(arr, where, key)
        arrays[key] = arr.astype(ft["dtype"], copy=False)
    if not length:
        raise DatasetFormatError(f"{where}: empty episode (0 frames)")
    return arrays, length


def check_finite(arr: np.ndarray, where: str, key: str) -> None:
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            frame = int(np.argwhere(bad)[0][0])
            raise DatasetFormatError(f"{where}: feature '{key}' is not finite (NaN/inf) at frame {frame}")
