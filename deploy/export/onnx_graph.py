"""Write an MLP policy as a plain ONNX graph (Gemm + activations), without torch's exporter.

Building the graph from the weights keeps it small, bit-exact and limited to the ops the C exporter and
every ONNX runtime understand: Gemm, Relu, Tanh, Elu, Clip, Mul, Add, Div.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from robot_rl.models.mlp import PolicyGraph

OPSET = 17


def _const(name: str, value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def fast_tanh_inits() -> list[onnx.TensorProto]:
    """The constants :func:`activation_nodes` reads for ``fast_tanh``."""
    return [_const("ft_lo", -3.0), _const("ft_hi", 3.0), _const("ft_27", 27.0), _const("ft_9", 9.0)]


def activation_nodes(activation: str, x: str, out: str, tag: str) -> list[onnx.NodeProto]:
    """Nodes computing ``out = activation(x)`` (fast tanh: RLtools' rational form, constants from
    :func:`fast_tanh_inits`); ``tag`` makes the node and intermediate names unique."""
    if activation == "relu":
        return [helper.make_node("Relu", [x], [out], name=f"relu{tag}")]
    if activation == "tanh":
        return [helper.make_node("Tanh", [x], [out], name=f"tanh{tag}")]
    if activation == "elu":
        return [helper.make_node("Elu", [x], [out], name=f"elu{tag}", alpha=1.0)]
    if activation == "fast_tanh":
        c, x2, num0, num, den0, den = (f"ft{tag}_{s}" for s in ("c", "x2", "n0", "n", "d0", "d"))
        return [
            helper.make_node("Clip", [x, "ft_lo", "ft_hi"], [c], name=f"ft{tag}_clip"),
            helper.make_node("Mul", [c, c], [x2], name=f"ft{tag}_sq"),
            helper.make_node("Add", [x2, "ft_27"], [num0], name=f"ft{tag}_add27"),
            helper.make_node("Mul", [c, num0], [num], name=f"ft{tag}_num"),
            helper.make_node("Mul", [x2, "ft_9"], [den0], name=f"ft{tag}_mul9"),
            helper.make_node("Add", [den0, "ft_27"], [den], name=f"ft{tag}_den"),
            helper.make_node("Div", [num, den], [out], name=f"ft{tag}_div"),
        ]
    raise ValueError(f"activation {activation!r} has no ONNX export")


def build_onnx(graph: PolicyGraph, producer: str = "robot-rl") -> onnx.ModelProto:
    """ONNX model ``obs [batch, in] -> action [batch, out]`` with normalisation folded into the first Gemm."""
    weights, biases = graph.folded()
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x = "obs"
    uses_fast_tanh = graph.activation == "fast_tanh"
    if uses_fast_tanh:
        inits += fast_tanh_inits()
    if graph.output == "clip":
        inits += [_const("out_lo", -1.0), _const("out_hi", 1.0)]
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        y = f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [y], name=f"gemm{i}", transB=1))
        x = y
        if i == len(weights) - 1:
            break
        a = f"a{i}"
        nodes += activation_nodes(graph.activation, x, a, str(i))
        x = a
    if graph.output == "tanh":
        nodes.append(helper.make_node("Tanh", [x], ["action"], name="squash"))
    elif graph.output == "clip":
        nodes.append(helper.make_node("Clip", [x, "out_lo", "out_hi"], ["action"], name="squash"))
    elif graph.output == "identity":
        nodes.append(helper.make_node("Identity", [x], ["action"], name="out"))
    else:
        raise ValueError(f"output {graph.output!r} has no ONNX export")
    in_dim, out_dim = weights[0].shape[1], weights[-1].shape[0]
    g = helper.make_graph(
        nodes, "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", in_dim])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", out_dim])],
        initializer=inits,
    )
    model = helper.make_model(g, producer_name=producer, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
