"""C99 export of a recurrent (GRU) policy (``kind: "recurrent"``, ``deploy/export/onnx_recurrent.py``).

The generated ``policy.c`` keeps the state in two static arrays: ``rlp_policy_forward`` reads the committed state
and writes the next one, ``rlp_policy_commit`` makes the next one current, ``rlp_policy_reset`` zeroes both (the
state at an episode's start). A caller that runs the policy at its training rate commits after every call; the
Crazyflie app, which runs it five times per training step, commits once per training step (``rlp_cf.c``), so the
memory advances at the rate it was trained at while every call still answers the newest observation.

The ONNX is read by initialiser name (``W_in`` ... ``b_out``) with its ops checked against the set the exporter
writes, and the weights are then checked to reproduce ``policy.json``'s test vector (a sequence of calls from the
zero state) in float64: a graph wired differently from the cell this file implements fails that check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy import contract
from deploy.export import c_emit
from deploy.export.c_emit import ACT_ENUM, CExportError
from deploy.export.mlp_reader import UnsupportedGraphError, apply_activation

GRU_OPS = ("Gemm", "Split", "Sigmoid", "Tanh", "Mul", "Add", "Sub", "Concat", "Clip", "Div", "Relu", "Elu")
WEIGHTS = ("W_in", "b_in", "W_ih", "b_ih", "W_hh", "b_hh", "W_out", "b_out")
HIDDEN_ACTIVATIONS = ("relu", "tanh", "elu", "fast_tanh")


@dataclass
class GRUSpec:
    """The GRU actor's weights (float32, torch's gate order r, z, n) and its hidden activation."""

    w_in: np.ndarray
    b_in: np.ndarray
    w_ih: np.ndarray
    b_ih: np.ndarray
    w_hh: np.ndarray
    b_hh: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    activation: str

    @property
    def in_dim(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def hidden(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def state_size(self) -> int:
        return int(self.w_hh.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.w_out.shape[0])

    @property
    def macs(self) -> int:
        return int(self.w_in.size + self.w_ih.size + self.w_hh.size + self.w_out.size)

    def step(self, obs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float64 reference of one call: ``(obs [k, in], state [k, S]) -> (action, state')``."""
        f = np.float64
        x = apply_activation(np.asarray(obs, f) @ self.w_in.astype(f).T + self.b_in, self.activation)
        gi = x @ self.w_ih.astype(f).T + self.b_ih
        gh = np.asarray(state, f) @ self.w_hh.astype(f).T + self.b_hh
        s = self.state_size
        r = 1.0 / (1.0 + np.exp(-(gi[:, :s] + gh[:, :s])))
        z = 1.0 / (1.0 + np.exp(-(gi[:, s:2 * s] + gh[:, s:2 * s])))
        n = np.tanh(gi[:, 2 * s:] + r * gh[:, 2 * s:])
        h = n + z * (state - n)
        return np.tanh(np.concatenate([x, h], 1) @ self.w_out.astype(f).T + self.b_out), h


def read_gru(onnx_path: str | Path, doc: dict[str, Any]) -> GRUSpec:
    """The GRU actor of a recurrent export; raises :class:`UnsupportedGraphError` (ops, names) or
    :class:`CExportError` (shapes, a graph that does not reproduce the test vector) in one line."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i.name for i in g.input if i.name not in inits]
    if inputs != ["obs", "state_in"] or [o.name for o in g.output] != ["action", "state_out"]:
        raise UnsupportedGraphError(f"C export: a recurrent graph must map (obs, state_in) to (action, state_out), "
                                    f"got {inputs} -> {[o.name for o in g.output]}")
    for node in g.node:
        if node.op_type not in GRU_OPS:
            raise UnsupportedGraphError(f"C export: unsupported ONNX op {node.op_type!r} in node {node.name!r} of "
                                        f"a recurrent graph; supported: {', '.join(GRU_OPS)}")
    missing = [k for k in WEIGHTS if k not in inits]
    if missing:
        raise UnsupportedGraphError(f"C export: the recurrent graph lacks the initialisers {missing} (not written "
                                    f"by robot-rl's recurrent exporter)")
    net = doc.get("network", {})
    if net.get("cell") != "gru" or net.get("activation") not in HIDDEN_ACTIVATIONS:
        raise CExportError(f"C export: policy.json's network must be a GRU cell with a hidden activation in "
                           f"{HIDDEN_ACTIVATIONS}, got cell {net.get('cell')!r}, activation {net.get('activation')!r}")
    w = {k: np.asarray(inits[k], np.float32) for k in WEIGHTS}
    flat = [k for k in WEIGHTS if w[k].ndim != (2 if k.startswith("W") else 1)]
    if flat:
        raise CExportError(f"C export: recurrent weights {flat} have the wrong rank (W_* matrices, b_* vectors)")
    spec = GRUSpec(*(w[k] for k in WEIGHTS), activation=net["activation"])
    h, s, n_in = spec.hidden, spec.state_size, spec.in_dim
    shapes = {"b_in": (h,), "W_ih": (3 * s, h), "b_ih": (3 * s,), "W_hh": (3 * s, s), "b_hh": (3 * s,),
              "W_out": (spec.out_dim, h + s), "b_out": (spec.out_dim,)}
    bad = [f"{k} {list(w[k].shape)} (want {list(v)})" for k, v in shapes.items() if w[k].shape != v]
    if bad:
        raise CExportError(f"C export: recurrent weight shapes do not chain: {', '.join(bad)}")
    if n_in != contract.obs_dim(doc) or spec.out_dim != contract.output_dim(doc) \
            or s != doc["recurrent"]["state_size"]:
        raise CExportError(f"C export: policy.onnx is {n_in} -> {spec.out_dim} with state {s} but policy.json "
                           f"describes {contract.obs_dim(doc)} -> {contract.output_dim(doc)} with state "
                           f"{doc['recurrent']['state_size']}")
    tv = doc["test_vector"]
    err = float(np.abs(run_reference(spec, tv["example_input"]) - np.asarray(tv["example_output"])).max())
    tol = max(10.0 * float(tv.get("atol", 1e-5)), 1e-4)
    if not err <= tol:
        raise CExportError(f"C export: the recurrent graph's weights, run as the GRU cell this exporter writes, miss "
                           f"policy.json's test vector by {err:.3g} (> {tol:.3g}): not robot-rl's recurrent graph")
    return spec


def run_reference(spec: GRUSpec, obs_seq: Any) -> np.ndarray:
    """float64 actions of consecutive calls from the zero state (the test vector's protocol)."""
    state = np.zeros((1, spec.state_size))
    out = []
    for o in np.asarray(obs_seq, np.float64):
        a, state = spec.step(o[None], state)
        out.append(a[0])
    return np.array(out)


def describe(spec: GRUSpec) -> str:
    """One line naming the network (the generated files' header comments)."""
    return (f"{spec.in_dim}-{spec.hidden} {spec.activation} -> GRU state {spec.state_size} -> "
            f"{spec.out_dim} tanh (from [x, state'])")


def float_source(spec: GRUSpec) -> tuple[str, int]:
    """Body of the recurrent ``policy.c`` (weights, state, forward, commit, reset); returns (text, weight bytes)."""
    h, s, a, n_in = spec.hidden, spec.state_size, spec.out_dim, spec.in_dim
    layers = [("RLP_IN", spec.w_in, spec.b_in, f"input layer: {n_in} -> {h}, {spec.activation}"),
              ("RLP_IH", spec.w_ih, spec.b_ih, f"GRU input side: {h} -> 3 x {s} (r, z, n)"),
              ("RLP_HH", spec.w_hh, spec.b_hh, f"GRU state side: {s} -> 3 x {s} (r, z, n)"),
              ("RLP_OUT", spec.w_out, spec.b_out, f"output layer: [x, state'] {h + s} -> {a}, tanh")]
    parts, nbytes = [], 0
    for name, wt, b, comment in layers:
        arr = c_emit.f32_stream(wt, b)
        nbytes += arr.nbytes
        parts.append(c_emit.float_array(name, arr, comment))
    xs = max(4 * c_emit.blocks(h), h + s)
    gates = 4 * c_emit.blocks(3 * s)
    body = "".join(parts) + f"""
/* x (padded rows of the input layer land in the state part, which the cell then overwrites), then state' */
static float rlp_xs[{xs}];
static float rlp_gi[{gates}], rlp_gh[{gates}], rlp_y[{4 * c_emit.blocks(a)}];
/* the committed state (what the next call starts from) and the state the last call computed */
static float rlp_state[{s}], rlp_state_next[{s}];

void rlp_policy_forward(const float *obs, float *action)
{{
    uint32_t i;
    rlp_f32_dense(RLP_IN, obs, rlp_xs, {c_emit.blocks(h)}u, {n_in}u);
    rlp_activate(rlp_xs, {h}u, {ACT_ENUM[spec.activation]}, 0x1p+0f, 0.0f, 0.0f);
    rlp_f32_dense(RLP_IH, rlp_xs, rlp_gi, {c_emit.blocks(3 * s)}u, {h}u);
    rlp_f32_dense(RLP_HH, rlp_state, rlp_gh, {c_emit.blocks(3 * s)}u, {s}u);
    for (i = 0; i < {s}u; i++) {{
        /* torch's GRUCell: the reset gate scales the state side's product, state' = n + z (state - n) */
        const float r = rlp_sigmoidf(rlp_gi[i] + rlp_gh[i]);
        const float z = rlp_sigmoidf(rlp_gi[{s}u + i] + rlp_gh[{s}u + i]);
        const float n = rlp_tanhf(rlp_gi[{2 * s}u + i] + r * rlp_gh[{2 * s}u + i]);
        const float next = n + z * (rlp_state[i] - n);
        rlp_state_next[i] = next;
        rlp_xs[{h}u + i] = next;
    }}
    rlp_f32_dense(RLP_OUT, rlp_xs, rlp_y, {c_emit.blocks(a)}u, {h + s}u);
    rlp_activate(rlp_y, {a}u, RLP_ACT_TANH, 0.0f, 0.0f, 0.0f);
    for (i = 0; i < {a}u; i++) {{
        action[i] = rlp_y[i];
    }}
}}

void rlp_policy_commit(void)
{{
    uint32_t i;
    for (i = 0; i < {s}u; i++) {{
        rlp_state[i] = rlp_state_next[i];
    }}
}}

void rlp_policy_reset(void)
{{
    uint32_t i;
    for (i = 0; i < {s}u; i++) {{
        rlp_state[i] = 0.0f;
        rlp_state_next[i] = 0.0f;
    }}
}}
"""
    return body, nbytes
