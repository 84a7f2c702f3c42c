"""The default optimizer (training/optim.py): the decay groups, and the fused AdamW path
against PyTorch's plain (for-loop) AdamW and against the fp64 update rule."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from attnlab.training.config import TrainConfig
from attnlab.training.optim import adamw, default_optimizer, fused_applies, no_decay_names


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 50))


def _train(model: nn.Module, optimizer, steps: int = 5) -> None:
    ids = torch.randint(0, 50, (8, 6), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        optimizer.step()


def test_embeddings_norms_and_biases_are_not_decayed():
    assert no_decay_names(_model()) == {"0.weight", "1.bias", "2.weight", "2.bias", "3.bias"}


def test_the_default_optimizer_is_fused_on_plain_cpu_tensors():
    optimizer = default_optimizer(_model(), TrainConfig(weight_decay=0.1))
    assert all(group["fused"] for group in optimizer.param_groups)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]


def test_fused_is_declined_where_it_does_not_apply():
    assert not fused_applies([])
    assert not fused_applies([torch.ones(2, dtype=torch.long)])
    assert not fused_applies([nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2, device="meta"))])
    assert fused_applies([nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2, dtype=torch.bfloat16))])


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fused_updates_match_the_plain_path_and_the_fp64_rule(weight_decay):
    """Five updates: fused fp32 and PyTorch's for-loop fp32 each within 1e-6 (relative to
    the parameters' scale) of the same updates in fp64, and within 1e-6 of each other."""
    options = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay)
    models = {name: _model() for name in ("fused", "plain", "fp64")}
    models["fp64"].double()
    _train(models["fused"], adamw(models["fused"].parameters(), **options))
    assert adamw(models["fused"].parameters(), **options).param_groups[0]["fused"]
    _train(models["plain"], torch.optim.AdamW(models["plain"].parameters(), foreach=False, **options))
    _train(models["fp64"], torch.optim.AdamW(models["fp64"].parameters(), foreach=False, **options))
    reference = dict(models["fp64"].named_parameters())
    initial = dict(_model().named_parameters())
    for name in ("fused", "plain"):
        for key, p in models[name].named_parameters():
            moved = (reference[key] - initial[key].double()).abs().max()
            assert moved > 1e-3  # the updates did something
            assert (p.double() - reference[key]).abs().max() <= 1e-6 * max(1.0, reference[key].abs().max()), (name, key)


def test_a_fused_state_dict_loads_into_the_plain_optimizer_and_continues_identically():
    fused_model, plain_model = _model(), _model()
    fused = adamw(fused_model.parameters(), lr=1e-2)
    _train(fused_model, fused, steps=2)
    plain_model.load_state_dict(fused_model.state_dict())
    plain = torch.optim.AdamW(plain_model.parameters(), lr=1e-2)
    state = copy.deepcopy(fused.state_dict())  # load_state_dict would share the moment tensors
    plain.load_state_dict(state)
    assert set(plain.state_dict()["state"][0]) == set(state["state"][0])  # same keys: step, exp_avg, exp_avg_sq
    _train(fused_model, fused, steps=2)
    _train(plain_model, plain, steps=2)
    for a, b in zip(fused_model.parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
