"""Training over several processes on PyTorch's own engine: torchrun, c10d, DDP, FSDP2.

attnlab starts no processes and reduces no gradients itself. ``torchrun`` (or
``attnlab train --nproc N``, which runs torchrun's own launcher) starts one process per
rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` joins the process group from them:

    backend   gloo on CPU; on CUDA nccl for CUDA tensors and gloo for CPU ones
              (``cpu:gloo,cuda:nccl``), each rank on ``cuda:LOCAL_RANK``
    timeout   ``ATTNLAB_DIST_TIMEOUT_S`` seconds (default 300) for any one collective:
              a rank that hangs (not one that dies -- torchrun stops the job then, and
              gloo/nccl see the closed connection) ends the job after that long
    threads   on CPU, the count the process decided (``threads``: the Trainer passes
              ``training.threads.decided()``, so an explicit ``--threads`` wins), else the
              machine's cores divided among the ranks on this machine
              (``cores // LOCAL_WORLD_SIZE``, at least 1), in place of torchrun's
              ``OMP_NUM_THREADS=1``

The Trainer shards the data itself (:func:`shard_batch`): every rank builds the same
global batch of the step (``--batch-size`` is the global batch; length grouping stays
global) and keeps rows ``rank, rank + world, ...`` of it. Gradients are averaged by
``DistributedDataParallel`` (:func:`wrap_ddp`) or, with ``shard=True``, the model is
sharded with FSDP2 (:func:`wrap_fsdp`). See docs/distributed.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from attnlab.errors import AttnlabError

DEFAULT_TIMEOUT_S = 300.0
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` (``local_*``: on this machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, and writes the checkpoint folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched() -> bool:
    """Whether torchrun (or another c10d launcher) started this process with world size > 1."""
    return _env_int("WORLD_SIZE", 1) > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise AttnlabError(f"environment variable {name}={value!r}: expected an integer (set by torchrun)") from None


def current() -> World:
    """This process's :class:`World` (size 1 when no process group is running)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(),
                 _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1))


def quiet_other_ranks() -> None:
    """Under torchrun, ranks other than 0 print nothing on stdout (stderr keeps errors)."""
    if launched() and _env_int("RANK", 0) != 0:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the process


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m attnlab ARGV``,
    ``--nproc`` taken out of ``argv``."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "attnlab", *rest]


def threads_per_rank(cores: int | None = None, local_size: int | None = None) -> int:
    """CPU threads for one rank: this machine's cores shared among its ranks, at least 1."""
    cores = cores or os.cpu_count() or 1
    local_size = local_size or _env_int("LOCAL_WORLD_SIZE", 1)
    return max(1, cores // max(1, local_size))


def setup(device: str = "auto", threads: int | None = None, timeout_s: float | None = None) -> World:
    """Join torchrun's process group (once) and set this rank's device and threads
    (``threads``: the count decided for this process; None: this machine's share).

    Without a launcher (``WORLD_SIZE`` unset or 1) nothing happens and the world has size 1.
    """
    if not launched():
        return current()
    if not dist.is_available():
        raise AttnlabError("torchrun started this process, but this torch build has no torch.distributed")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not dist.is_initialized():
        if cuda:
            if not torch.cuda.is_available():
                raise AttnlabError(f"--device {device}: CUDA is not available here; use --device cpu")
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        if timeout_s is None:
            timeout_s = float(os.environ.get("ATTNLAB_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
        if not cuda:
            torch.set_num_threads(threads or threads_per_rank())
    elif threads:
        torch.set_num_threads(threads)
    return current()


def shutdown(wait: bool = True) -> None:
    """Leave the process group, if this process joined one. ``wait``: first a barrier, so no
    rank exits while a peer still talks to it (gloo's threads abort a process whose peer
    went away under them); without it (after an error) only this rank's side is closed."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if wait:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def from_rank0(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 only and its result on every rank; just ``make()`` without
    a launcher. For preparation that differs between processes: HF ``tokenizers`` trainers
    break ties between equally frequent pairs in a per-process hash order, so two ranks
    training "the same" tokenizer get different vocabularies."""
    if not launched():
        return make()
    world = current() if dist.is_initialized() else setup("auto")
    return broadcast(make() if world.main else None, world)


def rank_device(device: torch.device, world: World) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` in a distributed run; CPU stays CPU."""
    if device.type == "cuda" and device.index is None and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


# --- the batch of one rank ---------------------------------------------------------
def batch_size_of(batch: dict[str, Any], world: World) -> int:
    """The number of rows B of a batch-first batch (every tensor must have them)."""
    rows = {k: v.shape[0] for k, v in batch.items() if isinstance(v, Tensor) and v.dim() > 0}
    if len(set(rows.values())) != 1:
        raise AttnlabError(
            f"cannot split the batch over {world.size} ranks: its tensors disagree on the number of rows "
            f"({rows}); a batch source whose batch is not a stack of rows (a full-batch graph) sets "
            "replicate = True"
        )
    return next(iter(rows.values()))


def is_padding(batch: dict[str, Any], world: World) -> bool:
    """Whether this rank has no row of its own in ``batch`` (B < size: the last, short batch
    of an epoch); it then computes on a copy of row ``rank % B`` with zero weight."""
    return world.distributed and world.rank >= batch_size_of(batch, world)


def shard_batch(batch: dict[str, Any], world: World) -> dict[str, Any]:
    """Rows ``rank, rank + size, ...`` of every tensor of the global ``batch``.

    Every tensor of a batch is batch-first with the same number of rows B; other values
    are passed on unchanged. Taking every ``size``-th row (not a contiguous block) gives
    each rank a like share of a length-sorted batch. With B < size, ranks ``B ..`` get row
    ``rank % B`` (see :func:`is_padding`: the Trainer gives it no weight).
    """
    if not world.distributed:
        return batch
    size = batch_size_of(batch, world)
    if size < 1:
        raise AttnlabError(f"batch {sorted(batch)} has no rows; a batch must hold at least one example")
    first = world.rank if world.rank < size else world.rank % size
    step = world.size if world.rank < size else size + 1  # one row for a padding rank
    return {k: v[first::step].contiguous() if isinstance(v, Tensor) and v.dim() > 0 else v for k, v in batch.items()}


# --- collectives the Trainer uses ------------------------------------------------
def all_sum(values: list[Tensor | float], world: World, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` (numbers or 0-d tensors) over all ranks, in fp64 so
    that counts stay exact; one all-reduce."""
    tensor = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    if world.distributed:
        dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast(obj: Any, world: World, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (JSON-like values between our own ranks)."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather(obj: Any, world: World) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 (in rank order); None on the others."""
    if not world.distributed:
        return [obj]
    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(obj, out, dst=0)
    return out


# --- wrapping the model ------------------------------------------------------------
class LossModule(nn.Module):
    """``loss_fn(model, batch)`` as one module's forward: what DDP and FSDP wrap, so that
    a loss calling any method of the model (not only ``forward``) is synchronised."""

    def __init__(self, model: nn.Module, loss_fn: Any):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.loss_fn(self.model, batch)


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` over the default group; rank 0's weights go to all.

    ``static_graph``: the set of parameters that get gradients is the same at every step
    (true of every attnlab model), which lets DDP skip the search for unused ones.
    """
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, static_graph=True)


def wrap_fsdp(model: nn.Module) -> nn.Module:
    """Shard ``model`` with FSDP2: each block (a module inside an ``nn.ModuleList``) and
    then the whole model, in place (parameters become DTensors; build the optimizer after)."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # pragma: no cover - torch < 2.6
        raise AttnlabError(f"shard=True needs torch.distributed.fsdp.fully_shard (torch >= 2.6); this is {torch.__version__}") from None
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            for block in module:
                fully_shard(block)
    fully_shard(model)
    return model


def agree(work: Callable[[], object], world: World) -> None:
    """Run ``work`` on rank 0 and raise its error, as one line, on every rank: the one
    barrier the other ranks wait at (while rank 0 checks a folder or writes a checkpoint)."""
    error = None
    if world.main:
        try:
            work()
        except Exception as e:  # every rank must hear of it, or the others wait forever
            if not world.distributed:
                raise
            error = str(e) if isinstance(e, AttnlabError) else f"{type(e).__name__}: {e}"
    error = broadcast(error, world)
    if error is not None:
        raise AttnlabError(error)
