"""Incremental decoding with a KV cache equals recomputing everything (fp32, atol 1e-5)."""

import pytest
import torch

from attnlab.attention import KVCache, MultiHeadAttention, RotaryEmbedding
from attnlab.errors import AttnlabError

E, H, B, L = 16, 4, 2, 9


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("chunks", [[1] * L, [4, 1, 3, 1]])
def test_cached_equals_uncached(num_kv_heads, rotary, chunks):
    mha = MultiHeadAttention(E, H, num_kv_heads=num_kv_heads, rotary=RotaryEmbedding(E // H) if rotary else None).eval()
    x = torch.randn(B, L, E)
    full = mha(x, causal=True).output
    cache = KVCache(capacity=2)  # small capacity: exercises growth
    outs, start = [], 0
    for n in chunks:
        outs.append(mha(x[:, start : start + n], causal=True, cache=cache).output)
        start += n
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-4)
    assert cache.length == L


def test_padding_mask_with_cache():
    """A key-padding mask over all keys seen so far works step by step."""
    mha = MultiHeadAttention(E, H).eval()
    x = torch.randn(B, L, E)
    allowed = torch.ones(B, 1, 1, L, dtype=torch.bool)
    allowed[0, ..., :3] = False  # left padding of the first sequence
    full = mha(x, causal=True, mask=allowed).output
    cache = KVCache()
    steps = [mha(x[:, i : i + 1], causal=True, mask=allowed[..., : i + 1], cache=cache).output for i in range(L)]
    got = torch.cat(steps, 1)
    torch.testing.assert_close(got[:, 3:], full[:, 3:], atol=1e-5, rtol=1e-4)


def test_static_cross_attention_cache_projects_memory_once():
    mha = MultiHeadAttention(E, H).eval()
    memory, queries = torch.randn(B, 7, E), torch.randn(B, 3, E)
    full = mha(queries, memory).output
    cache = KVCache(static=True)
    first = mha(queries[:, :1], memory, cache=cache).output
    calls = []
    mha.k_proj.register_forward_hook(lambda *a: calls.append(1))
    rest = mha(queries[:, 1:], memory, cache=cache).output
    assert not calls, "cached keys must not be projected again"
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=1e-4)
    with pytest.raises(AttnlabError, match="filled once"):
        cache.update(torch.randn(B, H, 1, 4), torch.randn(B, H, 1, 4))


def test_reorder_and_reset():
    """Keys and values are both reordered (distinct values, so skipping either fails), and
    the cache keeps growing correctly afterwards."""
    cache = KVCache(capacity=2)
    key, value = torch.randn(3, 2, 2, 4), torch.randn(3, 2, 2, 5)
    cache.update(key, value)
    index = torch.tensor([2, 2, 0])
    cache.reorder(index)
    assert torch.equal(cache.key, key[index]) and torch.equal(cache.value, value[index])
    new_key, new_value = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 5)
    cache.update(new_key, new_value)  # past the capacity: the storage grows
    assert torch.equal(cache.key, torch.cat([key[index], new_key], 2))
    assert torch.equal(cache.value, torch.cat([value[index], new_value], 2))
    cache.reset()
    assert cache.length == 0 and cache.key is None and cache.value is None


def test_reorder_copies_the_filled_positions_and_keeps_the_capacity():
    """Storage larger than the sequence: the filled positions follow the index, the batch may
    shrink or repeat rows, and later tokens are written in place after them."""
    cache = KVCache(capacity=8)
    key, value = torch.randn(3, 2, 3, 4), torch.randn(3, 2, 3, 5)
    cache.update(key, value)
    index = torch.tensor([1, 1])  # beam search: one row kept twice, the batch shrinks
    cache.reorder(index)
    assert cache._key.shape == (2, 2, 8, 4) and cache.length == 3
    assert torch.equal(cache.key, key[index]) and torch.equal(cache.value, value[index])
    new_key, new_value = torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 5)
    cache.update(new_key, new_value)  # within the capacity: no growth
    assert cache._key.shape[2] == 8
    assert torch.equal(cache.key, torch.cat([key[index], new_key], 2))
    assert torch.equal(cache.value, torch.cat([value[index], new_value], 2))
    static = KVCache(static=True)
    static.update(key.transpose(2, 3).transpose(2, 3)[:, :, :2], value[:, :, :2])  # a strided view
    static.reorder(torch.tensor([2, 0]))
    assert torch.equal(static.key, key[[2, 0], :, :2]) and torch.equal(static.value, value[[2, 0], :, :2])


def test_reorder_keeps_gradients_when_the_cache_holds_differentiable_tensors():
    """A cache filled under autograd (beam search on a model in training mode) reorders
    differentiably: the same values, and the gradient reaches the keys/values."""
    cache = KVCache(capacity=8)
    key, value = torch.randn(3, 2, 3, 4, requires_grad=True), torch.randn(3, 2, 3, 5, requires_grad=True)
    cache.update(key * 1.0, value * 1.0)
    index = torch.tensor([2, 0])
    cache.reorder(index)
    assert torch.equal(cache.key, key[index]) and torch.equal(cache.value, value[index])
    (cache.key.sum() + 2 * cache.value.sum()).backward()
    expected = torch.zeros(3, 1, 1, 1)
    expected[[2, 0]] = 1.0
    assert torch.equal(key.grad, expected.expand_as(key)) and torch.equal(value.grad, 2 * expected.expand_as(value))


def test_claim_extends_in_place_and_grows():
    cache = KVCache(capacity=3)
    key, value = torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4)
    cache.update(key, value)
    with pytest.raises(AttnlabError, match="already holds keys"):
        KVCache().claim(1)
    for step in range(4):  # capacity 3 -> grows while keeping what is there
        keys, values = cache.claim(1)
        keys[:, :, cache.length - 1] = step
        values[:, :, cache.length - 1] = -step
    assert cache.length == 6 and cache.key.shape == (1, 2, 6, 4)
    torch.testing.assert_close(cache.key[:, :, :2], key, rtol=0, atol=0)
    assert torch.equal(cache.key[0, 0, 2:, 0], torch.arange(4.0))
    assert torch.equal(cache.value[0, 1, 2:, 3], -torch.arange(4.0))


@pytest.mark.parametrize("num_kv_heads", [4, 1])
@pytest.mark.parametrize("rotary", [False, True])
def test_functional_cache_equals_the_stateful_one_and_uncached(num_kv_heads, rotary):
    """PastKV in, present out: chunk by chunk equals the uncached call and KVCache, and the
    present holds every key so far (the next call's past)."""
    from attnlab.attention.kv_cache import PastKV

    mha = MultiHeadAttention(E, H, num_kv_heads=num_kv_heads, rotary=RotaryEmbedding(E // H) if rotary else None).eval()
    x = torch.randn(B, L, E)
    full = mha(x, causal=True)
    past, cache, outs, stateful, start = PastKV.empty(B, num_kv_heads, E // H, x), KVCache(capacity=2), [], [], 0
    for n in (3, 1, 4, 1):
        out = mha(x[:, start : start + n], causal=True, cache=past)
        past = past.advance(out.present)
        outs.append(out.output)
        stateful.append(mha(x[:, start : start + n], causal=True, cache=cache).output)
        start += n
    torch.testing.assert_close(torch.cat(outs, 1), full.output, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(stateful, 1), torch.cat(outs, 1), atol=0, rtol=0)
    assert past.length == L and not past.static
    torch.testing.assert_close(past.key, full.present[0], atol=1e-6, rtol=0)  # rotated keys of all L tokens
    torch.testing.assert_close(past.value, cache.value, atol=0, rtol=0)


def test_static_functional_cache_is_used_as_given():
    mha = MultiHeadAttention(E, H).eval()
    memory, queries = torch.randn(B, 7, E), torch.randn(B, 3, E)
    kv = mha.keys_values(memory)
    assert kv.static and kv.key.shape == (B, H, 7, E // H)
    out = mha(queries, cache=kv)  # no memory needed: the keys are the cache's
    torch.testing.assert_close(out.output, mha(queries, memory).output, atol=1e-6, rtol=0)
    assert out.present[0] is kv.key and kv.advance(out.present) == kv
