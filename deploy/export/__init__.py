"""Exporters: ONNX (+ policy.json) from trained policies, C from ONNX."""
