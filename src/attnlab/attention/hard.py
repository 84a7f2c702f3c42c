"""Hard attention (Xu et al. 2015, "Show, Attend and Tell", section 4.1): attend to exactly
one memory entry.

    e_ij = score(s_i, h_j),   p_ij = softmax_j(e_ij)
    training, REINFORCE:  j_i ~ Categorical(p_i),  c_i = v_{j_i};  the encoder-decoder is
        trained on log p(y | j, x) and the scorer on the score-function gradient
        (reward R = log p(y | j, x), baseline b a moving average of R):
            L_attn = -(R - b) sum_i log p_{i, j_i}
        As Xu et al. do, with probability ``expected_prob`` (0.5) a step uses the expected
        context c_i = sum_j p_ij v_j instead of a sample (that step has no log p term);
        without it the scorer learns too slowly from the score function alone.
    training, Gumbel-softmax straight-through (Jang et al. 2017): one-hot of
        argmax_j (e_ij + g_ij) in the forward pass, gradients of softmax((e + g) / tau)
    inference: the argmax, j_i = argmax_j e_ij.

Sampling and the argmax are the ``"sample"`` and ``"hardmax"`` normalizers of the shared
core; any :class:`attnlab.attention.memory_attention.MemoryAttention` (Bahdanau, Luong)
provides the scores.

Notation: B batch, T target steps, Lk memory length, Dq query width, Dv value width.
Shapes: ``query (B, Dq)``, ``keys (B, Lk, Dk)``, ``values (B, Lk, Dv)``, ``mask (B, Lk)`` bool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.core import AttentionOutput, attend_step, check_module_dtype, weighted_sum
from attnlab.attention.memory_attention import MemoryAttention
from attnlab.errors import AttnlabError

ESTIMATORS = ("reinforce", "gumbel")


class ReinforceBaseline(nn.Module):
    """A moving-average baseline ``b <- decay b + (1 - decay) mean(R)`` for REINFORCE."""

    def __init__(self, decay: float = 0.9):
        super().__init__()
        if not 0.0 <= decay <= 1.0:  # 1: a baseline that stays at its first value (legal)
            raise AttnlabError(f"decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.register_buffer("value", torch.zeros(()))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def loss(self, log_prob: Tensor, reward: Tensor) -> Tensor:
        """``-(R - b) log p`` averaged over the batch; ``log_prob``, ``reward`` ``(B,)``.

        The reward carries no gradient; the baseline moves after it is used (training only).
        """
        reward = reward.detach().float()
        advantage = reward - self.value if bool(self.started) else reward - reward.mean()
        if self.training:
            mean = reward.mean()
            self.value.copy_(torch.where(self.started, self.decay * self.value + (1 - self.decay) * mean, mean))
            self.started.fill_(True)
        return -(advantage * log_prob.float()).mean()


class HardAttention(nn.Module):
    """Stochastic hard attention on the scores of ``scorer``; see the module docstring.

    Args:
        scorer: a Bahdanau or Luong module (its ``precompute_keys`` and ``score`` are used).
        estimator: ``"reinforce"`` (sampled, with :attr:`baseline`) or ``"gumbel"``
            (straight-through Gumbel-softmax with ``temperature``).
    """

    def __init__(self, scorer: MemoryAttention, *, estimator: str = "reinforce", temperature: float = 1.0,
                 baseline_decay: float = 0.9, expected_prob: float = 0.5):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise AttnlabError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if temperature <= 0:
            raise AttnlabError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= expected_prob <= 1.0:
            raise AttnlabError(f"expected_prob must be in [0, 1], got {expected_prob}")
        self.scorer, self.estimator, self.temperature = scorer, estimator, temperature
        self.expected_prob = expected_prob
        self.baseline = ReinforceBaseline(baseline_decay)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        return self.scorer.precompute_keys(keys)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        *,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> AttentionOutput:
        """One decoder step: one-hot ``weights (B, Lk)``, ``output (B, Dv)`` and, when sampling
        (REINFORCE in training), ``log_prob (B,)`` of the sampled entry.
        """
        check_module_dtype(self, query=query, keys=keys, values=values)
        projected_keys = self.precompute_keys(keys) if projected_keys is None else projected_keys
        scores = self.scorer.score(query[:, None, :], projected_keys)[:, 0]  # (B, Lk)
        if not self.training:
            return attend_step(scores, values, mask, normalizer="hardmax")
        if self.estimator == "reinforce":
            return self._sample(scores, values, mask, generator)
        gumbel = -torch.empty_like(scores).exponential_(generator=generator).log()  # g = -log(Exp(1))
        soft = attend_step((scores + gumbel) / self.temperature, values, mask).weights  # (B, Lk)
        hard = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype) * (soft.sum(-1, keepdim=True) > 0)
        weights = hard - soft.detach() + soft  # forward: one-hot; backward: d soft
        return AttentionOutput(weighted_sum(weights, values), weights)

    def _sample(self, scores: Tensor, values: Tensor, mask: Tensor | None, generator) -> AttentionOutput:
        """A sampled one-hot row, or (with probability ``expected_prob``) the soft row, per batch element."""
        sampled = attend_step(scores, values, mask, normalizer="sample", generator=generator)
        if self.expected_prob == 0:
            return sampled
        soft = attend_step(scores, values, mask).weights  # (B, Lk)
        draw = torch.rand(scores.shape[0], generator=generator, device=scores.device)
        use_soft = (draw < self.expected_prob)[:, None]  # (B, 1)
        weights = torch.where(use_soft, soft, sampled.weights)
        log_prob = sampled.log_prob.masked_fill(use_soft[:, 0], 0.0)
        return AttentionOutput(weighted_sum(weights, values), weights, log_prob)

    def reinforce_loss(self, log_prob: Tensor, reward: Tensor) -> Tensor:
        """The scorer's REINFORCE loss for ``log_prob (B,)`` (summed over steps) and ``reward (B,)``."""
        return self.baseline.loss(log_prob, reward)
