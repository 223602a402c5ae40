"""Update rules (no environment loops): TD3, SAC, PPO — all asymmetric (actor: policy group, critic: critic group)."""
