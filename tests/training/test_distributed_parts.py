"""The parts of distributed training that need no process group: the strided shard of a
global batch, the global loss from per-rank terms, threads per rank, per-rank seeds."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.training.distributed import (
    World,
    from_rank0,
    is_padding,
    shard_batch,
    threads_per_rank,
)
from attnlab.training.losses import Terms
from attnlab.training.rng import rank_seed


def test_each_rank_takes_every_worlds_row():
    batch = {"x": torch.arange(10).reshape(5, 2), "y": torch.arange(5), "name": "kept"}
    shards = [shard_batch(batch, World(rank, 2)) for rank in range(2)]
    assert shards[0]["y"].tolist() == [0, 2, 4] and shards[1]["y"].tolist() == [1, 3]
    assert shards[1]["x"].tolist() == [[2, 3], [6, 7]] and shards[1]["x"].is_contiguous()
    assert shards[0]["name"] == "kept"
    assert shard_batch(batch, World()) is batch


def test_a_batch_that_cannot_be_split_is_a_clear_error():
    with pytest.raises(AttnlabError, match="disagree on the number of rows.*replicate = True"):
        shard_batch({"x": torch.zeros(4, 3), "edge_index": torch.zeros(2, 9)}, World(0, 2))


def test_a_batch_with_fewer_rows_than_ranks_pads_with_weightless_copies():
    batch = {"x": torch.arange(3)}
    shards = [shard_batch(batch, World(rank, 5))["x"].tolist() for rank in range(5)]
    assert shards == [[0], [1], [2], [0], [1]]
    assert [is_padding(batch, World(rank, 5)) for rank in range(5)] == [False] * 3 + [True] * 2
    padding = Terms.of(torch.tensor(4.0, requires_grad=True), 1).as_padding()
    assert padding.stats() == [0.0, 0.0] and float(padding.objective([8.0, 2.0], 5).detach()) == 0.0


def test_the_global_loss_is_the_mean_over_all_units():
    """Rank 0: 3 tokens with mean 1.0; rank 1: 1 token with mean 5.0 -> (3 + 5) / 4 = 2,
    not the mean of means (3). Each rank back-propagates its share times the world size."""
    ranks = [Terms.of(torch.tensor(1.0, requires_grad=True), 3), Terms.of(torch.tensor(5.0, requires_grad=True), 1)]
    summed = [sum(float(r.stats()[i]) for r in ranks) for i in range(2)]
    assert ranks[0].global_loss(summed) == 2.0
    assert [float(r.objective(summed, 2).detach()) for r in ranks] == [1.0 * 3 * 2 / 4, 5.0 * 1 * 2 / 4]


def test_terms_of_different_units_each_get_their_own_mean():
    mlm, nsp = torch.tensor(2.0), torch.tensor(0.5)
    terms = Terms.of({"mlm": (mlm, 10), "nsp": (nsp, 4)}, units=999)  # units: only for a scalar loss
    assert terms.global_loss([float(s) for s in terms.stats()]) == 2.5
    assert float(terms.objective(None, 1)) == 2.5  # one process: the plain sum
    with pytest.raises(AttnlabError, match="counts no units"):
        terms.global_loss([0.0, 1.0, 0.0, 4.0])
    with pytest.raises(AttnlabError, match=r"expected \(mean, count\)"):
        Terms.of({"mlm": mlm}, 1)


def test_threads_share_the_machines_cores():
    assert threads_per_rank(16, 2) == 8 and threads_per_rank(16, 3) == 5 and threads_per_rank(2, 4) == 1


def test_rank_seeds():
    assert rank_seed(7, 0) == 7  # one process is the run it always was
    seeds = {rank_seed(7, r) for r in range(1, 5)} | {rank_seed(7, 1, step) for step in range(3)} | {rank_seed(8, 1)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)


def test_from_rank0_without_a_launcher_just_runs(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_rank0(lambda: 42) == 42
