"""The ctypes binding of ``gpt_decode.c``: GPT decoding steps for B rows at one position.

:class:`NativeDecoder` holds a model's decoding weights, packed in panels of 16 columns
``(ceil(out / 16), in, 16)`` for the C products (a copy of the block weights and of the
tied output layer), and runs:

- :meth:`NativeDecoder.run`: one step on per-layer key/value storage ``(B, H, capacity,
  Dh)`` holding ``past`` tokens, writing the new keys/values at ``past`` in place;
  :meth:`NativeDecoder.step` the same on caches with a ``length`` and a ``claim(n)`` (the
  attention layers' ``KVCache``; this module imports none);
- :meth:`NativeDecoder.generate`: a whole greedy continuation in one call (argmax, end
  token and padding in C).

``lineage (B, capacity)`` int32, optional: row ``b``'s key/value at position ``t`` lives in
storage row ``lineage[b, t]`` (a beam search's reorder rewrites this table instead of
copying the caches); the step sets ``lineage[b, past] = b``. Only fp32 CPU tensors and no
padding (every row at the same position); the model falls back to its PyTorch path for
everything else. A token given as an ``int`` is one row and gives ``(V,)``/``(D,)`` back;
a ``(B,)`` tensor of tokens gives ``(B, V)``/``(B, D)``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.kernels.native.build import bind

PANEL = 16  # columns per panel of a packed weight (gpt_decode.c's W)
_FIELDS = (
    "norm1_weight", "norm1_bias", "qkv_weight_t", "qkv_bias", "out_weight_t", "out_bias",
    "norm2_weight", "norm2_bias", "fc1_weight_t", "fc1_bias", "fc2_weight_t", "fc2_bias",
)
_PACKED = {"qkv_weight_t", "out_weight_t", "fc1_weight_t", "fc2_weight_t"}  # matrices (in, out) -> panels
_PADDED = {"qkv_bias", "out_bias", "fc1_bias", "fc2_bias"}  # their biases, padded to whole panels


class _Layer(ctypes.Structure):
    """Mirror of ``gpt_layer`` in gpt_decode.c: the tensors of one block, by address."""

    _fields_ = [(name, ctypes.c_void_p) for name in _FIELDS]


class _Model(ctypes.Structure):
    """Mirror of ``gpt_model``."""

    _fields_ = [(n, ctypes.c_int) for n in ("num_layers", "d", "heads", "ffn", "vocab")] + [("eps", ctypes.c_float)] + [
        (n, ctypes.c_void_p) for n in ("layers", "final_weight", "final_bias", "embedding", "positions", "output")]


class _Cache(ctypes.Structure):
    """Mirror of ``gpt_cache``."""

    _fields_ = [("batch", ctypes.c_int), ("capacity", ctypes.c_int)] + [
        (n, ctypes.c_void_p) for n in ("keys", "values", "lineage")]


class _Storage(Protocol):
    """What :meth:`NativeDecoder.step` needs of a cache: its length and room for new rows."""

    length: int

    def claim(self, new: int) -> tuple[Tensor, Tensor]: ...


_P, _I = ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "attnlab_gpt_workspace": (ctypes.c_size_t, [_P, _I, _I]),
    "attnlab_gpt_decode": (_I, [_P, _P, _I, _I, _P, _P, _P]),
    "attnlab_gpt_generate": (_I, [_P, _P, _I, _I, _I, ctypes.c_int64, ctypes.c_int64, _P, _P, _P, _P, _P]),
}


def _library() -> ctypes.CDLL | None:
    return bind("gpt_decode", _SIGNATURES)


def available() -> bool:
    """True when the C step is built (or buildable) on this machine and not turned off."""
    return _library() is not None


def pack(weight: Tensor) -> Tensor:
    """A matrix ``(in, out)`` as panels ``(ceil(out / 16), in, 16)``, zero-padded columns."""
    n_in = weight.shape[0]
    return F.pad(weight, (0, -weight.shape[1] % PANEL)).view(n_in, -1, PANEL).transpose(0, 1).contiguous()


class NativeDecoder:
    """The C decoding step bound to one set of decoding weights.

    ``layers``: per block the tensors named in ``_FIELDS`` (fp32, contiguous, matrices
    ``(in, out)``); ``final_norm = (weight, bias)``; ``embedding (V, D)`` (tied output);
    ``positions (context, D)``. The object keeps references to all of them (and to its
    packed copies), so their addresses stay valid while it lives.
    """

    def __init__(self, layers: Sequence, final_norm: tuple[Tensor, Tensor], embedding: Tensor,
                 positions: Tensor, heads: int, eps: float):
        self._library = _library()
        tensors = [getattr(layer, name) for layer in layers for name in _FIELDS]
        tensors += [*final_norm, embedding, positions]
        if any(t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous() for t in tensors):
            raise ValueError("the native GPT step needs contiguous fp32 CPU tensors")

        def prepared(name: str, t: Tensor) -> Tensor:
            if name in _PACKED:
                return pack(t)
            return F.pad(t, (0, -t.shape[0] % PANEL)).contiguous() if name in _PADDED else t

        packed = [{name: prepared(name, getattr(layer, name)) for name in _FIELDS} for layer in layers]
        output = pack(embedding.t())  # the tied output layer (D, V) in panels
        self._keep = [*final_norm, embedding, positions, output] + [t for layer in packed for t in layer.values()]
        self._layers = (_Layer * len(layers))(*[_Layer(*[layer[n].data_ptr() for n in _FIELDS]) for layer in packed])
        self.vocab, self.d = embedding.shape
        self.context, self.heads = positions.shape[0], heads
        self.ffn = layers[0].fc1_bias.shape[0]
        self._model = _Model(len(layers), self.d, heads, self.ffn, self.vocab, eps, ctypes.addressof(self._layers),
                             final_norm[0].data_ptr(), final_norm[1].data_ptr(), embedding.data_ptr(),
                             positions.data_ptr(), output.data_ptr())
        self._pointer_arrays = ctypes.c_void_p * len(layers)

    def step(self, tokens: int | Tensor, caches: Sequence[_Storage], lineage: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits ``(V,)`` of the token after ``tokens`` (at position ``caches[0].length``) and
        the final LayerNorm's output ``(D,)`` -- ``(B, V)``, ``(B, D)`` for a ``(B,)`` tensor of
        tokens; appends the tokens' keys/values to ``caches`` (one per layer, B rows, fp32)."""
        past = caches[0].length
        keys, values = zip(*(cache.claim(1) for cache in caches))  # (B, H, capacity, Dh) each
        return self.run(tokens, keys, values, past, lineage)

    def run(self, tokens: int | Tensor, keys: Sequence[Tensor], values: Sequence[Tensor], past: int,
            lineage: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`step` on plain storage: ``keys``/``values`` per layer ``(B, H, capacity, Dh)``
        (contiguous fp32) holding ``past`` tokens; the new tokens' rows are written at ``past``."""
        one = not isinstance(tokens, Tensor)
        ids = torch.tensor([tokens]) if one else tokens.reshape(-1).to(torch.int64).contiguous()  # (B,)
        cache, workspace = self._cache(ids.numel(), keys, values, past, 1, lineage)
        logits = torch.empty(cache.batch, self.vocab)
        if self._library.attnlab_gpt_decode(ctypes.byref(self._model), ctypes.byref(cache), past,
                                            torch.get_num_threads(), ids.data_ptr(), workspace.data_ptr(),
                                            logits.data_ptr()):
            self._bad_tokens(ids)
        hidden = workspace[cache.batch * self.d : 2 * cache.batch * self.d].view(cache.batch, self.d)  # LN_f(h)
        return (logits[0], hidden[0]) if one else (logits, hidden)

    def generate(self, tokens: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor], past: int, steps: int,
                 eos: int | None = None, pad: int | None = None, finished: Tensor | None = None,
                 lineage: Tensor | None = None) -> Tensor:
        """Greedy continuation: feed ``tokens (B,)`` at ``past``, then each row's argmax, ``steps``
        times (fewer when every row has emitted ``eos``; a row that has, and those marked in
        ``finished (B,)`` bool, get ``pad``): the chosen tokens ``(B, made)``."""
        ids = tokens.reshape(-1).to(torch.int64).contiguous()
        cache, workspace = self._cache(ids.numel(), keys, values, past, steps, lineage)
        pad = 0 if eos is None else eos if pad is None else pad  # fed to the finished rows: a token
        if not 0 <= pad < self.vocab:
            raise ValueError(f"native GPT generate: pad id {pad} outside the vocabulary ({self.vocab})")
        done = (torch.zeros(cache.batch, dtype=torch.bool) if finished is None else finished.clone()).to(torch.uint8)
        out, logits = torch.empty(steps, cache.batch, dtype=torch.int64), torch.empty(cache.batch, self.vocab)
        made = self._library.attnlab_gpt_generate(
            ctypes.byref(self._model), ctypes.byref(cache), past, torch.get_num_threads(), steps,
            -1 if eos is None else eos, pad, ids.data_ptr(), done.data_ptr(),
            workspace.data_ptr(), logits.data_ptr(), out.data_ptr())
        if made < 0:
            self._bad_tokens(ids)
        return out[:made].t()

    def _cache(self, batch: int, keys: Sequence[Tensor], values: Sequence[Tensor], past: int, steps: int,
               lineage: Tensor | None) -> tuple[_Cache, Tensor]:
        """The C view of the storage (checked) and a workspace for ``batch`` rows (per call: thread-safe)."""
        capacity = keys[0].shape[2]
        shape = (batch, self.heads, capacity, self.d // self.heads)
        if 0 <= past and past + steps <= min(capacity, self.context) and steps >= 1 and batch \
                and len(keys) == len(values) == self._model.num_layers \
                and all(t.shape == shape and t.dtype == torch.float32 and t.is_contiguous() for t in (*keys, *values)) \
                and (lineage is None or (lineage.shape == (batch, capacity) and lineage.dtype == torch.int32
                                         and lineage.is_contiguous())):
            arrays = [self._pointer_arrays(*(t.data_ptr() for t in storage)) for storage in (keys, values)]
            cache = _Cache(batch, capacity, *map(ctypes.addressof, arrays), None if lineage is None else lineage.data_ptr())
            cache._keep = arrays  # the pointer arrays live as long as the struct
            size = self._library.attnlab_gpt_workspace(ctypes.byref(self._model), batch, capacity)
            return cache, torch.empty(size)
        raise ValueError(f"native GPT step: {steps} step(s) of {batch} rows at {past} (context {self.context}) for "
                         f"caches of {tuple(keys[0].shape)} (expected {shape}, fp32, contiguous)"
                         + ("" if lineage is None else f" and a lineage of {tuple(lineage.shape)}"))

    def _bad_tokens(self, ids: Tensor):
        raise ValueError(f"native GPT step: tokens in [{int(ids.min())}, {int(ids.max())}], vocabulary {self.vocab}")
