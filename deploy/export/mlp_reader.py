"""Read an exported ``policy.onnx`` back into dense layers for the C exporter (numpy only, no torch).

Accepted graphs are chains ``obs -> (affine -> activation)* -> affine -> output -> action`` where

* affine is ``Gemm`` (``alpha = beta = 1``, ``transA = 0``, any ``transB``) or ``MatMul`` followed by ``Add``,
  with initialiser weights and bias;
* activation is ``Relu``, ``Tanh``, ``Elu`` (any ``alpha``) or the fast-tanh composition our exporter writes
  (``Clip(-3, 3)``, ``Mul``, ``Add 27``, ``Mul``, ``Mul 9``, ``Add 27``, ``Div``);
* output is ``Tanh``, ``Clip`` (constant bounds) or ``Identity``, or nothing.

Anything else raises :class:`UnsupportedGraphError` with a one-line message naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # onnx is imported where a graph is read, so that MLPSpec users need numpy only
    import onnx

SUPPORTED = ("Gemm", "MatMul+Add", "Relu", "Tanh", "Elu", "fast-tanh Clip/Mul/Add/Mul/Mul/Add/Div", "Clip",
             "Identity")
ACTIVATIONS = ("relu", "tanh", "elu", "fast_tanh")
OUTPUTS = ("identity", "tanh", "clip")


class UnsupportedGraphError(ValueError):
    """The ONNX graph uses an op or a structure the C exporter does not implement."""


@dataclass
class DenseLayer:
    """``y = act(x @ weight.T + bias)``; ``weight`` is ``[out, in]`` float32."""

    weight: np.ndarray
    bias: np.ndarray
    activation: str = "identity"  # relu | tanh | elu | fast_tanh | identity (last layer)
    elu_alpha: float = 1.0


@dataclass
class MLPSpec:
    """A dense network as read from ONNX: hidden layers share nothing; ``output`` squashes the last layer."""

    layers: list[DenseLayer]
    output: str = "identity"
    clip: tuple[float, float] = (-1.0, 1.0)
    names: list[str] = field(default_factory=list)  # ONNX node names, for messages

    @property
    def in_dim(self) -> int:
        return int(self.layers[0].weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.layers[-1].weight.shape[0])

    @property
    def macs(self) -> int:
        return int(sum(layer.weight.size for layer in self.layers))

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """float64 reference forward pass (for quantisation calibration and error reports)."""
        x = np.asarray(obs, dtype=np.float64)
        for layer in self.layers:
            x = x @ layer.weight.astype(np.float64).T + layer.bias.astype(np.float64)
            x = apply_activation(x, layer.activation, layer.elu_alpha)
        if self.output == "tanh":
            return np.tanh(x)
        if self.output == "clip":
            return np.clip(x, *self.clip)
        return x


def apply_activation(x: np.ndarray, name: str, elu_alpha: float = 1.0) -> np.ndarray:
    """Activation in float64 (reference semantics, identical to the ONNX ops)."""
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x > 0, x, elu_alpha * np.expm1(np.minimum(x, 0.0)))
    if name == "fast_tanh":
        c = np.clip(x, -3.0, 3.0)
        return c * (c * c + 27.0) / (c * c * 9.0 + 27.0)
    return x


def _fail(node: onnx.NodeProto, why: str = "") -> UnsupportedGraphError:
    extra = f" ({why})" if why else ""
    return UnsupportedGraphError(
        f"C export: unsupported ONNX op {node.op_type!r} in node {node.name or node.output[0]!r}{extra}; "
        f"supported: {', '.join(SUPPORTED)}")


class _Graph:
    """Node lookup helpers over a topologically sorted ONNX graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for node in g.node:  # Constant nodes act as initialisers
            if node.op_type == "Constant":
                self.inits[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes = [n for n in g.node if n.op_type != "Constant"]
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for name in dict.fromkeys(n.input):  # a node that reads a tensor twice counts once
                self.consumers.setdefault(name, []).append(n)
        if len(g.input) - sum(i.name in self.inits for i in g.input) != 1 or len(g.output) != 1:
            raise UnsupportedGraphError("C export: the graph must have exactly one input and one output")
        self.input = next(i.name for i in g.input if i.name not in self.inits)
        self.output = g.output[0].name

    def const(self, name: str, node: onnx.NodeProto) -> np.ndarray:
        if name not in self.inits:
            raise _fail(node, f"input {name!r} must be a constant")
        return np.asarray(self.inits[name])

    def scalar(self, name: str, node: onnx.NodeProto) -> float:
        v = self.const(name, node)
        if v.size != 1:
            raise _fail(node, f"input {name!r} must be a scalar")
        return float(v.reshape(-1)[0])

    def single_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        if tensor == self.output:
            return None
        if len(users) != 1:
            raise UnsupportedGraphError(f"C export: tensor {tensor!r} must feed exactly one node (not a chain)")
        return users[0]


def _attr(node: onnx.NodeProto, name: str, default: float | int) -> float | int:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _clip_bounds(g: _Graph, node: onnx.NodeProto) -> tuple[float, float]:
    lo = g.scalar(node.input[1], node) if len(node.input) > 1 and node.input[1] else -np.inf
    hi = g.scalar(node.input[2], node) if len(node.input) > 2 and node.input[2] else np.inf
    return float(lo), float(hi)


def _affine(g: _Graph, node: onnx.NodeProto, x: str) -> tuple[DenseLayer, str]:
    """Parse Gemm or MatMul(+Add) starting at ``node``; returns the layer and its output tensor."""
    if node.op_type == "Gemm":
        if node.input[0] != x or _attr(node, "transA", 0) != 0:
            raise _fail(node, "the activation must be input A, untransposed")
        if float(_attr(node, "alpha", 1.0)) != 1.0 or float(_attr(node, "beta", 1.0)) != 1.0:
            raise _fail(node, "alpha and beta must be 1")
        w = g.const(node.input[1], node).astype(np.float32)
        w = w if int(_attr(node, "transB", 0)) == 1 else w.T
        b = g.const(node.input[2], node).astype(np.float32) if len(node.input) > 2 and node.input[2] else None
        out = node.output[0]
    elif node.op_type == "MatMul":
        if node.input[0] != x:
            raise _fail(node, "the activation must be the first input")
        w = g.const(node.input[1], node).astype(np.float32).T
        out, b = node.output[0], None
        nxt = g.single_consumer(out)
        if nxt is not None and nxt.op_type == "Add":
            other = nxt.input[1] if nxt.input[0] == out else nxt.input[0]
            b, out = g.const(other, nxt).astype(np.float32), nxt.output[0]
    else:
        raise _fail(node)
    if w.ndim != 2:
        raise _fail(node, "weights must be a matrix")
    b = np.zeros(w.shape[0], np.float32) if b is None else np.broadcast_to(b.reshape(-1), (w.shape[0],)).copy()
    return DenseLayer(np.ascontiguousarray(w, dtype=np.float32), b.astype(np.float32)), out


def _fast_tanh(g: _Graph, clip: onnx.NodeProto) -> str | None:
    """If ``clip`` starts the fast-tanh composition, return its output tensor, else ``None``."""
    if _clip_bounds(g, clip) != (-3.0, 3.0):
        return None
    c = clip.output[0]
    users = g.consumers.get(c, [])
    sq = next((n for n in users if n.op_type == "Mul" and list(n.input) == [c, c]), None)
    num = next((n for n in users if n.op_type == "Mul" and n is not sq), None)
    if sq is None or num is None or len(users) != 2:
        return None
    x2 = sq.output[0]
    x2_users = g.consumers.get(x2, [])
    add27 = next((n for n in x2_users if n.op_type == "Add"), None)
    mul9 = next((n for n in x2_users if n.op_type == "Mul"), None)
    if add27 is None or mul9 is None or len(x2_users) != 2:
        return None
    consts = {n.name: g.scalar(next(i for i in n.input if i != x2), n) for n in (add27, mul9)}
    if consts[add27.name] != 27.0 or consts[mul9.name] != 9.0 or add27.output[0] not in num.input:
        return None
    den = g.single_consumer(mul9.output[0])
    div = g.single_consumer(num.output[0])
    if den is None or den.op_type != "Add" or div is None or div.op_type != "Div":
        return None
    if g.scalar(next(i for i in den.input if i != mul9.output[0]), den) != 27.0:
        return None
    if list(div.input) != [num.output[0], den.output[0]]:
        return None
    return div.output[0]


def read_mlp(model: onnx.ModelProto | str | Path) -> MLPSpec:
    """Parse a chain MLP from an ONNX model (see the module docstring for what is accepted)."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    g = _Graph(model)
    spec = MLPSpec(layers=[])
    x = g.input
    node = g.single_consumer(x)
    while node is not None:
        layer, x = _affine(g, node, x)
        spec.layers.append(layer)
        spec.names.append(node.name)
        node = g.single_consumer(x)
        if node is None:
            break
        act, nxt_x = None, None
        if node.op_type == "Relu":
            act, nxt_x = "relu", node.output[0]
        elif node.op_type == "Elu":
            act, nxt_x = "elu", node.output[0]
            layer.elu_alpha = float(_attr(node, "alpha", 1.0))
        elif node.op_type == "Tanh":
            act, nxt_x = "tanh", node.output[0]
        elif node.op_type == "Clip":
            ft = _fast_tanh(g, node)
            if ft is not None:
                act, nxt_x = "fast_tanh", ft
            else:
                act, nxt_x = "clip", node.output[0]
        elif node.op_type == "Identity":
            act, nxt_x = "identity", node.output[0]
        elif node.op_type not in ("Gemm", "MatMul"):
            raise _fail(node)
        if act is None:  # two affine layers in a row: keep them separate (identity activation)
            continue
        after = g.single_consumer(nxt_x)
        if after is None or after.op_type not in ("Gemm", "MatMul"):
            # this was the output op
            if act in ("relu", "elu", "fast_tanh"):
                raise _fail(node, "only Tanh, Clip or Identity may follow the last affine layer")
            spec.output = act
            if act == "clip":
                spec.clip = _clip_bounds(g, node)
            if after is not None:
                raise _fail(after, "nothing may follow the output op")
            x = nxt_x
            break
        if act == "clip":
            raise _fail(node, "Clip is only supported as the fast-tanh pattern or as the output")
        layer.activation = act
        x, node = nxt_x, after
    if not spec.layers:
        raise UnsupportedGraphError("C export: the graph has no Gemm/MatMul layer")
    if x != g.output:
        raise UnsupportedGraphError(f"C export: the chain ends at {x!r}, not at the graph output {g.output!r}")
    for prev, nxt in zip(spec.layers[:-1], spec.layers[1:], strict=True):
        if prev.weight.shape[0] != nxt.weight.shape[1]:
            raise UnsupportedGraphError("C export: layer sizes do not chain")
    return spec
