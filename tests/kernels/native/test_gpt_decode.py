"""The C GPT decoding step's binding (attnlab.kernels.native.gpt_decode) on plain tensors:
``run`` (storage + a length) equals ``step`` (any cache with ``length``/``claim``), and
out-of-range tokens or positions are clear errors, not reads past the tables. The step
itself is tested against the PyTorch path and HF in tests/models/test_gpt_decoding.py."""

import shutil
from types import SimpleNamespace

import pytest
import torch

from attnlab.kernels.native import gpt_decode

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="the C step needs a C compiler")

V, D, HEADS, FF, LAYERS, CONTEXT = 23, 32, 4, 48, 2, 16


def decoder():
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return (torch.randn(*shape, generator=g) * 0.2).contiguous()

    layers = [
        SimpleNamespace(
            norm1_weight=1 + rand(D), norm1_bias=rand(D), qkv_weight_t=rand(D, 3 * D), qkv_bias=rand(3 * D),
            out_weight_t=rand(D, D), out_bias=rand(D), norm2_weight=1 + rand(D), norm2_bias=rand(D),
            fc1_weight_t=rand(D, FF), fc1_bias=rand(FF), fc2_weight_t=rand(FF, D), fc2_bias=rand(D),
        )
        for _ in range(LAYERS)
    ]
    return gpt_decode.NativeDecoder(layers, (1 + rand(D), rand(D)), rand(V, D), rand(CONTEXT, D), HEADS, 1e-5)


class ListCache:
    """The least a cache must offer ``step``: a length and room for new rows."""

    def __init__(self, capacity: int):
        self.key = torch.zeros(1, HEADS, capacity, D // HEADS)
        self.value = torch.zeros(1, HEADS, capacity, D // HEADS)
        self.length = 0

    def claim(self, new: int):
        self.length += new
        return self.key, self.value


@pytest.mark.skipif(not gpt_decode.available(), reason="the C step could not be built")
def test_run_on_plain_storage_equals_step_on_caches():
    native = decoder()
    caches = [ListCache(8) for _ in range(LAYERS)]
    keys = [torch.zeros(1, HEADS, 8, D // HEADS) for _ in range(LAYERS)]
    values = [torch.zeros(1, HEADS, 8, D // HEADS) for _ in range(LAYERS)]
    for past, token in enumerate([3, 7, 0, 22, 5]):
        logits, hidden = native.step(token, caches)
        plain_logits, plain_hidden = native.run(token, keys, values, past)
        assert torch.equal(logits, plain_logits) and torch.equal(hidden, plain_hidden)
        assert torch.isfinite(logits).all() and logits.shape == (V,)
    for cache, key, value in zip(caches, keys, values):
        assert torch.equal(cache.key, key) and torch.equal(cache.value, value)
        assert key[:, :, :5].abs().sum() > 0 and key[:, :, 5:].abs().sum() == 0  # rows written at 0..4 only


@pytest.mark.skipif(not gpt_decode.available(), reason="the C step could not be built")
@pytest.mark.parametrize("token,past", [(V, 0), (-1, 0), (0, 8), (0, -1), (0, CONTEXT)])
def test_out_of_range_token_or_position_is_a_clear_error(token, past):
    native = decoder()
    capacity = CONTEXT + 4
    storage = [torch.zeros(1, HEADS, capacity, D // HEADS) for _ in range(LAYERS)]
    if past == 8:  # past the storage
        storage = [torch.zeros(1, HEADS, 8, D // HEADS) for _ in range(LAYERS)]
    with pytest.raises(ValueError, match="native GPT step"):
        native.run(token, storage, storage, past)


@pytest.mark.skipif(not gpt_decode.available(), reason="the C step could not be built")
def test_a_batch_gives_each_row_the_bits_it_gets_alone():
    """B rows at one position: each weight block is applied to every row in the order one row
    alone uses, so the logits, hidden states and cached rows are equal bit for bit."""
    native = decoder()
    tokens = torch.tensor([3, 22, 0, 7, 7, 1, 9, 11, 5])  # 9 rows, two equal
    keys = [torch.zeros(9, HEADS, 8, D // HEADS) for _ in range(LAYERS)]
    values = [torch.zeros(9, HEADS, 8, D // HEADS) for _ in range(LAYERS)]
    alone = [([torch.zeros(1, HEADS, 8, D // HEADS) for _ in range(LAYERS)],
              [torch.zeros(1, HEADS, 8, D // HEADS) for _ in range(LAYERS)]) for _ in tokens]
    for past in range(3):
        logits, hidden = native.run(tokens, keys, values, past)
        assert logits.shape == (9, V) and hidden.shape == (9, D)
        for row, (k, v) in enumerate(alone):
            row_logits, row_hidden = native.run(int(tokens[row]), k, v, past)
            assert torch.equal(logits[row], row_logits) and torch.equal(hidden[row], row_hidden)
            assert all(torch.equal(a[row], b[0]) for a, b in zip(keys + values, k + v))
    with pytest.raises(ValueError, match="native GPT step"):  # rows that the caches do not hold
        native.run(tokens[:4], keys, values, 3)
