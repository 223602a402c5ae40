"""robot-rl: learning (algorithms, networks, trainers) and the command-line interface."""

__version__ = "0.1.0"
