"""Which heads matter: the loss when a head is masked, Michel et al.'s gradient proxy, pruning.

Each head h of each attention layer gets a gate ξ_h multiplying its output before the
output projection (a forward pre-hook on ``out_proj``, the input ``(B, Lq, H·Dh)`` split
into H blocks of Dh: the model's own code runs unchanged):

    MultiHead(Q, K, V) = W^O [ξ_1 head_1; ...; ξ_H head_H]            (ξ = 1: the model as is)
    masking importance   I_h = L(ξ_h = 0) - L(ξ = 1)                  L = mean_n -log p_n(target)
    gradient proxy       I'_h = mean_n | d L_n / d ξ_h |  at ξ = 1    ("Are Sixteen Heads Really
                                                                       Better than One?", Michel,
                                                                       Levy & Neubig 2019, eq. 2)
    pruning curve        L and mean p after masking the k least important heads, k = 0..all

A head whose output the model never uses has I_h = I'_h = 0 exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.errors import AttnlabError
from attnlab.explain.explainable import Explainable, groups


def attention_modules(model: nn.Module) -> list[tuple[str, MultiHeadAttention]]:
    """The model's multi-head attention layers, in order of definition."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)]


@contextmanager
def head_gates(layers: list[MultiHeadAttention], gates: Tensor) -> Iterator[None]:
    """While open, head h of layer l is scaled by ``gates[l, h]`` (``(layers, H)``)."""
    def gate(index: int, mha: MultiHeadAttention):
        def hook(_out_proj: nn.Module, args: tuple) -> tuple:
            x = args[0]  # (B, Lq, H Dh)
            heads = x.unflatten(-1, (mha.num_heads, mha.head_dim))  # (B, Lq, H, Dh)
            g = gates[index, : mha.num_heads].to(x.dtype)
            return ((heads * g[:, None]).flatten(-2), *args[1:])
        return hook

    handles = [m.out_proj.register_forward_pre_hook(gate(i, m)) for i, m in enumerate(layers)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _losses(explainables: list[Explainable]) -> Tensor:
    """``(n,)``: -log p(target) of each prediction on its unperturbed input (one forward for
    the predictions that share one, :func:`groups`)."""
    losses = []
    for group in groups(explainables):
        x = group[0]
        if len(group) == 1:
            losses.append(-x.run(x.inputs[None], False)[0])
        else:
            losses.append(-x.shared.run(x.inputs[None], False)[0][0, [o.column for o in group]])
    return torch.cat(losses)


@dataclass
class HeadImportance:
    names: list[str]  # attention layer names (module paths)
    masked: Tensor  # (layers, H) I_h
    gradient: Tensor  # (layers, H) I'_h
    base_loss: float

    def rows(self) -> list[dict[str, object]]:
        return [{"layer": self.names[l], "head": h, "importance": float(self.masked[l, h]),
                 "gradient": float(self.gradient[l, h])}
                for l in range(self.masked.shape[0]) for h in range(self.masked.shape[1])]


def head_importance(explainables: list[Explainable], model: nn.Module) -> HeadImportance:
    """Masking and gradient importance of every head over the predictions."""
    named = attention_modules(model)
    if not named:
        raise AttnlabError(f"{type(model).__name__} has no multi-head attention layers to mask")
    layers = [m for _, m in named]
    width = max(m.num_heads for m in layers)
    ones = torch.ones(len(layers), width, dtype=torch.float64)
    with torch.no_grad(), head_gates(layers, ones):
        base = float(_losses(explainables).mean())
    masked = torch.zeros_like(ones)
    for l, m in enumerate(layers):
        for h in range(m.num_heads):
            gates = ones.clone()
            gates[l, h] = 0
            with torch.no_grad(), head_gates(layers, gates):
                masked[l, h] = float(_losses(explainables).mean()) - base
    gradient = torch.zeros_like(ones)
    for group in groups(explainables):  # one forward per group, one backward per prediction
        gates = ones.clone().requires_grad_(True)
        with torch.enable_grad(), head_gates(layers, gates):
            losses = _losses(group)
            for i in range(len(group)):
                (grad,) = torch.autograd.grad(losses[i], gates, retain_graph=i + 1 < len(group))
                gradient += grad.abs() / len(explainables)
    return HeadImportance([n for n, _ in named], masked, gradient, base)


def pruning_curve(explainables: list[Explainable], model: nn.Module, importance: Tensor,
                  points: int = 17) -> list[dict[str, float]]:
    """Loss and mean p(target) with the k least important heads masked (``importance (layers, H)``)."""
    layers = [m for _, m in attention_modules(model)]
    valid = torch.tensor([[h < m.num_heads for h in range(importance.shape[1])] for m in layers])
    order = [int(i) for i in torch.argsort(importance.flatten(), stable=True) if valid.flatten()[i]]
    ks = sorted({round(len(order) * n / (points - 1)) for n in range(points)})
    curve = []
    for k in ks:
        gates = torch.ones(importance.shape, dtype=torch.float64).flatten()
        gates[order[:k]] = 0
        with torch.no_grad(), head_gates(layers, gates.view(importance.shape)):
            losses = _losses(explainables)
        curve.append({"pruned": k, "loss": float(losses.mean()), "probability": float((-losses).exp().mean())})
    return curve
