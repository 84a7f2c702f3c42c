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

Every gate setting of a measure is one copy of the input in one batch (gates ``(G, layers,
H)``, copy g gated by setting g): the 1 + #heads settings of the masking importance, the
pruning curve's points, and the gradient proxy's copy per prediction (copy t differentiates
prediction t) each take one forward per input (or per :class:`Shared` group), ``CHUNK``
copies a pass, not one forward per setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.errors import AttnlabError
from attnlab.explain.explainable import CHUNK, Explainable, groups


def attention_modules(model: nn.Module) -> list[tuple[str, MultiHeadAttention]]:
    """The model's multi-head attention layers, in order of definition."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)]


@contextmanager
def head_gates(layers: list[MultiHeadAttention], gates: Tensor) -> Iterator[None]:
    """While open, head h of layer l is scaled by ``gates[l, h]`` (``(layers, H)``), or in
    copy b of the batch by ``gates[b, l, h]`` (``(B, layers, H)``)."""
    def gate(index: int, mha: MultiHeadAttention):
        def hook(_out_proj: nn.Module, args: tuple) -> tuple:
            x = args[0]  # (B, Lq, H Dh)
            heads = x.unflatten(-1, (mha.num_heads, mha.head_dim))  # (B, Lq, H, Dh)
            g = gates[..., index, : mha.num_heads].to(x.dtype)  # (H,) or (B, H)
            if g.dim() == 2 and g.shape[0] != x.shape[0]:
                raise AttnlabError(f"head gates: {g.shape[0]} settings for a batch of {x.shape[0]}")
            return ((heads * g[..., None, :, None] if g.dim() == 2 else heads * g[:, None]).flatten(-2), *args[1:])
        return hook

    handles = [m.out_proj.register_forward_pre_hook(gate(i, m)) for i, m in enumerate(layers)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _losses(explainables: list[Explainable], layers: list[MultiHeadAttention], gates: Tensor) -> Tensor:
    """``(G, n)``: -log p(target) of each prediction on its unperturbed input under each gate
    setting ``gates (G, layers, H)``: one copy per setting, ``CHUNK`` copies a forward (the
    predictions that share one forward read their columns of it, :func:`groups`)."""
    losses = []
    for group in groups(explainables):
        x, parts = group[0], []
        for part in gates.split(CHUNK):
            e = x.inputs[None].expand(len(part), -1, -1)
            with head_gates(layers, part):
                if len(group) == 1:
                    parts.append(-x.run(e, False)[0][:, None])  # (g, 1)
                else:
                    parts.append(-x.shared.run(e, False)[0][:, [o.column for o in group]])  # (g, T)
        losses.append(torch.cat(parts))
    return torch.cat(losses, dim=1)


def _gradients(explainables: list[Explainable], layers: list[MultiHeadAttention], width: int) -> Tensor:
    """``(n, layers, H)``: d -log p_n(target) / d ξ at ξ = 1, one copy per prediction (copy t
    of a :class:`Shared` group differentiates prediction t), one forward-backward per group."""
    out = []
    for group in groups(explainables):
        x, columns = group[0], torch.tensor([o.column for o in group])
        gates = torch.ones(len(group), len(layers), width, dtype=torch.float64, requires_grad=True)
        e = x.inputs[None].expand(len(group), -1, -1)
        with torch.enable_grad(), head_gates(layers, gates):
            if len(group) == 1:
                loss = -x.run(e, False)[0].sum()
            else:
                loss = -x.shared.run(e, False)[0].gather(1, columns.to(e.device)[:, None]).sum()
            (grad,) = torch.autograd.grad(loss, gates)
        out.append(grad)
    return torch.cat(out)


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
    heads = [(l, h) for l, m in enumerate(layers) for h in range(m.num_heads)]
    settings = ones.repeat(1 + len(heads), 1, 1)  # (1 + heads, layers, H): as is, then each head masked
    for i, (l, h) in enumerate(heads):
        settings[1 + i, l, h] = 0
    with torch.no_grad():
        losses = _losses(explainables, layers, settings).double().mean(dim=1)  # (1 + heads,)
    base, masked = float(losses[0]), torch.zeros_like(ones)
    for i, (l, h) in enumerate(heads):
        masked[l, h] = float(losses[1 + i]) - base
    gradient = _gradients(explainables, layers, width).abs().mean(dim=0)
    return HeadImportance([n for n, _ in named], masked, gradient, base)


def pruning_curve(explainables: list[Explainable], model: nn.Module, importance: Tensor,
                  points: int = 17) -> list[dict[str, float]]:
    """Loss and mean p(target) with the k least important heads masked (``importance (layers, H)``)."""
    layers = [m for _, m in attention_modules(model)]
    valid = torch.tensor([[h < m.num_heads for h in range(importance.shape[1])] for m in layers])
    order = [int(i) for i in torch.argsort(importance.flatten(), stable=True) if valid.flatten()[i]]
    ks = sorted({round(len(order) * n / (points - 1)) for n in range(points)})
    settings = torch.ones(len(ks), importance.numel(), dtype=torch.float64)  # (points, layers H)
    for i, k in enumerate(ks):
        settings[i, order[:k]] = 0
    with torch.no_grad():
        losses = _losses(explainables, layers, settings.view(len(ks), *importance.shape)).double()  # (points, n)
    return [{"pruned": k, "loss": float(row.mean()), "probability": float((-row).exp().mean())}
            for k, row in zip(ks, losses)]
