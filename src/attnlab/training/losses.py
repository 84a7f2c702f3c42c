"""One loss for the global batch, whatever the number of ranks.

A loss function returns either a scalar tensor -- a mean over the batch's *units*
(``loss_units(batch)``: its rows unless the app says otherwise, e.g. its target tokens)
-- or :data:`LossTerms`, ``{name: (mean, count)}``, for a loss that is a sum of means over
different things (BERT pre-training: masked tokens + sentence pairs). The loss of the
global batch, the one one process computes, is per term the mean over all its units::

    L = sum_t  (sum_r m_rt * n_rt) / N_t          N_t = sum_r n_rt   (r: ranks)

Each rank back-propagates its share ``sum_t m_rt * n_rt * world / N_t``;
``DistributedDataParallel`` (and FSDP) average gradients over the ranks, so the update is
the gradient of ``L`` itself. With one process the loss is used as returned (``n / N`` is
1), so a one-process run is unchanged to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

LossTerms = Mapping[str, tuple[Tensor, "int | float | Tensor"]]


def batch_rows(batch: Mapping) -> int:
    """The number of rows of a batch-first batch (0 when it holds no tensor)."""
    return next((v.shape[0] for v in batch.values() if isinstance(v, Tensor) and v.dim() > 0), 0)


@dataclass
class Terms:
    """A rank's loss terms: the means (with autograd) and their unit counts."""

    names: list[str]
    means: list[Tensor]
    counts: list[float]
    padding: bool = False  # a rank without rows of its own: computes, weighs nothing

    @classmethod
    def of(cls, loss: Tensor | LossTerms, units: float) -> Terms:
        if isinstance(loss, Tensor):
            _check_scalar("loss", loss)
            return cls(["loss"], [loss], [float(units)])
        if not isinstance(loss, Mapping) or not loss:
            raise AttnlabError(f"loss_fn must return a scalar tensor or {{name: (mean, count)}}, got {type(loss).__name__}")
        names, means, counts = [], [], []
        for name, value in loss.items():
            if not (isinstance(value, tuple) and len(value) == 2):
                raise AttnlabError(f"loss term {name!r}: expected (mean, count), got {value!r}")
            mean, count = value
            _check_scalar(f"loss term {name!r}", mean)
            names.append(str(name))
            means.append(mean)
            counts.append(float(count))
        return cls(names, means, counts)

    def as_padding(self) -> Terms:
        """These terms with no weight (the rank computed on a copy of another's row)."""
        return Terms(self.names, self.means, [0.0] * len(self.counts), padding=True)

    def stats(self) -> list[Tensor | float]:
        """What the ranks sum: ``m * n`` and ``n`` per term."""
        return [m.detach().double() * n if n else 0.0 for m, n in zip(self.means, self.counts)] + list(self.counts)

    def global_loss(self, summed: list[float]) -> float:
        """``L`` from the summed :meth:`stats` of all ranks."""
        k = len(self.names)
        totals = summed[k : 2 * k]
        for name, total in zip(self.names, totals):
            if total <= 0:
                raise AttnlabError(f"loss term {name!r} counts no units in the whole batch; its mean is undefined")
        return sum(s / n for s, n in zip(summed[:k], totals))

    def objective(self, summed: list[float] | None, world: int) -> Tensor:
        """What this rank back-propagates (``summed`` None: one process, the plain sum)."""
        if summed is None:
            return self.means[0] if len(self.means) == 1 else sum(self.means)
        if self.padding:  # a zero gradient, but through every parameter (DDP expects them all)
            return sum(m * 0.0 for m in self.means)
        totals = summed[len(self.names) : 2 * len(self.names)]
        # a term with no units on this rank (its mean is NaN) adds nothing here
        return sum(m * (n * world / total) for m, n, total in zip(self.means, self.counts, totals) if n)


def _check_scalar(what: str, value: object) -> None:
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        raise AttnlabError(f"loss_fn must return a scalar tensor, got {type(value).__name__} {getattr(value, 'shape', '')} ({what})")
