"""What an exporter hands to :func:`attnlab.export.onnx.export_onnx`: the graphs to trace
and what ``export.json`` says about running them."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn


@dataclass
class Graph:
    """One graph to export: ``module(*example)``; ``axes[name] = {dim: axis name}`` for
    every dynamic dimension of inputs and outputs (the names go into ``export.json``)."""

    name: str
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, dict[int, str]] = field(default_factory=dict)
    exporter: str = "dynamo"  # "torchscript": a graph the dynamo exporter cannot keep dynamic ...
    reason: str | None = None  # ... and why


@dataclass
class Exported:
    """What an exporter returns: its graphs and what ``export.json`` says about running them."""

    graphs: list[Graph]
    info: dict
