"""Explain a model's predictions: the adapters (one per model kind) and the app function.

Each adapter turns a loaded model and its inputs into :class:`Explainable` predictions
(``attnlab.explain``'s one seam), running the model's own forward on embeddings through a
forward hook on its embedding module:

    kind         prediction explained                      units            removed unit becomes
    gpt2         the next token (the model's top guess)    prompt tokens    the mean token embedding
    bert         the token at [MASK] (the middle token     tokens           the [MASK] embedding
                 is masked when the text has none); a
                 classifier: the class
    vit          the class                                 patches          the image's mean patch embedding
    transformer  each target token (teacher forcing on     source tokens    the pad embedding
    seq2seq      the greedy translation)
    gat, han     a node's class (test nodes)               nodes within     the mean node feature
                                                           num_layers hops
                                                           (HAN: 1 per
                                                           meta-path)

:func:`run` (``attnlab explain``) measures every method's faithfulness and every head's
importance; :func:`explain` and :func:`explore` are the Python API (``attnlab.explain``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.apps import APPS, app_for, model_type
from attnlab.apps.bert import DEFAULT_TEXT, LoadedBERT
from attnlab.apps.lm import DEFAULT_PROMPT, LoadedLM
from attnlab.apps.translate.app import EXAMPLE_SOURCES
from attnlab.apps.translate.translator import Translator
from attnlab.apps.vit import read_images
from attnlab.data.bpe import display_tokens
from attnlab.data.graphs import GraphData
from attnlab.data.images import load_digits
from attnlab.errors import AttnlabError
from attnlab.explain.evaluate import evaluate
from attnlab.explain.explainable import Explainable, Shared, replace_output, widened
from attnlab.explain.faithfulness import POINTS, PRECISION, PRECISIONS
from attnlab.explain.heads import attention_modules, head_importance, pruning_curve
from attnlab.explain.integrated_gradients import integrated_gradients
from attnlab.explain.layouts import (
    dense_graph,
    disjoint_copies,
    encoder_decoder,
    receptive_field,
    subgraph,
)
from attnlab.explain.lens import logit_lens, step_confidence
from attnlab.explain.methods import pick
from attnlab.explain.notebook import InlinePage
from attnlab.explain.report import ExplainReport
from attnlab.models.gat import GAT, HAN
from attnlab.models.vit import ViT

GRAPH_EXAMPLES = 8  # test nodes explained by default


def _log_prob(logits: Tensor, target: int) -> Tensor:
    return F.log_softmax(widened(logits), dim=-1)[..., target]


def _token(tokenizer, i: int) -> str:
    return tokenizer.decode([i]) if i < tokenizer.vocab_size else f"<id {i}>"


def gpt_predictions(loaded: LoadedLM, texts: list[str]) -> list[Explainable]:
    model, tokenizer = loaded
    emb = model.token_embedding
    out = []
    for text in texts or [DEFAULT_PROMPT]:
        ids = torch.tensor([tokenizer.encode(text)], device=emb.weight.device)
        if ids.shape[1] == 0 or ids.shape[1] > model.config.context_length:
            raise AttnlabError(f"input {text[:30]!r}: expected 1..{model.config.context_length} tokens, got {ids.shape[1]}")
        with torch.no_grad():
            target = int(model(ids, last_only=True).logits[0, -1].argmax())

        def run(e: Tensor, need_weights: bool, ids=ids, target=target):
            key = ids.expand(e.shape[0], -1)
            with replace_output(emb, key, e):
                o = model(key, need_weights=need_weights, last_only=True)
            return _log_prob(o.logits[:, -1], target), list(o.attentions.values()) if need_weights else []

        length = ids.shape[1]
        out.append(Explainable(
            emb(ids[0]).detach(), emb.weight.mean(0).detach().expand(length, -1), run,
            [tokenizer.decode([i]) for i in ids[0].tolist()], _token(tokenizer, target), length - 1,
            torch.arange(length), [True] * model.config.num_layers, "the mean token embedding", model,
        ))
    return out


def bert_predictions(loaded: LoadedBERT, texts: list[str]) -> list[Explainable]:
    model, tokenizer = loaded
    emb, classifier = model.embeddings.word, model.config.head == "classifier"
    out = []
    for text in texts or [DEFAULT_TEXT]:
        ids = torch.tensor([[tokenizer.cls_id, *tokenizer.encode(text), tokenizer.sep_id]], device=emb.weight.device)
        ids = ids[:, : model.config.max_positions]
        masked = (ids[0] == tokenizer.mask_id).nonzero().flatten().tolist()
        position = 0 if classifier else (masked[0] if masked else ids.shape[1] // 2)
        ids[0, position] = ids[0, position] if classifier else tokenizer.mask_id

        def logits(o, position=position):
            return o.logits if classifier else o.mlm_logits[:, position]

        with torch.no_grad():
            target = int(logits(model(ids)).argmax(-1)[0])

        def run(e: Tensor, need_weights: bool, ids=ids, target=target, logits=logits):
            key = ids.expand(e.shape[0], -1)
            with replace_output(emb, key, e):
                o = model(key, need_weights=need_weights)
            return _log_prob(logits(o), target), list(o.attentions.values()) if need_weights else []

        name = model.config.labels[target] if classifier else tokenizer.id_to_token(target)
        length = ids.shape[1]
        out.append(Explainable(
            emb(ids[0]).detach(), emb.weight[tokenizer.mask_id].detach().expand(length, -1), run,
            [tokenizer.id_to_token(i) for i in ids[0].tolist()], name, position, torch.arange(length),
            [True] * model.config.num_layers, "the [MASK] embedding", model,
        ))
    return out


def vit_predictions(model: ViT, paths: list[str]) -> list[Explainable]:
    c, patch = model.config, model.embeddings.patch
    if paths:
        images = read_images(model, paths)
    elif (c.image_size, c.num_channels) == (8, 1):
        images = load_digits().images[:4]
    else:
        raise AttnlabError("give an image file for this ViT")
    images = images.to(patch.weight.device, patch.weight.dtype)
    out = []
    for image in images:
        pixels = image[None]
        with torch.no_grad():
            grid = patch(pixels)  # (1, D, h, w)
            target = int(model(pixels).logits[0].argmax())
        (h, w), n = grid.shape[-2:], grid.shape[-1] * grid.shape[-2]

        def run(e: Tensor, need_weights: bool, pixels=pixels, target=target, h=h, w=w):
            key = pixels.expand(e.shape[0], -1, -1, -1)
            with replace_output(patch, key, e.transpose(1, 2).reshape(e.shape[0], -1, h, w)):
                o = model(key, need_weights=need_weights)
            return _log_prob(o.logits, target), list(o.attentions.values()) if need_weights else []

        units = grid[0].flatten(1).T.detach()  # (N, D)
        out.append(Explainable(
            units, units.mean(0).expand(n, -1), run, [f"patch {r},{q}" for r in range(h) for q in range(w)],
            c.labels[target] if c.labels else str(target), 0, torch.arange(1, n + 1),
            [True] * c.num_layers, "the image's mean patch embedding", model,
            {"image": ((image.float().cpu() + 1) / 2).clamp(0, 1), "grid": (h, w)},
        ))
    return out


def translator_predictions(translator: Translator, sources: list[str]) -> list[Explainable]:
    model, c = translator.model, translator.model.config
    emb = model.src_embed
    sources = [" ".join(s.split()) for s in (sources or EXAMPLE_SOURCES)]
    joint, out = _padded_translator(translator), []
    for source, target in zip(sources, translator.translate(sources)):
        src = translator.encode_sources([source])  # (1, S)
        tgt = [c.bos_id, *translator.tgt_tokenizer.encode(target)][: c.max_len]
        labels = tgt[1:] + [c.eos_id]  # step t predicts labels[t]
        tgt_in = torch.tensor([tgt], device=src.device)
        words = display_tokens(translator.tgt_tokenizer, target) + ["</s>"]
        s, steps = src.shape[1], torch.tensor(labels, device=src.device)  # steps: (T,) each step's label
        with torch.no_grad():
            confidence = step_confidence(model(src, tgt_in).logits[0], steps)

        def every_step(e: Tensor, need_weights: bool, src=src, tgt_in=tgt_in, steps=steps):
            """log p(label_t) of every step t: ``(S, T)`` from one teacher-forced pass."""
            key = src.expand(e.shape[0], -1)
            with replace_output(emb, key, e):
                o = model(key, tgt_in.expand(e.shape[0], -1), need_weights=need_weights)
            maps = [o.attentions[n] for n in o.attentions if n.startswith("encoder")] + \
                [o.attentions.of_kind("cross")[-1]] if need_weights else []
            log_probs = F.log_softmax(widened(o.logits), dim=-1)  # (S, T, V)
            return log_probs.gather(-1, steps.expand(e.shape[0], -1)[..., None])[..., 0], maps

        shared = Shared(every_step, len(labels), joint=joint, key=(src[0], tgt_in[0], steps))
        inputs = emb(src[0]).detach()
        for t, label in enumerate(labels):
            def layout(maps: list[Tensor], t=t) -> list[Tensor]:
                return encoder_decoder(maps[:-1], maps[-1], t)

            out.append(Explainable(
                inputs, emb.weight[c.pad_id].detach().expand(s, -1), shared.column(t),
                display_tokens(translator.src_tokenizer, source), words[t] if t < len(words) else str(label), s,
                torch.arange(s), [True] * getattr(c, "num_encoder_layers", 0) + [False],
                "the pad embedding", model, {"step": t, "source": source, "translation": target, **confidence[t]},
                layout=layout, shared=shared, column=t,
            ))
    return out


def _padded_translator(translator: Translator) -> Callable[[list, Tensor, Tensor, int], Tensor]:
    """Several sentences' copies in one forward (``Shared.joint``, :mod:`attnlab.explain.padded`):
    ``keys`` the sentences' ``(source ids (S_g,), target input (T_g,), labels (T_g,))``,
    ``e (N, S_max, D)`` the copies' source embeddings, copy i of sentence ``owner[i]`` ->
    ``(N, width)`` log p(label_t) of the first ``width`` steps. Sources and targets are padded
    with ``pad_id`` (targets cut to ``width``): the source mask hides padded source positions,
    the causal decoder a step's later target positions."""
    model, pad = translator.model, translator.model.config.pad_id

    def padded(rows: list[Tensor], width: int, value: int) -> Tensor:
        out = torch.full((len(rows), width), value, dtype=torch.long, device=rows[0].device)
        for g, row in enumerate(rows):
            out[g, : len(row)] = row
        return out

    def joint(keys: list, e: Tensor, owner: Tensor, width: int) -> Tensor:
        owner = owner.to(e.device)
        src = padded([k[0] for k in keys], e.shape[1], pad)[owner]  # (N, S_max)
        tgt_in = padded([k[1][:width] for k in keys], width, pad)[owner]  # (N, width): the first steps
        labels = padded([k[2][:width] for k in keys], width, 0)[owner]  # (N, width): 0 past a sentence's end, unread
        with replace_output(model.src_embed, src, e):
            o = model(src, tgt_in)
        return F.log_softmax(widened(o.logits), dim=-1).gather(-1, labels[..., None])[..., 0]

    return joint


def graph_predictions(model: GAT | HAN, data: GraphData, nodes: list[int] | None = None) -> list[Explainable]:
    """GAT: one attention layer per convolution; HAN: one layer, the meta-paths' heads side
    by side (the semantic weights are not in the attention graph)."""
    han = isinstance(model, HAN)
    graphs = list(data.metapaths.values()) if han else [data.edge_index]
    hops, n = 1 if han else model.config.num_layers, data.num_nodes
    nodes = nodes or torch.nonzero(data.test_mask).flatten()[:GRAPH_EXAMPLES].tolist()
    names = data.node_names or [str(i) for i in range(n)]
    weight = next(model.parameters())
    features = data.x.to(weight.device, weight.dtype)
    mean = features.mean(0)
    out = []
    for node in nodes:
        field = torch.unique(torch.cat([receptive_field(g, node, hops, n) for g in graphs]))
        edges, m, query = [subgraph(g, field, n) for g in graphs], len(field), int((field == node).nonzero())

        def call(e: Tensor, need_weights: bool, edges=edges, m=m):
            copies = [disjoint_copies(g.to(e.device), e.shape[0], m) for g in edges]
            return model(e.reshape(e.shape[0] * m, -1), copies if han else copies[0], need_weights=need_weights)

        with torch.no_grad():
            o = call(features[field][None], True)
        target, seen = int(o.logits[query].argmax()), [a.edge_index for a in o.attentions.values()]

        def run(e: Tensor, need_weights: bool, call=call, m=m, query=query, target=target):
            o = call(e, need_weights)
            maps = [a.alpha for a in o.attentions.values()] if need_weights else []
            return _log_prob(o.logits.view(e.shape[0], m, -1)[:, query], target), maps

        def layout(maps: list[Tensor], seen=seen, m=m) -> list[Tensor]:  # one copy: its edges as seen above
            dense = [dense_graph(edges, alpha, 1, m) for edges, alpha in zip(seen, maps)]
            return [torch.cat(dense, dim=1)] if han else dense

        out.append(Explainable(
            features[field], mean.expand(m, -1), run,
            [names[i] for i in field.tolist()], data.class_names[target], query, torch.arange(m),
            [False] * (1 if han else model.config.num_layers), "the mean node feature", model,
            {"node": names[node], "field": field.tolist()}, layout=layout,
        ))
    return out


Loaded = LoadedLM | LoadedBERT | ViT | Translator | tuple  # tuple: (GAT | HAN, GraphData)


def load(ckpt: str | Path, inputs: list[str], device: str = "cpu") -> Loaded:
    """The checkpoint loaded by its app (a graph app reads ``inputs`` as its CSV files)."""
    app = app_for(ckpt)
    if APPS[model_type(ckpt)] == "graph":
        return app.load(ckpt, inputs, device=device)
    return app.load(ckpt, device=device)


def predictions(loaded: Loaded, inputs: list[str]) -> tuple[str, list[Explainable]]:
    """The model kind and the predictions to explain on ``inputs`` (the app's examples when empty)."""
    if isinstance(loaded, LoadedLM):
        return "gpt2", gpt_predictions(loaded, inputs)
    if isinstance(loaded, LoadedBERT):
        return "bert", bert_predictions(loaded, inputs)
    if isinstance(loaded, ViT):
        return "vit", vit_predictions(loaded, inputs)
    if isinstance(loaded, Translator):
        return loaded.model.model_type, translator_predictions(loaded, inputs)
    if isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[1], GraphData):
        return loaded[0].model_type, graph_predictions(*loaded)  # its inputs were the graph's files
    raise AttnlabError(f"explain: expected a checkpoint folder or what an app's load() returns, got {type(loaded).__name__}")


def run(loaded: Loaded, inputs: list[str], methods: list[str] | None = None, heads: bool = True,
        curve_points: int | None = None, precision: str = PRECISION) -> ExplainReport:
    """Every method on every prediction, its faithfulness (curves at ``curve_points`` k beyond
    64 units, None: ``faithfulness.POINTS``; their forwards and integrated gradients' in
    ``precision``, "fp32" or "bf16" autocast); every head's importance; the lens."""
    chosen = pick(methods)
    if "integrated_gradients" in chosen:  # its forward-backwards in the curves' precision too
        chosen["integrated_gradients"] = partial(integrated_gradients, precision=precision)
    curve_points = POINTS if curve_points is None else curve_points
    if curve_points < 2:
        raise AttnlabError(f"--curve-points: expected 2 or more, got {curve_points}")
    kind, explainables = predictions(loaded, inputs)
    report = ExplainReport(kind, explainables, evaluate(explainables, chosen, curve_points, precision))
    model = explainables[0].module if explainables else None
    if heads and model is not None and attention_modules(model):
        importance = head_importance(explainables, model)
        report.heads, report.pruning = importance.rows(), pruning_curve(explainables, model, importance.masked)
    if isinstance(loaded, LoadedLM):
        for x in explainables:
            ids = torch.tensor([loaded.tokenizer.encode("".join(x.labels))], device=x.inputs.device)
            report.lens.append({"input": "".join(x.labels), "layers": [
                [[loaded.tokenizer.decode([i]), p] for i, p in row] for row in logit_lens(loaded.model, ids)]})
    return report


def _loaded(model_or_ckpt, inputs: list[str], device: str) -> Loaded:
    if isinstance(model_or_ckpt, (str, Path)):
        return load(model_or_ckpt, inputs, device)
    return model_or_ckpt


def explain(model_or_ckpt, inputs: list[str] | str | None = None, methods: list[str] | None = None,
            heads: bool = True, device: str = "cpu", curve_points: int | None = None,
            precision: str = PRECISION) -> ExplainReport:
    """``attnlab.explain``: a checkpoint folder (or an app's loaded model) explained on ``inputs``;
    the report shows itself in a notebook and ``.save(path)`` writes its page or JSON.
    ``curve_points``: the deletion/insertion curves' k beyond 64 units (None: 11; 21: the finer grid);
    ``precision``: the curves' and integrated gradients' forwards in "fp32" or under "bf16"
    autocast (docs/explain.md: how far it moves the numbers; faster only at GPT-2 size)."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if precision not in PRECISIONS:  # before loading or any model call
        raise AttnlabError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return run(_loaded(model_or_ckpt, inputs, device), inputs, methods, heads, curve_points, precision)


def explore(ckpt_or_model, inputs: list[str] | str | None = None, device: str = "cpu", explain: bool = False,
            methods: list[str] | None = None) -> InlinePage:
    """``attnlab.explore``: the attention explorer page of ``inputs``, inline in a notebook;
    ``explain``: with the attribution view (faithfulness table, inputs coloured by each
    method, head importance: click a head to see its attention)."""
    from attnlab.viz.explorer.pack import Blobs
    from attnlab.viz.explorer.page import build_meta, render_html

    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    loaded = _loaded(ckpt_or_model, inputs, device)
    explained = _explained(loaded, inputs)
    title, blobs = f"attnlab explore: {explained.model_type}", Blobs()
    meta = build_meta([explained], blobs, title=title, compare=None, compare_title=None, max_mb=25.0)
    if explain:
        data = run(loaded, inputs, methods).to_json()
        meta["attribution"] = {"methods": data["methods"], "ranked": data["ranked"], "heads": data["heads"],
                               "examples": [{"target": e["target"], "units": e["units"], "attributions": e["attributions"]}
                                            for e in data["examples"]]}
    return InlinePage(render_html(meta, blobs), title)


def _explained(loaded: Loaded, inputs: list[str]):
    from attnlab.apps import bert, graph, lm, translate, vit

    if isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[1], GraphData):
        return graph.attentions(*loaded)
    app: Callable = {LoadedLM: lm.attentions, LoadedBERT: bert.attentions, ViT: vit.attentions,
                     Translator: translate.attentions}.get(type(loaded))
    if app is None:
        raise AttnlabError(f"explore: expected a checkpoint folder or what an app's load() returns, got {type(loaded).__name__}")
    return app(loaded, inputs)
