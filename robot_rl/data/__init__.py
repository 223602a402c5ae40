"""Demonstration datasets in LeRobot's dataset format (v3.0): writer, loader, per-feature statistics."""

from robot_rl.data.lerobot_format import CODEBASE_VERSION, DatasetFormatError, infer_features
from robot_rl.data.lerobot_reader import DemoDataset, load_dataset
from robot_rl.data.lerobot_writer import write_dataset

__all__ = [
    "CODEBASE_VERSION",
    "DatasetFormatError",
    "DemoDataset",
    "infer_features",
    "load_dataset",
    "write_dataset",
]
