"""Implementations of the ``robot-rl`` subcommands (one module each)."""
