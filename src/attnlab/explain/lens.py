"""What the model is about to say, layer by layer and step by step.

    logit lens (nostalgebraist 2020)   each block's output h_l at the last position through the
                                       final norm and the unembedding: softmax(W_U LN_f(h_l));
                                       its top-k next-token guesses per layer
    step confidence                    a translator's teacher-forced steps: p_t(y_t) and the
                                       entropy H_t = -sum_v p_t(v) log p_t(v) (nats)

The lens reads a GPT-shaped model by duck typing (``blocks`` returning ``.hidden``,
``final_norm``, ``lm_head_weight``) through forward hooks: the model's forward runs as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def logit_lens(model: nn.Module, input_ids: Tensor, top_k: int = 3) -> list[list[tuple[int, float]]]:
    """Per layer (first first), the ``top_k`` (token id, probability) at the last position of ``input_ids (1, L)``."""
    hidden: list[Tensor] = []
    hooks = [block.register_forward_hook(lambda _m, _a, out: hidden.append(out.hidden[:, -1]))
             for block in model.blocks]
    try:
        with torch.no_grad():
            model(input_ids)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for h in hidden:  # (1, D)
        probs = F.linear(model.final_norm(h), model.lm_head_weight).float().softmax(-1)[0]  # (V,)
        p, ids = probs.topk(min(top_k, probs.shape[-1]))
        rows.append(list(zip(ids.tolist(), p.tolist())))
    return rows


def step_confidence(logits: Tensor, labels: Tensor) -> list[dict[str, float]]:
    """``logits (T, V)``, ``labels (T,)`` -> per step ``{"probability", "entropy"}``."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    chosen = log_p.gather(-1, labels[:, None])[:, 0].exp()
    return [{"probability": float(p), "entropy": float(h)} for p, h in zip(chosen, entropy)]
