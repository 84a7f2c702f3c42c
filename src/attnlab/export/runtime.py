"""Run an attnlab ONNX export in ONNX Runtime (CPU) with the PyTorch apps' call shapes.

    rt = load_runtime("out/")          # reads export.json, checks its format version
    rt.generate(ids, 40)               # GPT, like GPT.generate (the LM app's complete takes rt)
    rt.translate(["a b c"], beam_size=4)   # Transformer / RNN translator: greedy or beam
    rt.fill_mask("the [MASK] sat")     # BERT with an MLM head; rt.classify(texts) with a classifier
    rt.classify(pixel_values)          # ViT
    rt(x, edge_index).logits           # GAT
    rt(x, [edge_index_p, ...]).logits  # HAN (and .semantic_weights)

The ONNX graphs compute the model; the loops around them are attnlab's own: each
runtime implements the small protocol a PyTorch model offers to the decoding code
(``start/step/reorder`` for :func:`attnlab.evaluation.decoding.decode`; ``make_caches``
``__call__(ids, mask, position_ids=, caches=)`` and ``decode_step`` for :func:`attnlab.evaluation.sampling.generate`),
so greedy search, beam search and sampling are the very same code in both runtimes. The
cache lives in NumPy arrays between steps; a step costs one ``session.run``.

Notation: B batch, N rows (B x beam), L new tokens, P cached tokens, S source length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.export.folder import open_folder
from attnlab.export.onnx import read_manifest


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise AttnlabError("onnxruntime is not installed: pip install 'attnlab[onnx]'") from None
    return onnxruntime


class Session:
    """One ONNX graph: ``run(**inputs) -> {output name: array}`` (inputs may be tensors).

    ``prepack``: let ONNX Runtime repack the MatMul weights into its GEMM layout, a copy
    per session (prompts and encoder batches run ~1.4x faster); without it the session
    computes from the memory-mapped ``weights.data``, which every session shares."""

    def __init__(self, path: Path, threads: int | None = None, *, prepack: bool = True):
        ort = _ort()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own types; one line names the file
            raise AttnlabError(f"{path}: ONNX Runtime cannot load it: {_first_line(error)}") from None
        self.path = path
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, **inputs: Any) -> dict[str, np.ndarray]:
        feeds = {name: _numpy(inputs[name]) for name in self.input_names}
        try:
            outputs = self.session.run(None, feeds)
        except Exception as error:  # noqa: BLE001 - e.g. a position past the graph's table: one line
            raise AttnlabError(f"{self.path}: ONNX Runtime failed to run it: {_first_line(error)}") from None
        return dict(zip(self.output_names, outputs))


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:300]


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x)


class _Runtime:
    """What every runtime shares: the folder, its manifest, its sessions."""

    def __init__(self, directory: Path, manifest: dict, threads: int | None):
        self.directory, self.manifest = directory, manifest
        paths = open_folder(directory, manifest)  # files confined and verified, config checked against the graphs
        prepack = len(paths) == 1  # several graphs share the weights: repacked, each session would hold a copy
        self.sessions = {name: Session(path, threads, prepack=prepack) for name, path in paths.items()}
        self.config = SimpleNamespace(**manifest.get("config", {}))

    def parameters(self):
        """The device the loops put tensors on (PyTorch apps read it from the parameters): the CPU."""
        return iter([torch.empty(0)])

    def eval(self):
        return self


# --- GPT ------------------------------------------------------------------------------
@dataclass
class OrtCache:
    """The KV cache of every layer as arrays ``(B, H, P, Dh)`` in graph input order."""

    arrays: list[np.ndarray] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.arrays[0].shape[2] if self.arrays else 0


class GPTRuntime(_Runtime):
    """A GPT in ONNX Runtime: ``rt(ids, mask, position_ids=, caches=)`` and ``decode_step``
    like ``GPT``, ``generate`` like ``GPT.generate``; ``tokenizer`` is the export's. The LM
    app's ``complete(rt, rt.tokenizer, prompt, ...)`` takes it as it takes a GPT."""

    @cached_property
    def tokenizer(self):
        from attnlab.interop.hf_gpt2 import tokenizer_from_hf_folder

        return tokenizer_from_hf_folder(self.directory)

    def make_caches(self, capacity: int = 64) -> list[OrtCache]:
        return [OrtCache()]

    def __call__(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, *, position_ids: Tensor | None = None,
        caches: list[OrtCache] | None = None, last_only: bool = False, **_: Any,
    ) -> SimpleNamespace:
        """Logits ``(B, L, V)`` (``(B, 1, V)`` with ``last_only``); appends to ``caches``."""
        b, length = input_ids.shape
        cache = caches[0] if caches else OrtCache()
        past = cache.length
        if attention_mask is None:
            attention_mask = torch.ones(b, past + length, dtype=torch.long)
        if past == 0:
            out = self.sessions["prefill"].run(input_ids=input_ids.long(), attention_mask=attention_mask.long())
        else:
            if position_ids is None:
                position_ids = torch.arange(past, past + length).expand(b, length)
            names = [f"past.{i}.{x}" for i in range(self.config.num_layers) for x in ("key", "value")]
            out = self.sessions["decode"].run(
                input_ids=input_ids.long(), position_ids=position_ids.long(), attention_mask=attention_mask.long(),
                **dict(zip(names, cache.arrays)),
            )
        cache.arrays = [out[f"present.{i}.{x}"] for i in range(self.config.num_layers) for x in ("key", "value")]
        logits = torch.from_numpy(out["logits"])
        return SimpleNamespace(logits=logits[:, -1:] if last_only else logits)

    def decode_step(
        self, input_ids: Tensor, caches: list[OrtCache], attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> SimpleNamespace:
        """One new token per sequence after the cached ones (``GPT.decode_step``'s call shape)."""
        return self(input_ids, attention_mask, position_ids=position_ids, caches=caches)

    def generate(self, input_ids: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
        """Greedy or sampled continuation ``(B, L + new)``: :func:`attnlab.evaluation.sampling.generate`."""
        from attnlab.evaluation.sampling import generate

        kwargs.setdefault("eos_token_id", None)
        return generate(self, input_ids, max_new_tokens, **kwargs)


# --- translators ----------------------------------------------------------------------
@dataclass
class TranslatorState:
    """Per row: the source mask and every cache (graph input name -> array)."""

    arrays: dict[str, np.ndarray]
    length: int = 0


class TranslatorRuntime(_Runtime):
    """A Transformer or RNN translator in ONNX Runtime: ``translate(sentences, beam_size=,
    alpha=, batch_size=)`` like ``Translator.translate``; ``start/step/reorder`` for
    :func:`attnlab.evaluation.decoding.decode`."""

    def __init__(self, directory: Path, manifest: dict, threads: int | None):
        super().__init__(directory, manifest, threads)
        self._tokenizers = None
        self.decoder_inputs = self.sessions["decoder"].input_names

    @property
    def tokenizers(self):
        if self._tokenizers is None:
            from attnlab.data.tokenizer import Tokenizer

            self._tokenizers = (Tokenizer.load(self.directory / "src_tokenizer"), Tokenizer.load(self.directory / "tgt_tokenizer"))
        return self._tokenizers

    # the StepDecoder protocol
    def start(self, src_ids: Tensor) -> TranslatorState:
        src_ids = src_ids.long()
        out = self.sessions["encoder"].run(src_ids=src_ids)
        arrays = {name: value for name, value in out.items() if name in self.decoder_inputs}
        arrays["src_mask"] = (src_ids != self.config.pad_id).long().numpy()
        return TranslatorState(self._initial_state(src_ids.shape[0], out, arrays))

    def _initial_state(self, n: int, encoded: dict, arrays: dict) -> dict:
        if self.manifest["model_type"] == "transformer":
            c = self.config
            empty = np.zeros((n, c.num_heads, 0, c.head_dim), dtype=np.float32)
            for i in range(c.num_layers):
                arrays[f"past.{i}.key"] = arrays[f"past.{i}.value"] = empty
        return arrays

    def step(self, tokens: Tensor, state: TranslatorState) -> tuple[Tensor, TranslatorState]:
        """Feed ``tokens (N,)``; log-probabilities ``(N, V)``."""
        if state.length >= self.config.max_len:
            raise AttnlabError(f"tokens: position {state.length} is past the model's max_len={self.config.max_len}")
        out = self.sessions["decoder"].run(input_ids=tokens.long()[:, None], step=np.array(state.length), **state.arrays)
        for name, value in out.items():
            if name.startswith("present."):
                state.arrays["past." + name[len("present."):]] = value
            elif name.startswith("next."):
                state.arrays[name[len("next."):]] = value
        state.length += 1
        return torch.from_numpy(out["log_probs"]).reshape(tokens.shape[0], -1), state

    def reorder(self, state: TranslatorState, index: Tensor) -> TranslatorState:
        rows = index.cpu().numpy()
        state.arrays = {name: np.take(value, rows, axis=_batch_axis(name)) for name, value in state.arrays.items()}
        return state

    # the Translator interface
    def encode_sources(self, sentences: list[str]) -> Tensor:
        ids = self.tokenizers[0].encode_batch(sentences)
        for n, row in enumerate(ids):
            if len(row) > self.config.max_len:
                raise AttnlabError(f"sentence {n + 1} has {len(row)} tokens; this model translates at most max_len={self.config.max_len}")
        batch = torch.full((len(ids), max(1, max(len(r) for r in ids))), self.config.pad_id, dtype=torch.long)
        for n, row in enumerate(ids):
            batch[n, : len(row)] = torch.tensor(row, dtype=torch.long)
        return batch

    def translate(self, sentences: list[str], *, beam_size: int = 1, alpha: float = 0.6, batch_size: int = 64) -> list[str]:
        """Translate ``sentences`` (batched by length, greedy or beam search), as ``Translator.translate``."""
        from attnlab.evaluation.decoding import decode

        c = self.config
        order = sorted(range(len(sentences)), key=lambda n: len(sentences[n].split()))
        out = [""] * len(sentences)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            src = self.encode_sources([sentences[n] for n in rows])
            max_len = min(c.max_len, 2 * src.shape[1] + 10)
            hyps = decode(self, src, bos_id=c.bos_id, eos_id=c.eos_id, max_len=max_len, beam_size=beam_size, alpha=alpha)
            for n, tokens in zip(rows, hyps.tokens):
                out[n] = self.tokenizers[1].decode(tokens)
        return out


def _batch_axis(name: str) -> int:
    """RNN states are ``(layers, N, H)``; every other array is batch first."""
    return 1 if name in ("h", "c") else 0


# --- encoders -------------------------------------------------------------------------
class BERTRuntime(_Runtime):
    """BERT in ONNX Runtime: ``rt(input_ids, token_type_ids=None, attention_mask=None)``
    gives the head's outputs as tensors; ``fill_mask`` and ``classify`` on text."""

    @cached_property
    def tokenizer(self):
        return _bert_tokenizer(self.directory)

    def __call__(self, input_ids: Tensor, token_type_ids: Tensor | None = None, attention_mask: Tensor | None = None):
        token_type_ids = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        out = self.sessions["model"].run(
            input_ids=input_ids.long(), token_type_ids=token_type_ids.long(), attention_mask=attention_mask.long()
        )
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in out.items()})

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each ``[MASK]`` in ``text`` the ``top_k`` tokens and probabilities (as ``bert.fill_mask``)."""
        if self.config.head not in ("pretraining", "mlm"):
            raise AttnlabError(f"fill_mask: the model has a {self.config.head!r} head; it needs an MLM head")
        if top_k < 1:
            raise AttnlabError(f"top_k: expected >= 1, got {top_k}")
        tok = self.tokenizer
        ids = [tok.cls_id, *tok.encode(text), tok.sep_id]
        positions = [i for i, t in enumerate(ids) if t == tok.mask_id]
        if not positions:
            raise AttnlabError(f"text: no {tok.special_tokens.mask} token in {text!r}")
        logits = self(torch.tensor([ids])).mlm_logits[0, positions]  # (M, V)
        probs, top = logits.softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
        return [[(tok.id_to_token(int(t)), float(p)) for t, p in zip(r_ids, r_p)] for r_ids, r_p in zip(top, probs)]

    def classify(self, texts: list[str], top_k: int = 1) -> list[list[tuple[str, float]]]:
        """The ``top_k`` labels of each text with their probabilities (a classifier head)."""
        if self.config.head != "classifier":
            raise AttnlabError(f"classify: the model has a {self.config.head!r} head; it needs a classifier head")
        tok = self.tokenizer
        rows = [[tok.cls_id, *tok.encode(t)][: self.config.max_positions - 1] + [tok.sep_id] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.config.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for n, r in enumerate(rows):
            ids[n, : len(r)], mask[n, : len(r)] = torch.tensor(r), 1
        probs = self(ids, attention_mask=mask).logits.softmax(-1)
        return _top_labels(probs, self.config.labels, top_k)


def _bert_tokenizer(directory: Path):
    from attnlab.data.tokenizer import Tokenizer
    from attnlab.data.wordpiece import VOCAB_FILE, WordPieceTokenizer
    from attnlab.io import read_json

    config_path = directory / "tokenizer_config.json"
    config = read_json(config_path) if config_path.is_file() else {}
    if isinstance(config, dict) and "kind" in config:
        return Tokenizer.load(directory)
    if (directory / VOCAB_FILE).is_file():
        return WordPieceTokenizer.from_vocab_file(directory / VOCAB_FILE, lowercase=config.get("do_lower_case", True))
    raise AttnlabError(f"{directory}: no tokenizer in the export folder (attnlab's files or a vocab.txt)")


def _top_labels(probs: Tensor, labels: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    if top_k < 1:
        raise AttnlabError(f"top_k: expected >= 1, got {top_k}")
    p, i = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(labels[j] if j < len(labels) else str(j), float(q)) for j, q in zip(ri, rp)] for ri, rp in zip(i.tolist(), p.tolist())]


class ViTRuntime(_Runtime):
    """ViT in ONNX Runtime: ``rt(pixel_values)`` -> outputs; ``classify(images, top_k)`` with
    image files (as the ViT app's ``classify``) or a ``(B, C, H, W)`` tensor."""

    def __init__(self, directory: Path, manifest: dict, threads: int | None):
        super().__init__(directory, manifest, threads)
        self.config.num_labels = len(self.config.labels)

    def __call__(self, pixel_values: Tensor):
        c = self.config
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (c.num_channels, c.image_size, c.image_size):
            raise AttnlabError(
                f"pixel_values: this export takes (B, {c.num_channels}, {c.image_size}, {c.image_size}) images, "
                f"got {tuple(pixel_values.shape)}"
            )
        out = self.sessions["model"].run(pixel_values=pixel_values.float())
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in out.items()})

    def classify(self, images: Tensor | list, top_k: int = 1) -> list[list[tuple[str, float]]]:
        c = self.config
        if not c.labels:
            raise AttnlabError("classify: the exported ViT has no classifier head")
        if not isinstance(images, Tensor):
            from attnlab.data.images import read_image

            images = torch.stack([read_image(p, c.image_size, c.num_channels) for p in images])
        return _top_labels(self(images).logits.softmax(-1), c.labels, top_k)


class GATRuntime(_Runtime):
    """GAT in ONNX Runtime: ``rt(x (N, F), edge_index (2, E)).logits (N, C)``."""

    def __call__(self, x: Tensor, edge_index: Tensor):
        out = self.sessions["model"].run(x=x.float(), edge_index=edge_index.long())
        return SimpleNamespace(logits=torch.from_numpy(out["logits"]))


class HANRuntime(_Runtime):
    """HAN in ONNX Runtime: ``rt(x (N, F), [edge_index_p (2, E_p), ...])`` -> ``logits (N, C)``,
    ``semantic_weights (P,)``."""

    def __call__(self, x: Tensor, metapath_edges: list[Tensor]):
        if len(metapath_edges) != self.config.num_metapaths:
            raise AttnlabError(f"expected {self.config.num_metapaths} meta-path graphs, got {len(metapath_edges)}")
        edges = {f"edge_index.{p}": e.long() for p, e in enumerate(metapath_edges)}
        out = self.sessions["model"].run(x=x.float(), **edges)
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in out.items()})


RUNTIMES = {
    "gpt2": GPTRuntime, "transformer": TranslatorRuntime, "seq2seq": TranslatorRuntime,
    "bert": BERTRuntime, "vit": ViTRuntime, "gat": GATRuntime, "han": HANRuntime,
}


def load_runtime(directory: str | Path, *, threads: int | None = None):
    """The runtime object for an export folder (see the module docstring for each model)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    kind = manifest.get("model_type")
    if kind not in RUNTIMES:
        raise AttnlabError(f"{directory}: no ONNX runtime for a {kind!r} model")
    return RUNTIMES[kind](directory, manifest, threads)
