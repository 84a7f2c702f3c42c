"""How many CPU threads torch should use for a run (the cores other work leaves free, when
asked), the count this process decided (:func:`decide`, :func:`decided`), and the
one-thread warm-up of PyTorch's vector math library that avoids the one
process-to-process difference found in multi-threaded runs.

The count is decided once per process, by ``attnlab.apps.common.apply_threads``; the
Trainer hands :func:`decided` to ``distributed.setup``, which sets torchrun's share of
the cores only when nothing was decided, so an explicit ``--threads`` survives ``--nproc``.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import torch

PROC_STAT = Path("/proc/stat")
_decided: list[int] = []  # the count this process decided (at most one entry)


def decide(threads: int) -> int:
    """Set torch's CPU threads to ``threads`` and remember it as this process's decision."""
    torch.set_num_threads(threads)
    _decided[:] = [threads]
    return threads


def decided() -> int | None:
    """The count :func:`decide` set in this process (None: nothing decided yet)."""
    return _decided[0] if _decided else None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies summed over all CPUs since boot, from ``/proc/stat`` (Linux)."""
    try:
        fields = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(window_s: float = 0.3) -> float:
    """Cores busy with other processes right now (this one sleeps while it measures).

    Measured from ``/proc/stat`` over ``window_s``; where that is missing, the 1-minute
    load average. The load average lags by about a minute — a run started right after
    another command finished would see the finished work and take one thread for nothing.
    """
    cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is not None:
        time.sleep(window_s)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            return cores * (after[0] - before[0]) / (after[1] - before[1])
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def choose_threads() -> int:
    """The cores left free by other work, at least one: oversubscribed OpenMP threads spin
    against each other and run many times slower than a single one (measured 10-50x on a
    2-core machine at load 12)."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - busy_cores())))


# PyTorch's CPU sqrt, exp, log, tanh, erf, ... call Intel MKL's vector math library (VML)
# from inside its threads; the library sets itself up on its first call. Measured on a
# 2-core Xeon (2026-12-02, docs/training.md "Threads"): in 7 of 78 two-thread training
# processes, the main thread's half of the first AdamW square root came out as
# x * rsqrt(x) with AVX's 12-bit approximate reciprocal square root (bit for bit), not
# VML's accurate kernel — a process-to-process difference no seed can repeat. With one
# first call on the calling thread before any parallel one: 0 of 30 (against 3 of 30
# interleaved without).
VML_OPS = (torch.sqrt, torch.rsqrt, torch.exp, torch.expm1, torch.log, torch.log1p, torch.log2, torch.log10,
           torch.tanh, torch.erf, torch.erfc, torch.erfinv, torch.sin, torch.cos, torch.tan, torch.asin,
           torch.acos, torch.atan, torch.sinh, torch.cosh, torch.lgamma)


@functools.cache
def warm_up_vml() -> None:
    """Make each VML function's first call of this process on this thread alone: the
    tensors are far below PyTorch's parallel grain, so no worker thread takes part."""
    for dtype in (torch.float32, torch.float64):
        x = torch.linspace(0.25, 0.75, 16, dtype=dtype)
        for op in VML_OPS:
            op(x)
