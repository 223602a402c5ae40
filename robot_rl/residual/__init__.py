"""Residual RL on a frozen chunked base: the per-env base executor (:mod:`.base_policy`), ResiP (residual PPO)."""
