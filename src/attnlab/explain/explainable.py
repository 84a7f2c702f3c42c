"""The one seam every explanation method reads: :class:`Explainable`, one prediction.

An adapter (one per model kind, in ``attnlab.apps.explain``) turns a model and an input
into an ``Explainable``: the differentiable input units, a forward from them, and the
attention graph over them. Every method is a function ``Explainable -> (L,)``.

    inputs   (L, D)   one row per input unit: token embeddings, patch embeddings, node features
    baseline (L, D)   what a removed unit becomes: the model's pad / [MASK] embedding or the mean
    run(e (S, L, D), need_weights) -> (score (S,), raw)
             score: log p(target) of the prediction with the units ``e``, S copies at once;
             raw: the model's own attention tensors (in the autograd graph)
    layout(raw) -> per layer (S, H, M, M), rows = queries, over the M nodes of the attention
             graph (the units plus, for a translator, the decoder's query node), first layer
             first; a linear placement of ``raw`` (plus constant rows), so it places gradients too
    query    the node whose prediction is explained; ``units (L,)`` the node of each unit
    residual per layer: True where the block adds its input back (rollout adds 0.5 I there)

The model's own forward runs on the embeddings through :func:`replace_output` (a forward
hook on the embedding module), so no model math is copied here.

Predictions on the same units that one forward scores together (a translator's target
steps: one teacher-forced pass gives every step's log-probability) carry the same
:class:`Shared` and their ``column`` in it; the curves and head importance then run one
forward for all of them (:func:`groups`).

Notation: L units, D width, S copies of one input (steps, perturbations), H heads, M nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError

Run = Callable[[Tensor, bool], tuple[Tensor, list[Tensor]]]
CHUNK = 64  # copies a forward when scoring without gradients
SHARED_BATCH = 256  # copies a forward-backward of a shared forward's gradients (many small predictions)


@dataclass
class Explainable:
    """One prediction of one model on one input (see the module docstring)."""

    inputs: Tensor  # (L, D)
    baseline: Tensor  # (L, D)
    run: Run
    labels: list[str]
    target: str
    query: int
    units: Tensor  # (L,) long: node of each unit in the attention graph
    residual: list[bool]
    replacement: str  # how a removed unit is replaced, in words ("pad embedding", ...)
    module: nn.Module | None = None  # the model (head importance hooks its attention)
    extras: dict = field(default_factory=dict)
    layout: Callable[[list[Tensor]], list[Tensor]] = list
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # maps, input gradient: computed once
    shared: Shared | None = None  # the forward this prediction shares with others on the same units
    column: int = 0  # its column in ``shared``'s scores

    def __post_init__(self) -> None:
        if self.inputs.dim() != 2 or self.baseline.shape != self.inputs.shape:
            raise AttnlabError(f"inputs (L, D) and baseline must match, got {tuple(self.inputs.shape)} "
                               f"and {tuple(self.baseline.shape)}")
        if len(self.labels) != self.inputs.shape[0] or self.units.shape != (self.inputs.shape[0],):
            raise AttnlabError(f"labels and units: expected {self.inputs.shape[0]} (one per unit)")

    @property
    def num_units(self) -> int:
        return self.inputs.shape[0]

    def score(self, e: Tensor, chunk: int = CHUNK) -> Tensor:
        """log p(target) of ``e (S, L, D)`` -> ``(S,)``, without gradients, ``chunk`` copies a pass."""
        return scored(self.run, e, chunk)

    def gradient(self, e: Tensor) -> tuple[Tensor, Tensor]:
        """``(score (S,), d score / d e (S, L, D))`` at ``e (S, L, D)``.

        The model's parameters are frozen for the call (:func:`frozen`): only ``d/d e`` is
        wanted, and a linear map written as an autograd Function (attnlab's oneDNN one)
        would otherwise also compute its weight gradient, as costly as its forward."""
        e = e.detach().requires_grad_(True)
        with torch.enable_grad(), frozen(self.module):
            score, _ = self.run(e, False)
            (grad,) = torch.autograd.grad(score.sum(), e)
        return score.detach(), grad

    def input_gradient(self) -> Tensor:
        """d score / d e ``(L, D)`` at the unperturbed input (computed once; saliency and
        gradient × input share it; with a :class:`Shared` forward, every prediction's at once)."""
        if "gradient" not in self.cache:
            if self.shared is None:
                self.cache["gradient"] = self.gradient(self.inputs[None])[1][0]
            else:
                n = self.shared.count
                every = self.shared.memo("gradient", lambda: self.shared.gradients(
                    self.inputs[None].expand(n, -1, -1), torch.arange(n, device=self.inputs.device), self.module))
                self.cache["gradient"] = every[self.column]
        return self.cache["gradient"]

    def maps(self) -> list[Tensor]:
        """The attention graph's layers ``(H, M, M)`` on the unperturbed input (computed once;
        raw attention, rollout and flow share them)."""
        if "maps" not in self.cache:
            def forward() -> list[Tensor]:
                with torch.no_grad():
                    return self.run(self.inputs[None], True)[1]

            raw = forward() if self.shared is None else self.shared.memo("maps", forward)  # one per group
            self.cache["maps"] = [widened(m[0]) for m in self._layout(raw)]
        return self.cache["maps"]

    def last_map_gradient(self) -> tuple[Tensor, Tensor]:
        """The last layer ``(H, M, M)`` and d score / d it, through the model's own weights.

        attnlab's fp32 CPU attention returns weights computed beside the flash kernel's
        output (``attnlab.kernels.fused_weights``), not on its path; in fp64 the plain path
        runs, whose output is the weights times the values. So the gradient is taken in fp64:
        the model is converted in place for the call and back (fp32 -> fp64 -> fp32 is exact).
        Only the raw tensors the last layer is placed from are differentiated (the last one
        when the layout places one layer per tensor), so the backward stops at that layer.
        Predictions of one :class:`Shared` forward take theirs in one pass of ``count`` copies,
        copy t differentiating prediction t (the copies of a batch are independent).
        """
        if self.shared is None:
            raw, grads = _raw_gradients(self.run, self.inputs[None], self.module, None, self.layout)
        else:  # every prediction's copy in one pass: copy t's raw tensors and d f_t / d them
            n = self.shared.count
            every = self.shared.memo("map_gradients", lambda: _raw_gradients(
                self.shared.run, self.inputs[None].expand(n, -1, -1), self.module, torch.arange(n), self.layout))
            raw, grads = ([r[self.column:self.column + 1] for r in part] for part in every)
        return widened(self._layout(raw)[-1][0]), widened(self.layout(grads)[-1][0])

    def _layout(self, raw: list[Tensor]) -> list[Tensor]:
        if not raw:
            raise AttnlabError(f"{self.target}: this model returned no attention weights")
        return self.layout(raw)


@dataclass(eq=False)
class Shared:
    """One forward scoring ``count`` = T predictions on the same units:
    ``run(e (S, L, D), need_weights) -> (scores (S, T), raw)``, column t prediction t's f.
    ``memo`` keeps what is computed for all T at once (input gradients, integrated gradients)."""

    run: Run
    count: int
    cache: dict = field(default_factory=dict, repr=False)
    # Several groups' copies in one padded forward (:mod:`attnlab.explain.padded`), when the
    # adapter can: joint(keys, e (N, L_max, D), owner (N,), width) -> (N, width), copy i of the
    # group whose ``key`` is keys[owner[i]], its first ``width`` predictions (a causal decoder
    # computes no later step); None: this group's ``run`` alone.
    joint: Callable[[list[object], Tensor, Tensor, int], Tensor] | None = None
    key: object = None

    def memo(self, key: object, compute: Callable[[], Tensor]) -> Tensor:
        """``compute()``, once per ``key``."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def gradients(self, e: Tensor, columns: Tensor, module: nn.Module | None, batch: int = SHARED_BATCH) -> Tensor:
        """``(S, L, D)``: d scores[i, columns[i]] / d e_i for each copy of ``e (S, L, D)``
        (``columns (S,)``, ascending when ``joint`` is set: each batch computes the
        predictions up to its last column), ``batch`` copies a forward-backward, the
        parameters frozen."""
        out = []
        for part, picked in zip(e.split(batch), columns.split(batch)):
            part = part.detach().requires_grad_(True)
            with torch.enable_grad(), frozen(module):
                if self.joint is None:
                    scores, _ = self.run(part, False)  # (s, T)
                else:  # the first max(picked) + 1 predictions only: a shorter decoder
                    owner = torch.zeros(len(part), dtype=torch.long)
                    scores = self.joint([self.key], part, owner, int(picked.max()) + 1)
                (grad,) = torch.autograd.grad(scores.gather(1, picked[:, None].to(scores.device)).sum(), part)
            out.append(grad)
        return torch.cat(out)

    def column(self, t: int) -> Run:
        """The :data:`Run` of prediction ``t`` alone."""
        def run(e: Tensor, need_weights: bool) -> tuple[Tensor, list[Tensor]]:
            scores, raw = self.run(e, need_weights)
            return scores[:, t], raw

        return run


def _raw_gradients(run: Run, e: Tensor, module: nn.Module | None, columns: Tensor | None,
                   layout: Callable[[list[Tensor]], list[Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
    """``run``'s raw attention tensors at ``e (S, L, D)`` and d score / d those the last
    layer of ``layout`` is placed from (zeros for the others), in fp64 (:func:`fp64`);
    ``columns (S,)``: copy i's score is column ``columns[i]`` of a shared run."""
    with torch.enable_grad(), fp64(module):
        e = e.detach()
        score, raw = run(e.double() if module is not None else e, True)
        if columns is not None:
            score = score.gather(1, columns.to(score.device)[:, None])
        wanted = raw[-1:] if raw and len(layout([r[:1].detach() for r in raw])) == len(raw) else raw
        grads = torch.autograd.grad(score.sum(), wanted, allow_unused=True)
    grads = [torch.zeros_like(r) for r in raw[:len(raw) - len(wanted)]] + list(grads)
    return [r.detach() for r in raw], [torch.zeros_like(r) if g is None else g for r, g in zip(raw, grads)]


def scored(run: Run, e: Tensor, chunk: int) -> Tensor:
    """``run``'s scores of ``e (S, L, D)`` without gradients, ``chunk`` copies a pass."""
    with torch.no_grad():
        return torch.cat([run(part, False)[0] for part in e.split(chunk)])


def groups(explainables: list[Explainable]) -> list[list[Explainable]]:
    """Consecutive predictions sharing one forward (:class:`Shared`), each other one alone."""
    out: list[list[Explainable]] = []
    for x in explainables:
        if out and x.shared is not None and out[-1][0].shared is x.shared:
            out[-1].append(x)
        else:
            out.append([x])
    return out


def widened(t: Tensor) -> Tensor:
    """``t`` in fp32 at least (fp64 stays fp64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


@contextmanager
def fp64(module: nn.Module | None) -> Iterator[None]:
    """While open, ``module``'s floating-point parameters and buffers are fp64 (restored after)."""
    dtype = next((p.dtype for p in module.parameters()), None) if module is not None else None
    if dtype is None or dtype == torch.float64:
        yield
        return
    module.double()
    try:
        yield
    finally:
        module.to(dtype)


@contextmanager
def frozen(module: nn.Module | None) -> Iterator[None]:
    """While open, none of ``module``'s parameters requires a gradient (restored after):
    a gradient taken with respect to the input computes no weight gradient."""
    params = [p for p in module.parameters() if p.requires_grad] if module is not None else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextmanager
def replace_output(module: nn.Module, key: Tensor, value: Tensor) -> Iterator[None]:
    """While open, ``module(key)`` returns ``value`` (any other call runs as usual).

    The call is recognised by its input being the very tensor ``key`` (``is``), so a
    shared embedding (source and target of a translator) is replaced for ``key`` only.
    """
    def hook(_module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        if args and args[0] is key:
            return value.to(output.dtype)
        return None

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
