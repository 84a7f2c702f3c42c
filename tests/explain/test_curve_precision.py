"""The curves' forwards and integrated gradients' forward-backwards under bf16 autocast: the
same measures and attributions as fp32 within bf16's tolerance (~1e-2), not bit-equal (the
products did run in bf16); an unknown precision is one clear error."""

from __future__ import annotations

import pytest
import torch

from attnlab.explain.explainable import Explainable
from attnlab.explain.faithfulness import faithfulness_many
from attnlab.explain.integrated_gradients import integrated_gradients

L, D = 80, 16


def toy() -> Explainable:
    gen = torch.Generator().manual_seed(0)
    inputs, w = torch.randn(L, D, generator=gen), torch.randn(D, 5, generator=gen) / 4

    def run(e: torch.Tensor, need_weights: bool):
        logits = torch.tanh(e @ w).mean(1) * 4  # (S, 5); under autocast the product is bf16
        return torch.log_softmax(logits.float(), -1)[:, 2], []

    return Explainable(inputs, inputs.mean(0).expand(L, -1), run, [str(i) for i in range(L)], "2", 0,
                       torch.arange(L), [], "mean")


def test_bf16_curves_agree_with_fp32_within_tolerance():
    x, gen = toy(), torch.Generator().manual_seed(1)
    attributions = {f"m{i}": torch.rand(L, generator=gen) for i in range(3)}
    fp32 = faithfulness_many(x, attributions)
    bf16 = faithfulness_many(x, attributions, precision="bf16")
    differ = 0.0
    for name in attributions:
        for key in ("aopc", "deletion_auc", "insertion_auc", "comprehensiveness", "sufficiency"):
            assert abs(fp32[name][key] - bf16[name][key]) < 1e-2, (name, key)
        differ = max(differ, max(abs(a - b) for a, b in zip(fp32[name]["deletion"], bf16[name]["deletion"])))
    assert differ > 0


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="curve precision"):
        faithfulness_many(toy(), {"m": torch.rand(L)}, precision="fp16")


def test_bf16_integrated_gradients_agree_with_fp32_within_tolerance():
    x = toy()
    fp32, bf16 = integrated_gradients(x), integrated_gradients(x, precision="bf16")
    assert fp32.dtype == bf16.dtype == torch.float32
    scale = float(fp32.abs().max())
    assert float((fp32 - bf16).abs().max()) < 2e-2 * scale
    assert not torch.equal(fp32, bf16)
    with pytest.raises(ValueError, match="precision"):
        integrated_gradients(x, precision="fp16")
