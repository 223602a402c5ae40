"""Per-feature statistics as LeRobot computes them (`lerobot/datasets/compute_stats.py`).

Per episode and per dimension: min, max, mean, std (population), count (frames) and the quantiles q01, q10,
q50, q90, q99. Dataset statistics aggregate the episodes' as LeRobot does: min of mins, max of maxes,
count-weighted mean, pooled variance (within + between episodes, so mean and std equal those of all frames
together), count-weighted average of the episodes' quantiles.

Two deliberate differences, both within LeRobot's own approximation: sums run in float64 (LeRobot keeps float32
data in float32), and quantiles are exact inverse-CDF order statistics where LeRobot reads them off a
5000-bin histogram (the two agree to one bin, (max - min) / 5000).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from robot_rl.data.lerobot_format import QUANTILE_KEYS, QUANTILES

Stats = dict[str, np.ndarray]


def feature_stats(values: np.ndarray) -> Stats:
    """Statistics of one feature over one episode; ``values`` is ``[T, n]`` with T >= 1."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"feature_stats expects [T>=1, n], got shape {x.shape}")
    stats: Stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(x, QUANTILES, axis=0, method="inverted_cdf")
    for key, q in zip(QUANTILE_KEYS, qs, strict=True):
        stats[key] = np.asarray(q, dtype=np.float64)
    return stats


def episode_stats(arrays: Mapping[str, np.ndarray]) -> dict[str, Stats]:
    """Statistics of every feature of one episode (``{key: [T, n]}``)."""
    return {key: feature_stats(arr) for key, arr in arrays.items()}


def aggregate(stats_list: Sequence[Stats]) -> Stats:
    """Combine one feature's statistics over episodes (LeRobot's ``aggregate_feature_stats``)."""
    if not stats_list:
        raise ValueError("aggregate needs at least one episode's statistics")
    counts = np.array([float(s["count"][0]) for s in stats_list])[:, None]
    total = counts.sum()
    means = np.stack([s["mean"] for s in stats_list])
    variances = np.stack([s["std"] for s in stats_list]) ** 2
    mean = (means * counts).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * counts).sum(axis=0) / total
    out: Stats = {
        "min": np.min(np.stack([s["min"] for s in stats_list]), axis=0),
        "max": np.max(np.stack([s["max"] for s in stats_list]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([int(total)], dtype=np.int64),
    }
    for key in QUANTILE_KEYS:
        out[key] = (np.stack([s[key] for s in stats_list]) * counts).sum(axis=0) / total
    return out


def aggregate_all(per_episode: Sequence[Mapping[str, Stats]]) -> dict[str, Stats]:
    """Dataset statistics from every episode's ``{key: Stats}``."""
    keys = list(per_episode[0]) if per_episode else []
    return {key: aggregate([ep[key] for ep in per_episode]) for key in keys}


def to_json(stats: Mapping[str, Stats]) -> dict[str, dict[str, list]]:
    """``stats.json`` content: plain lists (count as integers)."""
    return {key: {name: np.asarray(v).tolist() for name, v in s.items()} for key, s in stats.items()}


def from_json(obj: Mapping[str, Mapping[str, list]]) -> dict[str, Stats]:
    return {key: {name: np.asarray(v) for name, v in s.items()} for key, s in obj.items()}
