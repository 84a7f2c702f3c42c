"""The key/value cache for incremental decoding: functional (:class:`PastKV`) and stateful
(:class:`KVCache`).

When a decoder generates token t, the keys and values of tokens < t do not change, so
each attention layer keeps them: ``K_{1..t} = concat(K_{1..t-1}, k_t)``.

The functional form is a pair of tensors: :class:`PastKV` (past keys/values in) whose
:meth:`PastKV.update` returns the present ones (``concat(past, new)``), and
:class:`~attnlab.attention.multi_head.MultiHeadAttention` returns them as ``present``
(what torchtune and x-transformers pass around; what a traced graph, e.g. an ONNX
export, takes and returns). ``PastKV(k, v, static=True)`` holds cross-attention keys
projected once: the layer uses them as they are.

:class:`KVCache` is the same protocol (``length``, ``static``, ``is_filled``, ``update``)
with state: one belongs to one attention layer and keeps what ``update`` appended. Two kinds:

- *growing* (self-attention): :meth:`update` appends the new keys/values and returns all
  of them. Storage is preallocated and doubled when full, so a step costs a copy of the
  new token only.
- *static* (cross-attention): the encoder's keys/values are projected once, on the first
  call, and reused for every decoding step.

Shapes: per-head keys/values ``(B, Hkv, L, Dh)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from attnlab.errors import AttnlabError


class PastKV(NamedTuple):
    """Past keys/values ``(B, Hkv, P, Dh)`` of one attention layer: the functional cache.

    ``update(k, v)`` returns the present ``(concat(key, k), concat(value, v))`` and changes
    nothing; ``static``: cross-attention keys/values, used as they are (never updated)."""

    key: Tensor
    value: Tensor
    static: bool = False

    @property
    def length(self) -> int:
        return self.key.shape[2]

    @property
    def is_filled(self) -> bool:
        return self.static

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        return torch.cat([self.key, key], dim=2), torch.cat([self.value, value], dim=2)  # (B, Hkv, P + L, Dh)

    def advance(self, present: tuple[Tensor, Tensor]) -> PastKV:
        """The cache of the next call: the layer's ``present`` keys/values."""
        return PastKV(*present, static=self.static)

    @staticmethod
    def empty(batch: int, heads: int, head_dim: int, like: Tensor) -> PastKV:
        """No past yet: ``(B, Hkv, 0, Dh)`` of ``like``'s dtype and device."""
        none = like.new_zeros(batch, heads, 0, head_dim)
        return PastKV(none, none)


class KVCache:
    """Keys/values of the tokens seen so far, for one attention layer: :class:`PastKV`'s
    update kept in place (``update`` returns what ``PastKV(key, value).update`` would)."""

    def __init__(self, static: bool = False, capacity: int = 64):
        self.static = static
        self.initial_capacity = capacity
        self.reset()

    def reset(self) -> None:
        """Forget everything (start a new sequence)."""
        self._key: Tensor | None = None
        self._value: Tensor | None = None
        self.length = 0

    @property
    def key(self) -> Tensor | None:
        return None if self._key is None else self._key[:, :, : self.length]

    @property
    def value(self) -> Tensor | None:
        return None if self._value is None else self._value[:, :, : self.length]

    @property
    def is_filled(self) -> bool:
        return self.length > 0

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``key``/``value`` ``(B, Hkv, Lnew, Dh)``; return all cached ``(B, Hkv, L, Dh)``."""
        if self.static:
            if self.is_filled:
                raise AttnlabError("a static (cross-attention) cache is filled once; call reset() first")
            self._key, self._value, self.length = key, value, key.shape[2]
            return key, value
        new = key.shape[2]
        if self._key is None:
            self._allocate(key, value, max(self.initial_capacity, new))
        elif key.shape[:2] != self._key.shape[:2] or key.shape[3] != self._key.shape[3]:
            raise AttnlabError(
                f"cache holds keys of shape (B, H, *, Dh)={tuple(self._key.shape)}, got {tuple(key.shape)}"
            )
        elif self.length + new > self._key.shape[2]:
            self._grow(2 * (self.length + new))
        self._key[:, :, self.length : self.length + new] = key
        self._value[:, :, self.length : self.length + new] = value
        self.length += new
        return self.key, self.value

    def advance(self, present: tuple[Tensor, Tensor]) -> KVCache:
        """The cache of the next call: this one (``update`` kept the present keys/values)."""
        return self

    def claim(self, new: int) -> tuple[Tensor, Tensor]:
        """Extend by ``new`` tokens whose keys/values the caller writes in place, at rows
        ``length .. length + new - 1`` (the length before the call) of the returned
        storage ``(B, Hkv, capacity, Dh)`` — for kernels that write the cache themselves.
        The cache must already hold a token (its shapes come from the first update)."""
        if self.static or self._key is None:
            raise AttnlabError("claim() extends a growing cache that already holds keys")
        if self.length + new > self._key.shape[2]:
            self._grow(2 * (self.length + new))
        self.length += new
        return self._key, self._value

    def reorder(self, index: Tensor) -> None:
        """Select batch rows (beam search): ``index (B_new,)`` into the cached batch. New
        storage of the same capacity; only the ``length`` filled positions are copied."""
        if self._key is not None:
            self._key, self._value = (_select_rows(t, index, self.length) for t in (self._key, self._value))

    def _allocate(self, key: Tensor, value: Tensor, capacity: int) -> None:
        b, h, _, dk = key.shape
        self._key = key.new_empty(b, h, capacity, dk)
        self._value = value.new_empty(b, h, capacity, value.shape[3])

    def _grow(self, capacity: int) -> None:
        old_key, old_value = self.key, self.value
        self._allocate(old_key, old_value, capacity)
        self._key[:, :, : self.length] = old_key
        self._value[:, :, : self.length] = old_value


def make_caches(num_layers: int, static: bool = False) -> list[KVCache]:
    """One cache per layer."""
    return [KVCache(static=static) for _ in range(num_layers)]


def _select_rows(storage: Tensor, index: Tensor, length: int) -> Tensor:
    """``storage[index]`` for ``storage (B, H, capacity, Dh)``, its first ``length`` positions
    copied (the rest of the new storage is not read before it is written)."""
    if storage.requires_grad and torch.is_grad_enabled():  # out= has no autograd: the whole storage, differentiably
        return storage.index_select(0, index)
    out = storage.new_empty((index.numel(), *storage.shape[1:]))  # (B_new, H, capacity, Dh)
    torch.index_select(storage[:, :, :length], 0, index, out=out[:, :, :length])
    return out
