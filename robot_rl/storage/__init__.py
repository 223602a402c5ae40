"""Buffers: replay (off-policy, with reward recomputation) and rollout (on-policy)."""
