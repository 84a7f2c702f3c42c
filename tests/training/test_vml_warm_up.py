"""The one-thread warm-up of PyTorch's vector math library (training/threads.py): every
command and every ``Trainer.fit`` does it before any multi-threaded math, on tensors too
small for PyTorch to split, and the square root it guards stays accurate on two threads."""

from __future__ import annotations

import torch

import attnlab.training.trainer as trainer_module
from attnlab.apps import common
from attnlab.training import threads


def test_the_warm_up_calls_every_function_on_the_calling_thread_only(monkeypatch):
    seen = []
    ops = tuple((lambda name: (lambda x: seen.append((name, x.numel(), x.dtype))))(f"op{i}") for i in range(3))
    monkeypatch.setattr(threads, "VML_OPS", ops)
    threads.warm_up_vml.__wrapped__()
    assert [name for name, _, _ in seen] == ["op0", "op1", "op2"] * 2
    assert {dtype for _, _, dtype in seen} == {torch.float32, torch.float64}
    assert all(n < 32768 for _, n, _ in seen)  # below PyTorch's grain: no parallel region


def test_commands_and_the_trainer_warm_up_before_threaded_work(monkeypatch, make_model, make_data, tmp_path):
    calls = []
    monkeypatch.setattr(common, "warm_up_vml", lambda: calls.append("apply_threads"))
    monkeypatch.setattr(trainer_module, "warm_up_vml", lambda: calls.append("fit"))
    before = torch.get_num_threads()
    try:
        common.apply_threads(None)
    finally:
        torch.set_num_threads(before)
    config = trainer_module.TrainConfig(out_dir=str(tmp_path / "run"), steps=1, progress=False)
    trainer_module.Trainer(make_model(), make_data(), config).fit()
    assert calls == ["apply_threads", "fit"]


def test_the_square_root_stays_accurate_on_two_threads():
    """VML's accurate kernel (<= 2 ulp of fp64), not ``x * rsqrt(x)`` with a 12-bit
    approximation (errors up to 3.7e-4), which a racing first call once produced."""
    threads.warm_up_vml()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = (torch.randn(65536, generator=torch.Generator().manual_seed(0)) * 1e-5) ** 2
        root = x.sqrt()
    finally:
        torch.set_num_threads(before)
    exact = x.double().sqrt()
    assert ((root.double() - exact).abs() / exact).max().item() < 2.4e-7
