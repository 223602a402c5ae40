"""Write a recurrent (GRU) actor as a plain ONNX graph with its state as an input and an output.

``obs [batch, in], state_in [batch, S] -> action [batch, out], state_out [batch, S]``; the caller feeds
``state_out`` back as the next call's ``state_in`` and zeros at the start of every episode. The cell is spelled
out in elementary ops (Gemm, Split, Sigmoid, Tanh, Mul, Add, Sub, Concat) rather than ONNX's ``GRU`` so that
its arithmetic is torch's ``GRUCell`` term by term (gate order r, z, n; the reset gate applied after the
hidden-side product).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deploy.export.onnx_graph import OPSET, activation_nodes, fast_tanh_inits
from robot_rl.models.recurrent import RecurrentGraph

STATE_IN, STATE_OUT = "state_in", "state_out"


def build_recurrent_onnx(graph: RecurrentGraph, producer: str = "robot-rl") -> onnx.ModelProto:
    """The ONNX model of a :class:`~robot_rl.models.recurrent.GRUActor` (see the module docstring)."""
    s = graph.state_size
    arrays = {"W_in": graph.w_in, "b_in": graph.b_in, "W_ih": graph.w_ih, "b_ih": graph.b_ih, "W_hh": graph.w_hh,
              "b_hh": graph.b_hh, "W_out": graph.w_out, "b_out": graph.b_out,
              "gate_split": np.array([s, s, s], np.int64)}
    inits = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in arrays.items()]
    if graph.activation == "fast_tanh":
        inits += fast_tanh_inits()
    if graph.output != "tanh":
        raise ValueError(f"output {graph.output!r} has no recurrent ONNX export (tanh only)")
    n = helper.make_node
    nodes = [n("Gemm", ["obs", "W_in", "b_in"], ["x0"], name="gemm_in", transB=1),
             *activation_nodes(graph.activation, "x0", "x", "_in"),
             n("Gemm", ["x", "W_ih", "b_ih"], ["gi"], name="gemm_ih", transB=1),
             n("Gemm", [STATE_IN, "W_hh", "b_hh"], ["gh"], name="gemm_hh", transB=1),
             n("Split", ["gi", "gate_split"], ["i_r", "i_z", "i_n"], name="split_i", axis=1),
             n("Split", ["gh", "gate_split"], ["h_r", "h_z", "h_n"], name="split_h", axis=1),
             n("Add", ["i_r", "h_r"], ["r0"], name="r_add"), n("Sigmoid", ["r0"], ["r"], name="r_gate"),
             n("Add", ["i_z", "h_z"], ["z0"], name="z_add"), n("Sigmoid", ["z0"], ["z"], name="z_gate"),
             n("Mul", ["r", "h_n"], ["rh"], name="n_reset"), n("Add", ["i_n", "rh"], ["n0"], name="n_add"),
             n("Tanh", ["n0"], ["nn"], name="n_gate"),
             # state' = (1 - z) n + z state = n + z (state - n)
             n("Sub", [STATE_IN, "nn"], ["d"], name="blend_sub"), n("Mul", ["z", "d"], ["zd"], name="blend_mul"),
             n("Add", ["nn", "zd"], [STATE_OUT], name="blend_add"),
             n("Concat", ["x", STATE_OUT], ["xs"], name="concat", axis=1),
             n("Gemm", ["xs", "W_out", "b_out"], ["y"], name="gemm_out", transB=1),
             n("Tanh", ["y"], ["action"], name="squash")]
    f = TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "recurrent_policy",
        [helper.make_tensor_value_info("obs", f, ["batch", graph.w_in.shape[1]]),
         helper.make_tensor_value_info(STATE_IN, f, ["batch", s])],
        [helper.make_tensor_value_info("action", f, ["batch", graph.w_out.shape[0]]),
         helper.make_tensor_value_info(STATE_OUT, f, ["batch", s])],
        initializer=inits,
    )
    model = helper.make_model(g, producer_name=producer, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
