"""Batched environments and simulator backends (no dependency on robot_rl)."""
