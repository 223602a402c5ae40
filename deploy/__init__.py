"""Deployment: export (torch -> ONNX / C), torch-free runtime, ROS 2 node."""
