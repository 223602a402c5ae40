"""Put first on PYTHONPATH of the node process in tests: the node must run without torch."""

raise ImportError("torch is blocked in the robot-rl-node test process (deploy must not import torch)")
