"""What an exporter hands to :func:`attnlab.export.onnx.export_onnx`: the graphs to trace --
:func:`traced`, a function of the model with named inputs and outputs and their dynamic
axes -- and what ``export.json`` says about running them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

Axes = dict[int, str]  # dimension -> axis name, for every dynamic dimension of a tensor


@dataclass
class Graph:
    """One graph to export: ``module(*example)``; ``axes[name]`` for inputs and outputs (the
    names go into ``export.json``)."""

    name: str
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, Axes] = field(default_factory=dict)
    exporter: str = "dynamo"  # "torchscript": a graph the dynamo exporter cannot keep dynamic ...
    reason: str | None = None  # ... and why


@dataclass
class Exported:
    """What an exporter returns: its graphs and what ``export.json`` says about running them."""

    graphs: list[Graph]
    info: dict


class Traced(nn.Module):
    """``fn(model, *inputs)`` as a module's forward: what the exporter traces."""

    def __init__(self, model: nn.Module, fn: Callable[..., tuple[Tensor, ...]]):
        super().__init__()
        self.model, self.fn = model, fn  # not "graph": an exported module's .graph is its FX graph

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.fn(self.model, *inputs)


def traced(name: str, model: nn.Module, fn: Callable[..., tuple[Tensor, ...]], inputs: dict[str, tuple[Tensor, Axes]],
           outputs: dict[str, Axes], **options: str) -> Graph:
    """Graph ``name``: ``fn(model, *inputs)``, each input ``name: (example, axes)``, each output
    ``name: axes``, in order; ``options``: ``exporter``, ``reason``."""
    axes = {**{n: a for n, (_, a) in inputs.items()}, **outputs}
    module = Traced(model, fn).eval()  # an inference graph: the exporter applies the module's mode to the model
    return Graph(name, module, tuple(t for t, _ in inputs.values()), list(inputs), list(outputs), axes, **options)
