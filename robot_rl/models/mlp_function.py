"""The forward pass of an :class:`~robot_rl.models.mlp.MLP` as one autograd node with a hand-written backward.

Autograd of ``mlp(x)`` records about 20 nodes per call (the fast tanh alone is seven elementwise ops); an
analytic policy gradient calls the actor once per simulated step, so on small batches the bookkeeping costs
more than the arithmetic. :func:`mlp_apply` computes the same forward values with the same ops (bit-identical
to ``mlp(x)``) and back-propagates with three matrix products per layer and closed-form activation
derivatives (equal to autograd's up to float rounding).
"""

from __future__ import annotations

from typing import Any

import torch

from robot_rl.models._fast_tanh_kernels import applies, fast_tanh
from robot_rl.models.mlp import MLP

SUPPORTED_ACTIVATIONS = ("fast_tanh", "tanh", "relu")


def _fast_tanh(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(-3.0, 3.0)
    x2 = x * x
    return x * (x2 + 27.0) / (x2 * 9.0 + 27.0)


def _act_grad(name: str, pre: torch.Tensor, post: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g * act'(pre)`` (``post = act(pre)``)."""
    if name == "fast_tanh":
        # d/dx x (27 + x^2) / (27 + 9 x^2) = (x^2 - 9)^2 / (9 (3 + x^2)^2), zero at the clamp bounds |x| = 3
        x2 = pre.clamp(-3.0, 3.0).square()
        return g * (x2 - 9.0).square_().div_((x2 + 3.0).square_().mul_(9.0))
    if name == "tanh":
        return g * (1.0 - post * post)
    return g * (pre > 0)  # relu


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "fast_tanh":
        return _fast_tanh(x)
    return torch.tanh(x) if name == "tanh" else torch.relu(x)


class _MLPFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, activation: str, output: str, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        pres, posts = [], [x]
        h = x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = torch.addmm(b, h, w.t())
            if i < len(weights) - 1:
                h = _act(activation, z)
                pres.append(z)
                posts.append(h)
            else:
                h = torch.tanh(z) if output == "tanh" else z.clamp(-1.0, 1.0) if output == "clip" else z
                pres.append(z)
        ctx.save_for_backward(*params, *pres, *posts, h)
        ctx.activation, ctx.output, ctx.layers = activation, output, len(weights)
        return h

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n = ctx.layers
        saved = ctx.saved_tensors
        params, pres, posts, out = saved[:2 * n], saved[2 * n:3 * n], saved[3 * n:4 * n], saved[4 * n]
        if ctx.output == "tanh":
            g = g * (1.0 - out * out)
        elif ctx.output == "clip":
            g = g * ((pres[-1] >= -1.0) & (pres[-1] <= 1.0))
        grads: list[torch.Tensor | None] = [None] * (2 * n)
        gx = None
        for i in range(n - 1, -1, -1):
            w = params[2 * i]
            grads[2 * i] = g.t().mm(posts[i])
            grads[2 * i + 1] = g.sum(0)
            if i > 0 or ctx.needs_input_grad[0]:
                gh = g.mm(w)
                if i > 0:
                    g = _act_grad(ctx.activation, pres[i - 1], posts[i], gh)
                else:
                    gx = gh
        return (gx, None, None, *grads)


def mlp_forward(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` without recording a gradient, the fast tanh in one numba pass (bit-identical values)."""
    with torch.no_grad():
        if mlp.activation_name != "fast_tanh":
            return mlp(x)
        for layer in mlp.linears[:-1]:
            z = torch.nn.functional.linear(x, layer.weight, layer.bias)
            x = fast_tanh(z) if applies(z) else _fast_tanh(z)
        return mlp.squash(torch.nn.functional.linear(x, mlp.linears[-1].weight, mlp.linears[-1].bias))


def mlp_apply(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` as one autograd node (same values; see the module docstring). Falls back to ``mlp(x)`` for
    activations other than :data:`SUPPORTED_ACTIVATIONS` and to :func:`mlp_forward` when no gradient is
    recorded."""
    if not torch.is_grad_enabled():
        return mlp_forward(mlp, x)
    if mlp.activation_name not in SUPPORTED_ACTIVATIONS or x.dim() != 2:
        return mlp(x)
    params = [t for layer in mlp.linears for t in (layer.weight, layer.bias)]
    return _MLPFunction.apply(x, mlp.activation_name, mlp.output, *params)


__all__ = ["SUPPORTED_ACTIVATIONS", "mlp_apply", "mlp_forward"]
