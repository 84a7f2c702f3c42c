"""Fit a run's schedule to a time budget: how many updates fit in ``max_time_s`` here, now.

A learning-rate schedule is defined over ``steps`` updates. A run stopped by its time
budget before ``steps`` ends at a high learning rate and loses the gain of the final
decay; sizing ``steps`` to the budget up front lets the schedule end inside it::

    steps = min(config.steps, floor(fraction * max_time_s / t_update))

where ``t_update`` is the median time of ``probes`` updates (forward, backward, AdamW)
of a copy of the model on the run's first batches, the first one left out (it pays for
warm-up). The run's own model, optimizer and random state are untouched, so a run with
a fitted budget is as reproducible as any other given its ``steps``.

Under torchrun every rank probes its own shard of the batches at once (the load the run
will have) and every rank takes rank 0's answer, so all ranks train the same schedule.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.training import distributed, threads
from attnlab.training.batches import BatchSource
from attnlab.training.config import TrainConfig, resolve_device
from attnlab.training.losses import Terms
from attnlab.training.optim import default_optimizer
from attnlab.training.trainer import LossFn, model_loss, to_device


def steps_within_budget(
    model: nn.Module,
    data: BatchSource,
    config: TrainConfig,
    *,
    loss_fn: LossFn = model_loss,
    probes: int = 6,
    fraction: float = 0.9,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Updates that fit in ``fraction`` of ``config.max_time_s``, at most ``config.steps``
    (``clock``: the time source, injected by tests)."""
    if config.max_time_s is None:
        raise AttnlabError("steps_within_budget: config.max_time_s is not set")
    if probes < 2:
        raise AttnlabError(f"probes must be >= 2 (the first update is not timed), got {probes}")
    world = distributed.setup(config.device, threads=threads.decided())
    device = distributed.rank_device(resolve_device(config.device), world)
    probe = copy.deepcopy(model).to(device).train()
    optimizer = default_optimizer(probe, dataclasses.replace(config, lr=1e-6))
    times = []
    with torch.random.fork_rng(devices=[]):
        for step in range(probes):
            batch = data.batch(step)
            if not getattr(data, "replicate", False):
                batch = distributed.shard_batch(batch, world)
            batch = to_device(batch, device)
            started = clock()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss = Terms.of(loss_fn(probe, batch), 1).objective(None, 1)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(clock() - started)
    per_update = statistics.median(times[1:])
    steps = max(1, min(config.steps, int(fraction * config.max_time_s / per_update)))
    return distributed.broadcast(steps, world)
