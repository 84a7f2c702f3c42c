"""Run an attnlab ONNX export in ONNX Runtime (CPU) in place of the PyTorch model: one
runner for every model type (docs/deploy.md shows each call). The graphs' own input and
output names say what goes where -- an input missing from a call takes DEFAULTS,
``present.X`` / ``next.X`` outputs become the next step's ``past.X`` / ``X``, a cache
starts empty -- so the decoding loops (greedy, beam search, sampling) and the apps'
functions are the very same code in both runtimes.
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
from attnlab.export.manifest import read_manifest

_NUMPY = {"tensor(int64)": np.int64, "tensor(float)": np.float32, "tensor(bool)": np.bool_}
BATCH_AXIS = {"h": 1, "c": 1}  # an RNN state is (layers, N, H); every other array is batch first
DEFAULTS = {"token_type_ids": torch.zeros_like, "attention_mask": torch.ones_like}  # of the first input


class Session:
    """One ONNX graph: ``run(**inputs) -> {output name: array}``, the inputs checked against
    the graph's rank and static sizes and cast to its dtypes. ``prepack``: ONNX Runtime's
    GEMM layout of the weights, a copy per session (~1.4x faster prompts); without it the
    memory-mapped ``weights.data`` every session shares."""

    def __init__(self, path: Path, threads: int | None = None, *, prepack: bool = True):
        try:
            import onnxruntime as ort
        except ImportError:
            raise AttnlabError("onnxruntime is not installed: pip install 'attnlab[onnx]'") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        if not prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        self.path = path
        self.session = self._call(lambda: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]),
                                  "cannot load it")
        self.inputs = {i.name: (i.shape, _NUMPY.get(i.type)) for i in self.session.get_inputs()}
        self.input_names, self.output_names = list(self.inputs), [o.name for o in self.session.get_outputs()]

    def run(self, **inputs: Any) -> dict[str, np.ndarray]:
        feeds = {}
        for name, (shape, dtype) in self.inputs.items():
            value = inputs[name].detach().cpu().numpy() if isinstance(inputs[name], Tensor) else inputs[name]
            value = np.asarray(value, dtype=dtype, order="C")
            if value.ndim != len(shape) or any(isinstance(d, int) and d != n for d, n in zip(shape, value.shape)):
                dims = ", ".join(str(d) if isinstance(d, int) else "*" for d in shape)
                raise AttnlabError(f"{name}: this export takes ({dims}) (* any size), got {value.shape}")
            feeds[name] = value
        return dict(zip(self.output_names, self._call(lambda: self.session.run(None, feeds), "failed to run it")))

    def _call(self, fn, what: str):
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own types; one line names the file
            lines = str(error).strip().splitlines() or [type(error).__name__]
            raise AttnlabError(f"{self.path}: ONNX Runtime {what}: {lines[0][:300]}") from None


@dataclass
class State:
    """What a graph carries from one call to the next (graph input name -> array): GPT's KV
    cache, a translator's caches and source mask; ``length``: tokens fed so far."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    length: int = 0

    def absorb(self, outputs: dict[str, np.ndarray], fed: int) -> None:
        self.length += fed
        for name, value in outputs.items():
            if name.startswith(("present.", "next.")):
                self.arrays[name.replace("present.", "past.").removeprefix("next.")] = value


class Runtime:
    """An export folder with its PyTorch model's call shapes: GPT ``rt(ids, mask, position_ids=,
    caches=)``, ``decode_step``, ``generate``; a translator's ``start/step/reorder``; BERT, ViT,
    GAT, HAN ``rt(*inputs)`` (HAN: a list of edge lists), BERT's ``fill_mask``. ``config`` is
    ``export.json``'s; ``tokenizer`` the folder's (a translator's: source, target)."""

    def __init__(self, directory: Path, manifest: dict, threads: int | None):
        self.directory, self.manifest, self.kind = directory, manifest, manifest["model_type"]
        paths = open_folder(directory, manifest)  # files confined and verified, config checked against the graphs
        prepack = len(paths) == 1  # several graphs share the weights: repacked, each session would hold a copy
        self.sessions = {name: Session(path, threads, prepack=prepack) for name, path in paths.items()}
        self.config = SimpleNamespace(**manifest["config"])
        if "labels" in manifest["config"]:
            self.config.num_labels = len(self.config.labels)

    def parameters(self):
        """The device the loops put tensors on (PyTorch code reads it from the parameters): the CPU."""
        return iter([torch.empty(0)])

    def eval(self):
        return self

    @cached_property
    def tokenizer(self):
        if self.kind == "gpt2":
            from attnlab.interop.hf_gpt2 import tokenizer_from_hf_folder

            return tokenizer_from_hf_folder(self.directory)
        from attnlab.data.tokenizer import Tokenizer
        from attnlab.data.wordpiece import tokenizer_from_folder

        if self.kind in ("transformer", "seq2seq"):
            return Tokenizer.load(self.directory / "src_tokenizer"), Tokenizer.load(self.directory / "tgt_tokenizer")
        return tokenizer_from_folder(self.directory, str(self.directory))

    def __call__(self, *args: Any, **kwargs: Any) -> SimpleNamespace:
        """GPT: :meth:`lm`; one-graph models: the graph on ``args`` in its input order (a list
        stands for several: HAN's meta-paths) and ``kwargs`` by name -> every output."""
        if self.kind == "gpt2":
            return self.lm(*args, **kwargs)
        session = self.sessions["model"]
        values = [t for a in args for t in (a if isinstance(a, (list, tuple)) else [a])]
        feeds = {**dict(zip(session.input_names, values)), **{k: v for k, v in kwargs.items() if v is not None}}
        for name, default in DEFAULTS.items():
            if name in session.input_names and name not in feeds and values:
                feeds[name] = default(feeds[session.input_names[0]])
        if len(values) > len(session.input_names) or set(feeds) != set(session.input_names):
            raise AttnlabError(f"this {self.kind} export takes {', '.join(session.input_names)}; got "
                               f"{len(values)} tensors{' and ' + ', '.join(kwargs) if kwargs else ''}")
        return SimpleNamespace(**{k: torch.from_numpy(v) for k, v in session.run(**feeds).items()})

    # GPT: the protocol of evaluation.sampling.generate
    def make_caches(self, capacity: int = 64) -> list[State]:
        return [State()]

    def lm(self, input_ids: Tensor, attention_mask: Tensor | None = None, *, position_ids: Tensor | None = None,
           caches: list[State] | None = None, last_only: bool = False, **_: Any) -> SimpleNamespace:
        """Logits ``(B, L, V)`` (``(B, 1, V)`` with ``last_only``) of ``L`` tokens after the
        cached ones (prefill when there are none); appends to ``caches``."""
        (b, length), cache = input_ids.shape, caches[0] if caches else State()
        past = cache.length
        if attention_mask is None:
            attention_mask = torch.ones(b, past + length, dtype=torch.long)
        if position_ids is None:
            position_ids = torch.arange(past, past + length).expand(b, length)
        out = self.sessions["decode" if past else "prefill"].run(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **cache.arrays)
        cache.absorb(out, length)
        logits = torch.from_numpy(out["logits"])
        return SimpleNamespace(logits=logits[:, -1:] if last_only else logits)

    def decode_step(self, input_ids: Tensor, caches: list[State], attention_mask: Tensor | None = None,
                    position_ids: Tensor | None = None) -> SimpleNamespace:
        return self.lm(input_ids, attention_mask, position_ids=position_ids, caches=caches)

    def generate(self, input_ids: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
        """Greedy or sampled continuation ``(B, L + new)``: :func:`attnlab.evaluation.sampling.generate`."""
        from attnlab.evaluation.sampling import generate

        return generate(self, input_ids, max_new_tokens, **kwargs)

    # translators: the protocol of evaluation.decoding.decode
    def start(self, src_ids: Tensor) -> State:
        inputs, n = self.sessions["decoder"].inputs, src_ids.shape[0]
        encoded = self.sessions["encoder"].run(src_ids=src_ids)
        state = State({name: value for name, value in encoded.items() if name in inputs})
        state.arrays["src_mask"] = (src_ids != self.config.pad_id).long().numpy()
        for name, (shape, dtype) in inputs.items():  # caches not given start empty: (N, H, 0, Dh)
            if name.startswith("past."):
                state.arrays[name] = np.zeros([n, *(d if isinstance(d, int) else 0 for d in shape[1:])], dtype)
        return state

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """Feed ``tokens (N,)``; log-probabilities ``(N, V)``."""
        if state.length >= self.config.max_len:
            raise AttnlabError(f"tokens: position {state.length} is past the model's max_len={self.config.max_len}")
        out = self.sessions["decoder"].run(input_ids=tokens[:, None], step=np.array(state.length), **state.arrays)
        state.absorb(out, 1)
        return torch.from_numpy(out["log_probs"]).reshape(tokens.shape[0], -1), state

    def reorder(self, state: State, index: Tensor) -> State:
        """Keep rows ``index`` of every array (along its BATCH_AXIS)."""
        rows = index.cpu().numpy()
        state.arrays = {k: np.take(v, rows, axis=BATCH_AXIS.get(k, 0)) for k, v in state.arrays.items()}
        return state

    # BERT
    def fill_mask(self, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each ``[MASK]`` in ``text`` the ``top_k`` tokens and probabilities: :func:`attnlab.models.bert.fill_mask`."""
        from attnlab.models.bert import fill_mask

        return fill_mask(self, self.tokenizer, text, top_k)


def load_runtime(directory: str | Path, *, threads: int | None = None) -> Runtime:
    """The runtime of an export folder (see the module docstring for each model type)."""
    directory = Path(directory)
    return Runtime(directory, read_manifest(directory), threads)
