"""EpochShuffler: every item once per epoch, deterministic in (seed, step), any sizes."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.data.shuffle import EpochShuffler
from attnlab.errors import AttnlabError


@pytest.mark.parametrize("num_items, batch_size", [(20, 5), (23, 4), (3, 8), (1, 1)])
def test_each_epoch_is_a_permutation(num_items, batch_size):
    shuffler = EpochShuffler(num_items, batch_size, seed=3)
    epochs = 4
    steps = -(-epochs * num_items // batch_size)  # ceil
    stream = [i for step in range(steps) for i in shuffler.indices(step)]
    assert all(len(shuffler.indices(step)) == batch_size for step in range(steps))
    for e in range(epochs):  # the stream is epoch after epoch, each a permutation
        chunk = stream[e * num_items:(e + 1) * num_items]
        assert sorted(chunk) == list(range(num_items))
        expected = np.random.default_rng([3, e]).permutation(num_items)
        assert chunk == expected.tolist()
    assert shuffler.epoch(steps - 1) == (steps - 1) * batch_size // num_items


def test_deterministic_and_seed_dependent():
    a, b, c = EpochShuffler(100, 10, seed=0), EpochShuffler(100, 10, seed=0), EpochShuffler(100, 10, seed=1)
    assert [a.indices(s) for s in (0, 57, 3)] == [b.indices(s) for s in (0, 57, 3)]  # any order
    assert a.indices(0) != c.indices(0)
    assert a.indices(0) != a.indices(10)  # a fresh permutation in epoch 1


@pytest.mark.parametrize("args", [(0, 4), (10, 0)])
def test_bad_sizes_are_named(args):
    with pytest.raises(AttnlabError, match="num_items|batch_size"):
        EpochShuffler(*args)


def test_negative_step_is_named():
    with pytest.raises(AttnlabError, match="step must be >= 0"):
        EpochShuffler(5, 2).indices(-1)
