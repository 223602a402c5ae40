"""The exported-policy contract (``policy.onnx`` + ``policy.json``), readable without torch.

``policy.json`` keys (format version 1):

* ``observation``: ordered list of ``{"name", "size", ...}`` components that concatenate to the ONNX input.
  Quadrotor names: ``position`` (3, world, position minus target, m), ``rotation_matrix`` (9, body-to-world,
  row-major), ``quaternion`` (4, w x y z), ``linear_velocity`` (3, world, m/s), ``angular_velocity``
  (3, body, rad/s), ``action_history`` (4*N, the policy's own previous actions, oldest first; ``steps`` = N).
  Arm names: ``joint_position`` (rad), ``joint_velocity`` (rad/s), ``previous_action`` (the last action
  sent), ``goal`` (task-space or joint-space goal, ``frame`` says which), ``ee_position`` (3, m).
  Optional per component: ``frame``, ``unit``, ``low``/``high`` (valid input range), ``noise_std``
  (training noise, informative only).
* ``action``: ``{"type", "size", "low", "high", ...}``; ``motor_rpm`` adds ``rpm_min``, ``rpm_max``,
  ``rotor_order``, ``hover``; ``joint_position`` adds ``joints`` and ``delta`` (true if actions are offsets
  from the measured position) and ``scale``.
* ``control_rate_hz``, ``robot``, ``task``, ``training`` (algorithm, config, seed), ``package_version``,
  ``onnx_opset``, ``network`` (layer sizes, activation, output), ``test_vector``
  (``example_input`` ``[k, obs_dim]``, ``example_output`` ``[k, act_dim]``, ``atol``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "robot-rl-policy"
FORMAT_VERSION = 1

QUADROTOR_COMPONENTS = {
    "position": 3, "rotation_matrix": 9, "quaternion": 4, "linear_velocity": 3, "angular_velocity": 3,
}
ARM_COMPONENTS = ("joint_position", "joint_velocity", "previous_action", "goal", "ee_position")
HISTORY_COMPONENTS = ("action_history",)
KNOWN_COMPONENTS = set(QUADROTOR_COMPONENTS) | set(ARM_COMPONENTS) | set(HISTORY_COMPONENTS)
ACTION_TYPES = ("motor_rpm", "joint_position", "attitude_thrust")


class ContractError(ValueError):
    """``policy.json`` does not follow the exported-policy contract."""


def obs_dim(spec: dict[str, Any]) -> int:
    return sum(int(c["size"]) for c in spec["observation"])


def validate(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a parsed ``policy.json``; raise :class:`ContractError` with a one-line reason, else return it."""

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ContractError(f"policy.json: {msg}")

    need(isinstance(spec, dict), "top level must be an object")
    need(spec.get("format") == FORMAT, f"'format' must be {FORMAT!r}")
    need(spec.get("format_version") == FORMAT_VERSION, f"unsupported format_version {spec.get('format_version')}")
    comps = spec.get("observation")
    need(isinstance(comps, list) and len(comps) > 0, "'observation' must be a non-empty list")
    for c in comps:
        need(isinstance(c, dict) and "name" in c and "size" in c, f"bad observation component {c!r}")
        need(c["name"] in KNOWN_COMPONENTS, f"unknown observation component {c['name']!r}")
        need(isinstance(c["size"], int) and c["size"] > 0, f"component {c['name']!r} needs a positive size")
        if c["name"] in QUADROTOR_COMPONENTS:
            need(c["size"] == QUADROTOR_COMPONENTS[c["name"]], f"component {c['name']!r} must have size "
                 f"{QUADROTOR_COMPONENTS[c['name']]}")
    names = [c["name"] for c in comps]
    need(len(set(names)) == len(names), "observation component names must be unique")
    act = spec.get("action")
    need(isinstance(act, dict) and act.get("type") in ACTION_TYPES, f"'action.type' must be one of {ACTION_TYPES}")
    need(isinstance(act.get("size"), int) and act["size"] > 0, "'action.size' must be a positive integer")
    for c in comps:
        if c["name"] == "action_history":
            need(c["size"] == act["size"] * int(c.get("steps", 0)), "action_history size must be steps * action size")
    rate = spec.get("control_rate_hz")
    need(isinstance(rate, (int, float)) and rate > 0, "'control_rate_hz' must be positive")
    tv = spec.get("test_vector", {})
    need("example_input" in tv and "example_output" in tv, "'test_vector' needs example_input and example_output")
    need(all(len(row) == obs_dim(spec) for row in tv["example_input"]), "test_vector input width != obs size")
    need(all(len(row) == act["size"] for row in tv["example_output"]), "test_vector output width != action size")
    return spec


def load(export_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``<export_dir>/policy.json`` (the ONNX file is not opened here)."""
    path = Path(export_dir) / "policy.json"
    if not path.is_file():
        raise FileNotFoundError(f"no policy.json in {export_dir}")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return validate(spec)
