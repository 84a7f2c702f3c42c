"""The ctypes binding of ``gpt_decode.c``: one GPT decoding step for B rows at one position.

:class:`NativeDecoder` holds the pointers of a model's decoding weights (rebuilt when
they change) and runs ``attnlab_gpt_decode`` on a token, writing the new key/value row
into per-layer key/value storage in place: :meth:`NativeDecoder.run` takes that storage
as plain tensors and the number of tokens already in it; :meth:`NativeDecoder.step` takes
any caches with a ``length`` and a ``claim(n)`` (the attention layers' ``KVCache``; this
module imports none). Only fp32 CPU tensors and no padding (every row at the same
position: a batch of equal-length prompts, or the beams of one); the model falls back to its
PyTorch path for everything else. A token given as an ``int`` is one row and gives
``(V,)``/``(D,)`` back; a ``(B,)`` tensor of tokens gives ``(B, V)``/``(B, D)``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from attnlab.kernels.native.build import bind

_FIELDS = (
    "norm1_weight", "norm1_bias", "qkv_weight_t", "qkv_bias", "out_weight_t", "out_bias",
    "norm2_weight", "norm2_bias", "fc1_weight_t", "fc1_bias", "fc2_weight_t", "fc2_bias",
)


class _Layer(ctypes.Structure):
    """Mirror of ``gpt_layer`` in gpt_decode.c: the tensors of one block, by address."""

    _fields_ = [(name, ctypes.c_void_p) for name in _FIELDS]


class _Cache(Protocol):
    """What :meth:`NativeDecoder.step` needs of a cache: its length and room for new rows."""

    length: int

    def claim(self, new: int) -> tuple[Tensor, Tensor]: ...


def _pointer(t: Tensor) -> int:
    return t.data_ptr()


_SIGNATURES = {  # attnlab_gpt_decode(7 ints, eps, threads, batch, 10 pointers)
    "attnlab_gpt_decode": (None, [ctypes.c_int] * 7 + [ctypes.c_float, ctypes.c_int, ctypes.c_int] + [ctypes.c_void_p] * 10),
}


def _library() -> ctypes.CDLL | None:
    return bind("gpt_decode", _SIGNATURES)


def available() -> bool:
    """True when the C step is built (or buildable) on this machine and not turned off."""
    return _library() is not None


class NativeDecoder:
    """The C decoding step bound to one set of decoding weights.

    ``layers``: per block the tensors named in ``_FIELDS`` (fp32, contiguous, matrices
    ``(in, out)``); ``final_norm = (weight, bias)``; ``embedding (V, D)`` (tied output);
    ``positions (context, D)``. The object keeps references to all of them, so their
    addresses stay valid while it lives.
    """

    def __init__(self, layers: Sequence, final_norm: tuple[Tensor, Tensor], embedding: Tensor,
                 positions: Tensor, heads: int, eps: float):
        self._library = _library()
        tensors = [getattr(layer, name) for layer in layers for name in _FIELDS]
        tensors += [*final_norm, embedding, positions]
        if any(t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous() for t in tensors):
            raise ValueError("the native GPT step needs contiguous fp32 CPU tensors")
        self._keep = tensors
        self._layers = (_Layer * len(layers))(*[_Layer(*[_pointer(getattr(w, n)) for n in _FIELDS]) for w in layers])
        self.embedding, self.positions, self.final_norm = embedding, positions, final_norm
        self.num_layers, self.heads, self.eps = len(layers), heads, eps
        self.vocab, self.d = embedding.shape
        self.ffn = layers[0].fc1_bias.shape[0]
        self._pointer_arrays = ctypes.c_void_p * len(layers)

    def step(self, tokens: int | Tensor, caches: Sequence[_Cache]) -> tuple[Tensor, Tensor]:
        """Logits ``(V,)`` of the token after ``tokens`` (at position ``caches[0].length``) and
        the final LayerNorm's output ``(D,)`` -- ``(B, V)``, ``(B, D)`` for a ``(B,)`` tensor of
        tokens; appends the tokens' keys/values to ``caches`` (one per layer, B rows, fp32)."""
        past = caches[0].length
        keys, values = zip(*(cache.claim(1) for cache in caches))  # (B, H, capacity, Dh) each
        return self.run(tokens, keys, values, past)

    def run(self, tokens: int | Tensor, keys: Sequence[Tensor], values: Sequence[Tensor], past: int) -> tuple[Tensor, Tensor]:
        """:meth:`step` on plain storage: ``keys``/``values`` per layer ``(B, H, capacity, Dh)``
        (contiguous fp32) holding ``past`` tokens; the new tokens' rows are written at ``past``."""
        one = not isinstance(tokens, Tensor)
        ids = torch.tensor([tokens]) if one else tokens.reshape(-1).to(torch.int64).contiguous()  # (B,)
        batch, capacity = ids.numel(), keys[0].shape[2]
        low, high = (int(ids.min()), int(ids.max())) if batch else (0, 0)
        if not 0 <= past < min(capacity, self.positions.shape[0]) or not (0 <= low and high < self.vocab) \
                or any(t.shape[0] != batch for t in (*keys, *values)) or batch == 0:
            raise ValueError(f"native GPT step: tokens in [{low}, {high}] (vocab {self.vocab}) at {past} "
                             f"(capacity {capacity}), {batch} rows for caches of {keys[0].shape[0]}")
        workspace = torch.empty(batch * (6 * self.d + self.ffn + self.heads * capacity))  # per call: thread-safe
        logits = torch.empty(batch, self.vocab)
        self._library.attnlab_gpt_decode(
            self.num_layers, self.d, self.heads, self.ffn, self.vocab, capacity, past, self.eps, torch.get_num_threads(),
            batch, self._layers, self._pointer_arrays(*map(_pointer, keys)), self._pointer_arrays(*map(_pointer, values)),
            _pointer(ids), _pointer(self.positions) + past * 4 * self.d,
            _pointer(self.final_norm[0]), _pointer(self.final_norm[1]), _pointer(self.embedding),
            _pointer(workspace), _pointer(logits),
        )
        hidden = workspace[batch * self.d : 2 * batch * self.d].view(batch, self.d)  # the workspace's x: LN_f(h)
        return (logits[0], hidden[0]) if one else (logits, hidden)
