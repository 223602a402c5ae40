"""Loading ONNX models for the torch-free runtimes: one single-threaded CPU session per network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from deploy.inputs import ModelError

__all__ = ["SessionCall", "load_one_in_one_out", "load_onnx", "onnx_session"]


def onnx_session(model: str | Path | Any) -> ort.InferenceSession:
    """A single-threaded CPU onnxruntime session (deterministic, no thread-pool wake-ups).

    ``model``: a file path or an in-memory ``onnx.ModelProto`` (the exporter's check before writing).
    """
    src = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def load_onnx(export_dir: Path) -> ort.InferenceSession:
    """``export_dir/policy.onnx`` in a :func:`onnx_session`, or a one-line :class:`ModelError`."""
    path = export_dir / "policy.onnx"
    if not path.is_file():
        raise ModelError(f"no policy.onnx in {export_dir}")
    try:
        return onnx_session(path)
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load ONNX model ({first[:200]})") from None


def load_one_in_one_out(export_dir: Path, in_width: int, out_width: int) -> tuple[ort.InferenceSession, str, list[str]]:
    """:func:`load_onnx`, checked to have one input of ``in_width`` and one output of ``out_width`` (the
    observation and output widths ``policy.json`` declares); the session, its input name and output names."""
    session = load_onnx(export_dir)
    path = export_dir / "policy.onnx"
    ins, outs = session.get_inputs(), session.get_outputs()
    if len(ins) != 1 or len(outs) != 1:
        raise ModelError(f"{path}: expected one input and one output, got {len(ins)} and {len(outs)}")
    in_w, out_w = ins[0].shape[-1], outs[0].shape[-1]
    if in_w != in_width:
        raise ModelError(f"{path}: network input has width {in_w} but policy.json observation sums to {in_width}")
    if isinstance(out_w, int) and out_w != out_width:
        raise ModelError(f"{path}: network output has width {out_w} but policy.json expects {out_width}")
    return session, ins[0].name, [outs[0].name]


class SessionCall:
    """``session.run(output_names, feed)[0]`` through onnxruntime's C session where this onnxruntime has one that
    accepts ``probe`` (skips ~5 us of Python checks per call; the caller's test vector then checks it), else
    through the public ``run``."""

    def __init__(self, session: ort.InferenceSession, output_names: list[str], probe: dict[str, np.ndarray]) -> None:
        self.session, self.output_names, self.options = session, output_names, ort.RunOptions()
        self._c = getattr(session, "_sess", None)
        try:
            self._c.run(output_names, probe, self.options)
        except Exception:  # no C session, or one with another signature: the public path
            self._c = None

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        if self._c is not None:
            return self._c.run(self.output_names, feed, self.options)[0]
        return self.session.run(self.output_names, feed)[0]
