"""Run logging: ``metrics.csv`` (one row per log point) and TensorBoard events."""

from __future__ import annotations

import csv
import math
from pathlib import Path


class RunLogger:
    """Appends scalar rows to ``metrics.csv`` and mirrors them to TensorBoard (``tb/``)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns: list[str] | None = None
        if self.path.exists():
            with self.path.open() as f:
                header = f.readline().strip()
                self.columns = header.split(",") if header else None
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, step: int, row: dict[str, float]) -> None:
        row = {"env_steps": step, **{k: float(v) for k, v in row.items()}}
        new = [k for k in row if k not in (self.columns or [])]
        if new:  # a new column: rewrite the file with the wider header
            old = read_metrics(self.path.parent) if self.columns else {}
            self.columns = (self.columns or []) + new
            n = len(next(iter(old.values()))) if old else 0
            with self.path.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(self.columns)
                w.writerows([[old.get(c, [""] * n)[i] for c in self.columns] for i in range(n)])
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])
        if self.tb is not None:
            for k, v in row.items():
                if k != "env_steps" and not math.isnan(v):
                    self.tb.add_scalar(k, v, step)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run re-logs them)."""
        if not self.path.exists():
            return
        with self.path.open() as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        keep = [rows[0]] + [r for r in rows[1:] if r and float(r[0]) <= step]
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerows(keep)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> dict[str, list[float]]:
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    cols = rows[0].keys() if rows else []
    return {c: [float(r[c]) if r[c] not in ("", None) else math.nan for r in rows] for c in cols}
