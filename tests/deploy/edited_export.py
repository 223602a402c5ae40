"""Copies of an export whose ``policy.json`` is edited: what the runtime must refuse when the spec and the networks
(or the test vector) disagree."""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def edited_export(src: Path, dst: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """``src``'s networks and its ``policy.json`` after ``edit`` (which changes a copy in place) in ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for net in src.glob("*.onnx"):
        (dst / net.name).write_bytes(net.read_bytes())
    spec = copy.deepcopy(json.loads((src / "policy.json").read_text()))
    edit(spec)
    (dst / "policy.json").write_text(json.dumps(spec))
    return dst
