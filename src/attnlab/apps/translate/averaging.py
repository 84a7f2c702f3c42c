"""Checkpoint averaging: the translator's final weights are the mean of its last N saves.

Vaswani et al. (2017) average the last 5 (base) or 20 (big) checkpoints; Popel & Bojar
(2018) measure it a free +0.2-0.5 BLEU on small budgets. The weights late in a run wander
around a minimum along the directions the learning rate still moves them; their mean sits
closer to it::

    theta_avg = (1 / N) * sum_{k=1..N} theta_{s_k}       s_1 < ... < s_N: the last N saves

:class:`LastSaves` keeps copies of the last ``n`` saves in memory (a translator is small)
and writes their mean into the model at the end; buffers (no gradient: positions) are
averaged too, integer ones copied from the last save.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import nn


class LastSaves:
    """``record(model)`` at each save; ``average_into(model)`` at the end (no-op below 2 saves)."""

    def __init__(self, n: int):
        self.saves: deque[dict[str, torch.Tensor]] = deque(maxlen=max(n, 1))
        self.steps: deque[int] = deque(maxlen=max(n, 1))

    def record(self, model: nn.Module, step: int) -> None:
        if self.steps and self.steps[-1] == step:  # the final save repeats the last periodic one
            self.saves.pop()
            self.steps.pop()
        self.saves.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        self.steps.append(step)

    def average_into(self, model: nn.Module) -> list[int]:
        """Load the mean of the recorded saves into ``model``; returns the steps averaged."""
        if len(self.saves) < 2:
            return list(self.steps)
        mean = {}
        for name, last in self.saves[-1].items():
            if last.is_floating_point():
                mean[name] = (sum(s[name].double() for s in self.saves) / len(self.saves)).to(last.dtype)
            else:
                mean[name] = last
        model.load_state_dict(mean)
        return list(self.steps)
