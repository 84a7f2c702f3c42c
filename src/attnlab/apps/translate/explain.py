"""What a translator's cross-attention learned: word alignments as text and as heatmaps.

For a sentence pair, :func:`alignment_lines` prints each target word next to the source
word its attention points at (one head, or the average of all heads);
:func:`pair_section` draws the heatmaps of an HTML report section (target tokens down,
source tokens across, gold links outlined in red when known). :func:`view_translator`
is the ``attnlab viz`` viewer of ``model_type == "transformer"``.

Notation: L decoder layers, H heads, T target tokens, S source tokens.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from attnlab.apps.translate.translator import PairAttention, Translator
from attnlab.data.corpus import Alignment
from attnlab.evaluation.metrics import alignments_from_attention
from attnlab.viz.heatmap import attention_heatmap, figure_png, head_grid
from attnlab.viz.report import Report, Section

EXAMPLE_SOURCES = [
    "the small cat sees a dog .",
    "two big dogs will chase the cat that sleeps in the house .",
]


def pick(pair: PairAttention, head: tuple[int, int] | None) -> Tensor:
    """``(T, S)``: one ``(layer, head)``, or the average over all layers and heads."""
    return pair.weights.mean(dim=(0, 1)) if head is None else pair.weights[head[0], head[1]]


def alignment_lines(pair: PairAttention, source: str, target: str, head: tuple[int, int] | None = None) -> list[str]:
    """``"gaton  <- the cat"``: each target word with the source word(s) aligned to it."""
    links = alignments_from_attention(pick(pair, head), pair.src_words, pair.tgt_words)
    src_words, tgt_words = source.split(), target.split()
    width = max((len(w) for w in tgt_words), default=0)
    lines = []
    for j, word in enumerate(tgt_words):
        sources = " ".join(src_words[i] for i, jj in sorted(links) if jj == j)
        lines.append(f"  {word:<{width}}  <- {sources}")
    return lines


def gold_cells(pair: PairAttention, gold: Alignment) -> list[tuple[int, int]]:
    """Gold word links as ``(source token, target token)`` heatmap cells."""
    return [
        (s, t)
        for t, tw in enumerate(pair.tgt_words)
        for s, sw in enumerate(pair.src_words)
        if (sw, tw) in gold
    ]


def pair_section(
    translator: Translator, source: str, target: str, *, head: tuple[int, int] | None, gold: Alignment | None = None,
    heading: str | None = None, notes: tuple[str, ...] = (),
) -> Section:
    """Heatmaps of one pair: the chosen head (or the average) and every head of each layer.

    ``gold`` links index ``target``'s words, so pass the reference target with them
    (teacher forcing); ``notes`` are extra lines for the text block (e.g. the model's output).
    """
    pair = translator.cross_attention(source, target)
    name = "average of all heads" if head is None else f"layer {head[0]} head {head[1]}"
    cells = gold_cells(pair, gold) if gold is not None else []
    images = [figure_png(attention_heatmap(pick(pair, head), pair.src_tokens, pair.tgt_tokens, title=name, gold=cells))]
    captions = [f"cross-attention, {name}" + (" (red boxes: gold alignment)" if cells else "")]
    for layer in range(pair.weights.shape[0]):
        titles = [f"layer {layer} head {h}" for h in range(pair.weights.shape[1])]
        images.append(figure_png(head_grid(pair.weights[layer], pair.src_tokens, pair.tgt_tokens, titles=titles)))
        captions.append(f"every head of decoder layer {layer}")
    code = "\n".join([f"source: {source}", f"target: {target}", *notes, *alignment_lines(pair, source, target, head)])
    return Section(heading or source, code=code, images=images, captions=captions)


def view_translator(ckpt: Path, inputs: list[str], out: Path) -> Path:
    """``attnlab viz`` for translators: translate ``inputs`` and draw their cross-attention."""
    translator = Translator.load(ckpt)
    sources = inputs or EXAMPLE_SOURCES
    report = Report(f"Cross-attention of {ckpt}")
    for source, target in zip(sources, translator.translate(sources)):
        report.add(pair_section(translator, source, target, head=None))
    out = out if out.suffix == ".html" else out / "attention.html"
    report.write(out)
    return out
