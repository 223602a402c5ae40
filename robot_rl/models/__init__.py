"""Neural networks (nn.Modules) and the description of them that exporters read."""

from robot_rl.models.mlp import ACTIVATIONS, MLP, FastTanh, PolicyGraph
from robot_rl.models.normalizer import EmpiricalNormalizer

__all__ = ["ACTIVATIONS", "MLP", "EmpiricalNormalizer", "FastTanh", "PolicyGraph"]
