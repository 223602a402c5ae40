"""The exported-policy contract (``policy.onnx`` + ``policy.json``), readable without torch.

``policy.json`` keys (format version 1):

* ``observation``: ordered list of ``{"name", "size", ...}`` components that concatenate to the ONNX input.
  Quadrotor names: ``position`` (3, world, position minus target, m), ``rotation_matrix`` (9, body-to-world,
  row-major), ``quaternion`` (4, w x y z), ``linear_velocity`` (3, world, m/s), ``angular_velocity``
  (3, body, rad/s), ``action_history`` (4*N, the policy's own previous actions, oldest first; ``steps`` = N).
  Arm names (ros2_control robots; joint order = ``action.joints``): ``joint_position`` (n joints, rad, as
  measured), ``joint_velocity`` (n joints, rad/s), ``previous_action`` (action size, the last action executed,
  after clipping and rate limiting, in action units; zeros after activation), ``goal`` (``frame`` ``"joint"``:
  n joint positions in rad, or ``"task"``: a position in m), ``ee_position`` (3, m, end effector in the base
  frame), ``ee_rotation_matrix`` (9, end-effector-to-base rotation, row-major), ``gripper_width`` (1, m,
  distance between the fingers), ``object_position`` (3, m, base frame, as from a pose tracker),
  ``object_quaternion`` (4, w x y z, object-to-base), ``goal_position`` (3, m, base frame). ``action_history``
  works for arms too. The joint components and ``joint_position`` actions name their joints in ``joints``
  (matched to ``/joint_states`` by name); with an ``ee_delta`` action the joint components follow
  ``action.joints``.
  Per measured component (all but ``action_history``/``previous_action``, which the runtime writes) a
  plausibility range: ``valid_low``/``valid_high`` (a number or one per element; outside it the input is
  treated as a fault: the vehicle's physical limits or the training distribution with a margin), and
  optionally ``low``/``high``, the range the policy was trained on (the runtime clamps a plausible value
  into it and reports that). A component with only ``low``/``high`` (exports written before plausibility
  ranges) uses them as its plausibility range and is never clamped; one with neither is refused by the
  runtime. Optional: ``frame``, ``unit``, ``noise_std`` (training noise, informative only).
* ``action``: ``{"type", "size", "low", "high", ...}``; ``motor_rpm`` adds ``rpm_min``, ``rpm_max``,
  ``rotor_order``, ``hover``, ``safe_action`` (motors off); ``joint_position`` adds ``joints`` (names, one per
  action element), ``delta`` (true: target = measured position + scale * a; false: target = offset + scale * a),
  ``scale`` and ``offset`` (a number or one per joint; defaults 1 and 0). Its safe command holds the measured
  position. ``ee_delta`` (end-effector deltas turned into joint targets by the damped-least-squares IK shared
  by simulator and runtime) adds ``channels`` (``x``, ``y``, ``z``, then optionally ``yaw`` and ``gripper``,
  in that order, one per action element), ``position_scale`` (m per unit action, > 0), ``yaw_scale`` (rad per
  unit, with a ``yaw`` channel), ``gripper`` ``{"closed_width", "open_width"}`` (m; a = -1 closes, +1 opens,
  with a ``gripper`` channel), ``frame`` (``"base"``) and ``joints`` (the arm joints the IK drives, in
  order); optionally the controller settings the policy trained with (defaults: the simulator's):
  ``max_lead`` (m), ``workspace_low``/``workspace_high`` (3 values, m), ``yaw_range`` (2 values, rad),
  ``ik_iterations`` (see :mod:`deploy.arm_command`). ``attitude_thrust`` (Crazyflie RPYT setpoints through
  Crazyswarm2's ``cmd_vel_legacy``) adds ``scale`` and ``offset`` (``value = offset + scale * a`` per
  channel) and ``channels`` (``name``, ``unit``, ``convention``, ``twist_field``); it has no safe command
  (the setpoint stream stops).
  Optional ``chunk`` ``{"horizon": H, "execute": E}``: the network outputs H actions at once
  (``[batch, H * size]``, oldest first) and the runtime executes the first E before querying it again.
* ``kind`` (optional, default ``"mlp"``): ``"chunked"`` marks a sampled action-chunk policy (diffusion). Its
  ONNX takes ``obs`` ``[batch, observation_steps, obs_dim]`` (oldest first) and ``noise``
  ``[batch, horizon, size]`` (standard normal, drawn by the caller) and returns ``action``
  ``[batch, horizon, size]``; ``chunk`` holds ``observation_steps``, ``horizon``, ``execute`` (actions run per
  chunk before replanning), ``sampler`` (e.g. ``"ddim"``) and ``steps``; the test vector adds
  ``example_noise`` and its rows are nested (``[k][observation_steps][obs_dim]``, ``[k][horizon][size]``).
  ``"composed"``: ``policy.onnx`` is such a chunked base sampler (same ``chunk`` and test vector) and
  ``composition`` says what runs on top of it: ``kind`` (``"residual"``: :mod:`deploy.residual_runtime`),
  ``network`` (a second ONNX file in the same folder) and the kind's own fields and test vector; optional
  ``wrench`` (``"residual"`` and ``"candidates"`` with ``score: "action"``): the network also takes the raw wrist
  force/torque reading ``[batch, 6]`` (``size``, ``names``, ``units``, ``frame``, ``valid_low``/``valid_high``, ...;
  the test vector adds ``example_wrench``). The runtime
  picks the runner by ``composition.kind`` (:func:`deploy.chunked_runtime.load_runner`); a runtime that does
  not know the kind refuses the export rather than running the base alone.
* ``"recurrent"``: the policy carries a state between calls (``robot_rl/models/recurrent.py``). Its ONNX takes
  ``obs`` ``[batch, obs_dim]`` and ``state_in`` ``[batch, S]`` and returns ``action`` and ``state_out``
  ``[batch, S]``; ``recurrent`` ``{"state_size": S, "input", "output", "initial": "zeros"}``: the caller feeds
  each call's ``state_out`` to the next call and zeros at every episode start (activation, after a safe
  command). The test vector's rows are consecutive calls of one episode from the zero state.
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
ARM_COMPONENTS = {
    "joint_position": None, "joint_velocity": None, "previous_action": None, "goal": None, "ee_position": 3,
    "ee_rotation_matrix": 9, "gripper_width": 1, "object_position": 3, "object_quaternion": 4, "goal_position": 3,
}
"""Arm observation components and their fixed sizes (None: sized by the joints or the action)."""
HISTORY_COMPONENTS = ("action_history",)
KNOWN_COMPONENTS = set(QUADROTOR_COMPONENTS) | set(ARM_COMPONENTS) | set(HISTORY_COMPONENTS)
ACTION_TYPES = ("motor_rpm", "joint_position", "attitude_thrust", "ee_delta")
EE_DELTA_CHANNELS = ("x", "y", "z", "yaw", "gripper")
ARM_JOINT_COMPONENTS = ("joint_position", "joint_velocity")
KINDS = ("mlp", "chunked", "composed", "recurrent")


class ContractError(ValueError):
    """``policy.json`` does not follow the exported-policy contract."""


def obs_dim(spec: dict[str, Any]) -> int:
    """Width of the ONNX input: the sum of the observation component sizes."""
    return sum(int(c["size"]) for c in spec["observation"])


def is_chunked(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` describes a sampled action-chunk policy (``kind`` ``"chunked"``)."""
    return spec.get("kind", "mlp") == "chunked"


def is_composed(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` describes a composition over a chunked base (``kind`` ``"composed"``)."""
    return spec.get("kind", "mlp") == "composed"


def is_recurrent(spec: dict[str, Any]) -> bool:
    """A policy that carries a state between calls (``kind: "recurrent"``)."""
    return spec.get("kind", "mlp") == "recurrent"


def chunk_horizon(spec: dict[str, Any]) -> int:
    """Number of actions the network outputs per query (1 unless ``action.chunk`` or a chunked kind)."""
    if is_chunked(spec) or is_composed(spec):
        return int(spec["chunk"]["horizon"])
    return int(spec["action"].get("chunk", {}).get("horizon", 1))


def output_dim(spec: dict[str, Any]) -> int:
    """Width of the ONNX output: action size times the chunk horizon."""
    return int(spec["action"]["size"]) * chunk_horizon(spec)


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
        if c["name"] == "previous_action":
            need(c["size"] == act["size"], "previous_action size must equal the action size")
        fixed = ARM_COMPONENTS.get(c["name"])
        if fixed is not None:
            need(c["size"] == fixed, f"component {c['name']!r} must have size {fixed}")
    if act["type"] == "motor_rpm":
        need(isinstance(act.get("rpm_max"), (int, float)) and isinstance(act.get("rpm_min", 0.0), (int, float))
             and act["rpm_max"] > act.get("rpm_min", 0.0),
             "a motor_rpm action needs 'action.rpm_max' (a number above 'rpm_min', default 0)")
    if act["type"] == "ee_delta":
        _validate_ee_delta(act, comps, need)
    if act["type"] == "joint_position":
        joints = act.get("joints")
        need(isinstance(joints, list) and len(joints) == act["size"] and all(isinstance(j, str) for j in joints)
             and len(set(joints)) == len(joints), "joint_position action needs 'joints': one unique name per element")
        for key in ("scale", "offset"):
            val = act.get(key, 0.0)
            need(isinstance(val, (int, float)) or (isinstance(val, list) and len(val) == act["size"]),
                 f"action.{key} must be a number or one number per joint")
        for c in comps:
            if c["name"] in ARM_JOINT_COMPONENTS:
                need(c["size"] == len(joints), f"component {c['name']!r} must have one entry per joint")
    if act["type"] == "attitude_thrust":
        for key in ("scale", "offset"):
            val = act.get(key)
            need(isinstance(val, list) and len(val) == act["size"] and all(isinstance(v, (int, float)) for v in val),
                 f"attitude_thrust action needs '{key}': one number per channel")
        chans = act.get("channels")
        need(isinstance(chans, list) and len(chans) == act["size"] and all(isinstance(c, dict) and "name" in c
                                                                             for c in chans),
             "attitude_thrust action needs 'channels': one {name, unit, ...} per element")
    if "chunk" in act:
        ch = act["chunk"]
        need(isinstance(ch, dict) and isinstance(ch.get("horizon"), int) and ch["horizon"] >= 1
             and isinstance(ch.get("execute", 1), int) and 1 <= ch.get("execute", 1) <= ch["horizon"],
             "action.chunk needs integer 1 <= execute <= horizon")
    rate = spec.get("control_rate_hz")
    need(isinstance(rate, (int, float)) and rate > 0, "'control_rate_hz' must be positive")
    tv = spec.get("test_vector", {})
    need("example_input" in tv and "example_output" in tv, "'test_vector' needs example_input and example_output")
    need(spec.get("kind", "mlp") in KINDS, f"'kind' must be one of {KINDS}")
    if is_chunked(spec) or is_composed(spec):
        _validate_chunked(spec, need)
    if is_composed(spec):
        comp = spec.get("composition")
        need(isinstance(comp, dict) and isinstance(comp.get("kind"), str) and isinstance(comp.get("network"), str)
             and "/" not in comp["network"] and comp["network"].endswith(".onnx"),
             "a composed policy needs 'composition': {kind, network (an .onnx file beside policy.onnx), ...}")
    if is_chunked(spec) or is_composed(spec):
        return spec
    if is_recurrent(spec):
        rec = spec.get("recurrent")
        need(isinstance(rec, dict) and isinstance(rec.get("state_size"), int) and rec["state_size"] > 0
             and rec.get("input") == "state_in" and rec.get("output") == "state_out" and rec.get("initial") == "zeros",
             "a recurrent policy needs 'recurrent': {state_size > 0, input 'state_in', output 'state_out', "
             "initial 'zeros'}")
    need(all(len(row) == obs_dim(spec) for row in tv["example_input"]), "test_vector input width != obs size")
    need(all(len(row) == output_dim(spec) for row in tv["example_output"]),
         "test_vector output width != action size * chunk horizon")
    return spec


def _validate_ee_delta(act: dict[str, Any], comps: list[dict[str, Any]], need: Any) -> None:
    chans = act.get("channels")
    need(isinstance(chans, list) and len(chans) == act["size"] and chans[:3] == ["x", "y", "z"]
         and all(c in EE_DELTA_CHANNELS for c in chans)
         and [c for c in EE_DELTA_CHANNELS if c in chans] == chans,
         f"ee_delta action needs 'channels': x, y, z, then optionally yaw and gripper (one per element), got {chans!r}")
    scale = act.get("position_scale")
    need(isinstance(scale, (int, float)) and scale > 0, "ee_delta action needs a positive 'position_scale' (m)")
    if "yaw" in chans:
        yaw = act.get("yaw_scale")
        need(isinstance(yaw, (int, float)) and yaw > 0, "ee_delta yaw channel needs a positive 'yaw_scale' (rad)")
    if "gripper" in chans:
        g = act.get("gripper")
        need(isinstance(g, dict) and all(isinstance(g.get(k), (int, float)) and g[k] >= 0
                                         for k in ("closed_width", "open_width"))
             and g["closed_width"] < g["open_width"],
             "ee_delta gripper channel needs 'gripper': {closed_width < open_width} in m")
    need(act.get("frame", "base") == "base", "ee_delta 'frame' must be 'base'")
    joints = act.get("joints")
    if joints is not None:
        need(isinstance(joints, list) and len(joints) > 0 and all(isinstance(j, str) for j in joints)
             and len(set(joints)) == len(joints), "ee_delta 'joints' must be unique joint names")
    for c in comps:
        if c["name"] in ARM_JOINT_COMPONENTS:
            need(joints is not None, f"component {c['name']!r} needs the ee_delta action's 'joints'")
            need(c["size"] == len(joints), f"component {c['name']!r} must have one entry per joint")


def _validate_chunked(spec: dict[str, Any], need: Any) -> None:
    ch = spec.get("chunk")
    need(isinstance(ch, dict), "a chunked policy needs a 'chunk' section")
    need("chunk" not in spec["action"], "a chunked policy takes its horizons from 'chunk', not 'action.chunk'")
    for key in ("observation_steps", "horizon", "execute", "steps"):
        need(isinstance(ch.get(key), int) and ch[key] >= 1, f"chunk.{key} must be a positive integer")
    need(ch["execute"] <= ch["horizon"], "chunk.execute must not exceed chunk.horizon")
    need(isinstance(ch.get("sampler"), str), "chunk.sampler must name the sampler")
    tv, a, d = spec["test_vector"], spec["action"]["size"], obs_dim(spec)
    need("example_noise" in tv, "a chunked policy's test_vector needs example_noise")

    def shaped(rows: Any, inner: int, width: int) -> bool:
        return isinstance(rows, list) and len(rows) > 0 and all(
            isinstance(r, list) and len(r) == inner and all(isinstance(x, list) and len(x) == width for x in r)
            for r in rows)

    need(shaped(tv["example_input"], ch["observation_steps"], d), "test_vector input must be [k][observation_steps]"
         "[obs size]")
    need(shaped(tv["example_noise"], ch["horizon"], a), "test_vector noise must be [k][horizon][action size]")
    need(shaped(tv["example_output"], ch["horizon"], a), "test_vector output must be [k][horizon][action size]")
    need(len(tv["example_input"]) == len(tv["example_noise"]) == len(tv["example_output"]),
         "test_vector input, noise and output need the same number of rows")


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
