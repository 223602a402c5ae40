"""Export a recurrent actor to ``policy.onnx`` + ``policy.json`` (``kind: "recurrent"``) and verify the export.

Like :func:`deploy.export.policy.export_policy`, but every check runs on (observation, state) pairs and the
test vector is a sequence: consecutive calls of one episode from the zero state, each call's ``state_out``
fed to the next, so a consumer that drops or mis-wires the state fails it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import robot_rl
from deploy import contract
from deploy.export.onnx_graph import OPSET
from deploy.export.onnx_recurrent import STATE_IN, STATE_OUT, build_recurrent_onnx
from deploy.export.policy import MAX_ABS_ERROR, ExportError
from deploy.onnx_io import onnx_session
from robot_rl.io import atomic_write_bytes, atomic_write_json
from robot_rl.models.recurrent import GRUActor


def run_sequence(session, obs_seq: np.ndarray, state_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Actions and states of ``obs_seq`` ``[T, obs_dim]`` called one after the other from the zero state."""
    state = np.zeros((1, state_size), np.float32)
    actions, states = [], []
    for o in np.asarray(obs_seq, np.float32):
        a, state = session.run(["action", STATE_OUT], {"obs": o[None], STATE_IN: state})
        actions.append(a[0])
        states.append(state[0])
    return np.array(actions), np.array(states)


def export_recurrent_policy(out_dir: str | Path, actor: GRUActor, spec: dict[str, Any], obs: np.ndarray,
                            states: np.ndarray, sequence: np.ndarray, metadata: dict[str, Any],
                            seed: int = 0) -> dict[str, Any]:
    """Write the export of ``actor`` after checking ONNX against torch to 1e-5 on 1,000 random (observation,
    state) pairs, on the on-distribution pairs ``obs``/``states`` (the state each observation was met with) and
    step by step along ``sequence`` ``[T, obs_dim]`` (one episode's observations from its start: the test
    vector). Raises :class:`ExportError` and writes nothing on a mismatch."""
    graph = actor.graph()
    model = build_recurrent_onnx(graph)
    session = onnx_session(model)
    dim, size = graph.w_in.shape[1], graph.state_size
    if contract.obs_dim(spec) != dim:
        raise ExportError(f"observation components sum to {contract.obs_dim(spec)} but the network takes {dim}")
    if contract.output_dim(spec) != graph.w_out.shape[0]:
        raise ExportError(f"the action is {contract.output_dim(spec)} wide but the network outputs "
                          f"{graph.w_out.shape[0]}")
    rng = np.random.default_rng(seed)
    pairs = {"random": (rng.normal(0.0, 1.0, (1000, dim)), rng.uniform(-1.0, 1.0, (1000, size))),
             "on-distribution": (np.asarray(obs)[:1000], np.asarray(states)[:1000])}
    errors = {}
    for name, (o, h) in pairs.items():
        o, h = np.asarray(o, np.float32), np.asarray(h, np.float32)
        with torch.no_grad():
            ref_a, ref_h = actor(torch.from_numpy(o), torch.from_numpy(h))
        got_a, got_h = session.run(["action", STATE_OUT], {"obs": o, STATE_IN: h})
        errors[name] = float(max(np.abs(got_a - ref_a.numpy()).max(), np.abs(got_h - ref_h.numpy()).max()))
    seq = np.asarray(sequence, np.float32)
    actions, _ = run_sequence(session, seq, size)
    state = actor.initial_state(1)
    with torch.no_grad():
        ref = []
        for o in seq:
            a, state = actor(torch.from_numpy(o)[None], state)
            ref.append(a[0].numpy())
    errors["sequence"] = float(np.abs(actions - np.array(ref)).max())
    if max(errors.values()) > MAX_ABS_ERROR:
        raise ExportError(f"ONNX export differs from torch: max abs error {max(errors.values()):.3g} ({errors}) "
                          f"> {MAX_ABS_ERROR}")
    doc = {
        "format": contract.FORMAT,
        "format_version": contract.FORMAT_VERSION,
        "kind": "recurrent",
        **metadata,
        "observation": spec["observation"],
        "action": spec["action"],
        "control_rate_hz": spec["control_rate_hz"],
        "recurrent": {"state_size": size, "input": STATE_IN, "output": STATE_OUT, "initial": "zeros"},
        "network": {"layers": [dim, graph.w_in.shape[0], size, graph.w_out.shape[0]], "cell": "gru",
                    "activation": graph.activation, "output": graph.output, "normalization": "none"},
        "package_version": robot_rl.__version__,
        "torch_version": torch.__version__,
        "onnx_opset": OPSET,
        "verification": {f"max_abs_error_{k.replace('-', '_')}": v for k, v in errors.items()},
        "test_vector": {"example_input": seq.tolist(), "example_output": actions.tolist(), "atol": 1e-5},
    }
    contract.validate(doc)
    out = Path(out_dir)
    atomic_write_bytes(out / "policy.onnx", model.SerializeToString())
    atomic_write_json(out / "policy.json", doc)
    return doc
