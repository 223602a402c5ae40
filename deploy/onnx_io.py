"""Loading ONNX models for the torch-free runtimes: one single-threaded CPU session per network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort

from deploy.inputs import ModelError

__all__ = ["load_onnx", "onnx_session"]


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
