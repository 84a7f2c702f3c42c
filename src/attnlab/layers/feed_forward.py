"""The position-wise feed-forward network of a Transformer block (Vaswani et al. 2017).

    FFN(x) = W_2 dropout(act(W_1 x + b_1)) + b_2        x: (B, L, D), hidden: (B, L, D_ff)

``act`` is ReLU in the original Transformer, GELU (erf) in BERT and ViT, and GELU with
the tanh approximation in GPT-2 (configs of the HF models may name others: SiLU, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.kernels.gelu_tanh import gelu_tanh
from attnlab.kernels.linear import Linear

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": gelu_tanh,  # F.gelu(x, approximate="tanh"), faster on the CPU in training
    "silu": F.silu,  # x sigmoid(x), a.k.a. swish
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),  # CLIP's GELU approximation
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "mish": F.mish,
    "relu6": F.relu6,
}


def get_activation(name: str):
    if name not in ACTIVATIONS:
        raise AttnlabError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """Two linear maps with an activation between; ``(B, L, D) -> (B, L, D)``."""

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.activation_name = activation
        self.activation = get_activation(activation)
        self.linear1 = Linear(d_model, d_ff, bias=bias)
        self.linear2 = Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))
