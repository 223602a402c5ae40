"""Pieces shared by the update rules."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from robot_rl.distributed import average_gradients, optimizer_params


def _impl(fused: bool) -> dict[str, bool | None]:
    """torch's single-kernel Adam (one fused op per parameter group; same update, other rounding) or the
    multi-tensor one (one foreach op per step of the algorithm)."""
    return {"fused": True} if fused else {"foreach": True}


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                   fused: bool = False) -> torch.optim.Optimizer:
    """Adam, or PyTorch's AdamW (decoupled decay ``w <- w (1 - lr weight_decay)`` on every parameter) when
    ``weight_decay > 0``. The L2F paper's optimizer is not this but RLtools' decay: :func:`make_rltools_adam`."""
    params = list(params)
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **_impl(fused))
    return torch.optim.Adam(params, lr=lr, **_impl(fused))


def make_rltools_adam(named_params: Iterable[tuple[str, nn.Parameter]], lr: float,
                      weight_decay: float, fused: bool = False) -> torch.optim.Optimizer:
    """Adam with RLtools' weight decay (the L2F paper's optimizer): every step, after the Adam update is formed,
    each weight *matrix* entry also moves by ``-w * weight_decay / 2`` (not scaled by the learning rate); biases
    are not decayed. Built as AdamW with per-group decay ``weight_decay / (2 lr)`` on weights and 0 on biases
    (AdamW multiplies by ``1 - lr * decay``), so the learning rate must stay constant."""
    weights, biases = [], []
    for name, p in named_params:
        (biases if "bias" in name else weights).append(p)
    if weight_decay <= 0:
        return torch.optim.Adam(weights + biases, lr=lr, **_impl(fused))
    groups = [{"params": weights, "weight_decay": weight_decay / (2.0 * lr)}, {"params": biases, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, **_impl(fused))


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` for all parameters."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def fused_adam_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` of a ``fused=True`` Adam/AdamW: the same kernel on the optimizer's own state (bit-identical),
    without ``Optimizer.step``'s per-call Python (hooks, checks, regrouping), which costs more than the kernel
    for small networks. Falls back to ``opt.step()`` until the state exists and for options it does not cover."""
    for group in opt.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if (not group.get("fused") or group["amsgrad"] or group["maximize"] or type(opt) not in _FUSED_KINDS
                or any(p not in opt.state for p in params)):
            opt.step()
            return
    for group in opt.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        states = [opt.state[p] for p in params]
        steps = [st["step"] for st in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        decoupled = group.get("decoupled_weight_decay", isinstance(opt, torch.optim.AdamW))
        (torch._fused_adamw_ if decoupled else torch._fused_adam_)(
            params, [p.grad for p in params], [st["exp_avg"] for st in states],
            [st["exp_avg_sq"] for st in states], [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
            beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)


_FUSED_KINDS = (torch.optim.Adam, torch.optim.AdamW)


def step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter] | None = None,
         max_grad_norm: float | None = None) -> None:
    """One optimiser step on ``loss`` (its gradient averaged over the ranks of a distributed run)."""
    if opt.defaults.get("fused"):
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = None
    else:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(optimizer_params(opt))
    if max_grad_norm is not None and params is not None:
        nn.utils.clip_grad_norm_(params, max_grad_norm)
    if opt.defaults.get("fused"):
        fused_adam_step(opt)
    else:
        opt.step()
