"""Small matplotlib helpers shared by the demo and evaluation reports (headless, Agg backend)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def quat_to_euler_deg(q: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (deg, ZYX convention) from quaternions ``[..., 4]`` (w, x, y, z)."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.degrees(np.stack((roll, pitch, yaw), axis=-1))


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write a figure atomically (temp file + rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def plot_trajectories(states: list[torch.Tensor | np.ndarray], labels: list[str], dt: float, title: str,
                      path: Path) -> Path:
    """Position and attitude over time for a few episodes; each state array is ``[T, >=7]``."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 6), sharex=True)
    names = (("x", "y", "z"), ("roll", "pitch", "yaw"))
    for s, label in zip(states, labels, strict=True):
        s = np.asarray(s.cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float64)
        t = np.arange(len(s)) * dt
        euler = quat_to_euler_deg(s[:, 3:7])
        for j in range(3):
            axes[0, j].plot(t, s[:, j], label=label, lw=1)
            axes[1, j].plot(t, euler[:, j], label=label, lw=1)
    for row, unit in ((0, "m"), (1, "deg")):
        for j in range(3):
            axes[row, j].set_ylabel(f"{names[row][j]} [{unit}]")
            axes[row, j].grid(alpha=0.3)
            axes[1, j].set_xlabel("time [s]")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path)
