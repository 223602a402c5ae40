"""Checkpoints: tensors in safetensors (modules, optimiser state, RNG, replay buffer) + JSON metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from robot_rl.io import atomic_write_bytes, atomic_write_json


def optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{name}.state.{idx}.{k}"] = torch.as_tensor(v).clone()
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    prefix = f"{name}.state."
    for key, v in tensors.items():
        if key.startswith(prefix):
            idx, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``<path>.safetensors`` and ``<path>.json`` atomically (tensors first, then the JSON that names them)."""
    path = Path(path)
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path.with_suffix(".safetensors"), st_save(contiguous))
    atomic_write_json(path.with_suffix(".json"), meta)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    st, js = path.with_suffix(".safetensors"), path.with_suffix(".json")
    if not st.is_file() or not js.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (need {st.name} and {js.name})")
    return st_load(st.read_bytes()), json.loads(js.read_text())
