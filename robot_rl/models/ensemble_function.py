"""The forward pass of an :class:`~robot_rl.models.critic.EnsembleMLP` as one autograd node.

The twin critics of TD3/SAC are small (64-256 wide) and evaluated on batches of a few hundred rows, where the
autograd bookkeeping of ~20 recorded ops per call (the fast tanh alone is seven) costs more than the batched
matrix products. :func:`ensemble_apply` computes the same forward values with the same ops (bit-identical to
``critic(x)``) and back-propagates with three batched matrix products per layer and the closed-form activation
derivatives (equal to autograd's up to float rounding); the fast tanh and its slope come from one numba pass
(:mod:`robot_rl.models._fast_tanh_kernels`) instead of sixteen elementwise torch ops. ``members``
evaluates only the first ``members`` critics (TD3's actor loss reads the first twin only); :func:`actor_apply`
runs an actor MLP through the same node.
"""

from __future__ import annotations

from typing import Any

import torch

from robot_rl.models._fast_tanh_kernels import fast_tanh, fast_tanh_slope
from robot_rl.models.critic import EnsembleMLP
from robot_rl.models.mlp import MLP
from robot_rl.models.mlp_function import SUPPORTED_ACTIVATIONS, _act, _act_grad, mlp_apply


def _kernel(activation: str, w: torch.Tensor) -> bool:
    """Whether the fast tanh goes through the numba kernel (float32 on the CPU)."""
    return activation == "fast_tanh" and w.device.type == "cpu" and w.dtype == torch.float32


def _forward(x: torch.Tensor, activation: str, weights: tuple[torch.Tensor, ...], biases: tuple[torch.Tensor, ...],
             keep: bool) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Output and, with ``keep``, what the backward needs: per hidden layer the activation's slope (fast tanh
    through the numba kernel) or its pre-activation, and every layer's input."""
    n = weights[0].shape[0]
    h = x.unsqueeze(0).expand(n, -1, -1) if x.dim() == 2 else x
    kernel = _kernel(activation, weights[0])
    grads, posts = [], [h]
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = torch.baddbmm(b, h, w)
        if i == last:
            return z, grads, posts
        if kernel:  # baddbmm's output: contiguous, like the weights on the CPU in float32
            if keep:
                h, slope = fast_tanh_slope(z)
                grads.append(slope)
            else:
                h = fast_tanh(z)
        else:
            h = _act(activation, z)
            grads.append(z)
        posts.append(h)
    raise AssertionError("unreachable")


class _EnsembleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, activation: str, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        with torch.no_grad():
            out, grads, posts = _forward(x, activation, weights, biases, keep=True)
        ctx.save_for_backward(*weights, *grads, *posts)
        ctx.activation, ctx.layers, ctx.shared = activation, len(weights), x.dim() == 2
        ctx.slopes = _kernel(activation, weights[0])
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n = ctx.layers
        saved = ctx.saved_tensors
        weights, grads, posts = saved[:n], saved[n:2 * n - 1], saved[2 * n - 1:]
        need = ctx.needs_input_grad
        out: list[torch.Tensor | None] = [None] * (2 * n)
        gx = None
        for i in range(n - 1, -1, -1):
            if need[2 + 2 * i]:
                out[2 * i] = torch.bmm(posts[i].transpose(1, 2), g)
            if need[3 + 2 * i]:
                out[2 * i + 1] = g.sum(1, keepdim=True)
            if i > 0 or need[0]:
                gh = torch.bmm(g, weights[i].transpose(1, 2))
                if i == 0:
                    gx = gh.sum(0) if ctx.shared else gh
                elif ctx.slopes:
                    g = gh.mul_(grads[i - 1])
                else:
                    g = _act_grad(ctx.activation, grads[i - 1], posts[i], gh)
        return (gx, None, *out)


def ensemble_apply(critic: EnsembleMLP, x: torch.Tensor, members: int | None = None) -> torch.Tensor:
    """``critic(x)[:members]`` as one autograd node (same values; see the module docstring). Falls back to the
    module's ops for activations other than :data:`SUPPORTED_ACTIVATIONS` and when no gradient is recorded."""
    if not isinstance(critic, EnsembleMLP) or critic.activation_name not in SUPPORTED_ACTIVATIONS:
        return critic(x)[:members]
    k = critic.n if members is None else members
    params = [t[:k] if k < critic.n else t for pair in zip(critic.weights, critic.biases, strict=True)
              for t in pair]
    if not torch.is_grad_enabled():
        return _forward(x, critic.activation_name, tuple(params[0::2]), tuple(params[1::2]), keep=False)[0]
    return _EnsembleFunction.apply(x, critic.activation_name, *params)


def actor_apply(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` for a ``[B, in]`` batch through the same node, as a one-member ensemble on views of the
    weights (the fast tanh and its slope in one numba pass, unlike :func:`mlp_apply`). Other activations,
    other shapes and no-gradient calls go to :func:`mlp_apply`."""
    if mlp.activation_name not in SUPPORTED_ACTIVATIONS or x.dim() != 2 or not torch.is_grad_enabled():
        return mlp_apply(mlp, x)
    params = [t for layer in mlp.linears for t in (layer.weight.t().unsqueeze(0), layer.bias.view(1, 1, -1))]
    return mlp.squash(_EnsembleFunction.apply(x, mlp.activation_name, *params)[0])


__all__ = ["actor_apply", "ensemble_apply"]
