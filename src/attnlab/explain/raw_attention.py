"""Raw attention: the last layer's weights of the prediction's query, heads averaged.

    a_j = (1/H) sum_h A^(N)_h[q, u_j]

The baseline every later method is compared with ("Attention is not Explanation",
Jain & Wallace 2019; Wiegreffe & Pinter 2019). For a translator the last layer is the
decoder's last cross-attention (the target step's row over the source).
"""

from __future__ import annotations

from torch import Tensor

from attnlab.explain.explainable import Explainable


def raw_attention(x: Explainable) -> Tensor:
    """``(L,)``: the last layer's head-averaged attention of the query on each unit."""
    last = x.maps()[-1].mean(dim=0)  # (M, M)
    return last[x.query, x.units]
