"""One vocabulary for "what did the model attend to": :class:`Attentions` and :class:`Explained`.

Every model called with ``need_weights=True`` returns ``.attentions``, an ordered, named
collection of per-layer attention maps; every application's ``attentions(model, inputs)``
returns an :class:`Explained`: that collection plus the labels of what was attended. The
pictures (``attnlab viz``) and the explorer (``attnlab explore``) read only these two types.

Names say where a map comes from: ``encoder.0.self``, ``decoder.1.self``,
``decoder.1.cross`` (the Transformer), ``decoder.0.cross`` (the RNN translator's one
attention, heads H = 1), ``layers.3.causal`` (GPT), ``layers.3.self`` (BERT, ViT),
``layers.0.graph`` (GAT), ``metapath.1.graph`` (HAN). Each entry records

    kind   "self" | "causal" | "cross" | "graph" | "metapath"
    axes   (query_axis, key_axis): which label sequence indexes the query and key dimensions,
           e.g. ("target", "source") for cross-attention, ("tokens", "tokens") for GPT,
           ("nodes", "nodes") for graph attention

and its value is either

    Tensor (B, H, Lq, Lk)            token attention, every head (rows sum to 1 or to 0 when
                                     a query may attend to nothing)
    GraphAttention(edge_index, alpha)  edge_index (2, E) as (source j, target i), alpha (E, H):
                                     the weight with which node i attends to its neighbour j

Integer indexing follows the insertion order (``maps[0]`` is the first map), so code written
for HF's per-layer tuples keeps working: ``maps[-1]`` is the last layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import Tensor

from attnlab.errors import AttnlabError

KINDS = ("self", "causal", "cross", "graph", "metapath")


class GraphAttention(NamedTuple):
    """Attention over a graph's edges: ``edge_index (2, E)`` (source, target), ``alpha (E, H)``."""

    edge_index: Tensor
    alpha: Tensor


@dataclass(frozen=True)
class AttentionEntry:
    """One map of an :class:`Attentions`: its value, kind and label axes."""

    name: str
    value: Tensor | GraphAttention
    kind: str
    axes: tuple[str, str]


class Attentions(Mapping):
    """Ordered ``name -> Tensor (B, H, Lq, Lk) | GraphAttention`` with a kind and axes per name."""

    def __init__(self) -> None:
        self._entries: dict[str, AttentionEntry] = {}

    def add(self, name: str, value: Tensor | GraphAttention, *, kind: str, axes: tuple[str, str]) -> None:
        if kind not in KINDS:
            raise AttnlabError(f"attention kind {kind!r}: expected one of {KINDS}")
        if name in self._entries:
            raise AttnlabError(f"attention map {name!r} added twice")
        is_graph = isinstance(value, GraphAttention)
        if is_graph != (kind in ("graph", "metapath")):
            raise AttnlabError(f"attention map {name!r}: kind {kind!r} does not match its value")
        if not is_graph and (not isinstance(value, Tensor) or value.dim() != 4):
            raise AttnlabError(f"attention map {name!r}: expected a (B, H, Lq, Lk) tensor")
        self._entries[name] = AttentionEntry(name, value, kind, tuple(axes))

    def add_layers(
        self, template: str, values, *, kind: str, axes: tuple[str, str]
    ) -> Attentions:
        """Add one map per layer, named by ``template`` (``"encoder.{i}.self"``); returns self."""
        for i, value in enumerate(values):
            self.add(template.format(i=i), value, kind=kind, axes=axes)
        return self

    def __getitem__(self, key: str | int) -> Tensor | GraphAttention:
        if isinstance(key, int):
            return list(self._entries.values())[key].value
        try:
            return self._entries[key].value
        except KeyError:
            raise KeyError(f"{key!r}: no such attention map; have {list(self._entries)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        parts = []
        for e in self._entries.values():
            shape = tuple(e.value.alpha.shape) if isinstance(e.value, GraphAttention) else tuple(e.value.shape)
            parts.append(f"{e.name}: {e.kind} {shape}")
        return "Attentions(" + ", ".join(parts) + ")"

    def entry(self, name: str) -> AttentionEntry:
        return self._entries[name]

    def entries(self) -> list[AttentionEntry]:
        return list(self._entries.values())

    def of_kind(self, *kinds: str) -> list[Tensor | GraphAttention]:
        """The maps of the given kinds, in order (e.g. every cross-attention layer)."""
        return [e.value for e in self._entries.values() if e.kind in kinds]

    def map(self, fn) -> Attentions:
        """A copy with ``fn`` applied to every tensor (``detach``, ``cpu``, ``float``, ...)."""
        out = Attentions()
        for e in self._entries.values():
            v = e.value
            v = GraphAttention(fn(v.edge_index), fn(v.alpha)) if isinstance(v, GraphAttention) else fn(v)
            out._entries[e.name] = AttentionEntry(e.name, v, e.kind, e.axes)
        return out


@dataclass
class Explained:
    """What an application's ``attentions(model, inputs)`` returns: the maps and their labels.

    ``labels[axis][b]`` is the list of labels (tokens, "patch 3,4", node names) of batch
    element ``b`` along ``axis``; every axis named by an entry of ``attentions`` has labels.
    ``extras`` carries what a view needs beyond labels, by convention:

        "image"        Tensor (B, 3, H, W) in [0, 1]       ViT: the input images
        "grid"         (rows, cols)                        ViT: the patch grid
        "gold"         list[set[(t, s)]] per element       translators: gold alignment links
        "special"      set of labels                       tokens counted as special ([CLS], BOS, ...)
        "node_classes" list[int] per element              graphs: the class of each node
        "metapaths"    list[str]                           HAN: the meta-path names
        "metapath_weights" Tensor (M,)                     HAN: the semantic attention beta
        "predictions"  list[str] per element               the model's output (translation, label)
    """

    model_type: str
    attentions: Attentions
    labels: dict[str, list[list[str]]]
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in self.attentions.entries():
            for axis in e.axes:
                if axis not in self.labels:
                    raise AttnlabError(f"attention map {e.name!r}: no labels for axis {axis!r}")
