"""Shared helpers for the side-by-side benchmarks: interleaved timing with medians,
peak-memory measurement, and the table every script prints.

Timings of the peer and of attnlab are interleaved (peer, ours, peer, ours, ...) so a
noisy machine slows both alike; the reported ratio is median(peer) / median(ours), so
> 1 means attnlab is faster.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Comparison:
    name: str
    peer_s: float
    ours_s: float

    @property
    def ratio(self) -> float:
        return self.peer_s / self.ours_s


def compare(name: str, peer: Callable[[], object], ours: Callable[[], object], repeats: int = 7, warmup: int = 2,
            clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Median wall time of each function over ``repeats`` interleaved runs (``clock=time.thread_time``:
    the CPU time of this thread, what a one-thread run costs whatever else the host runs)."""
    for _ in range(warmup):
        peer()
        ours()
    peer_times, our_times = [], []
    for _ in range(repeats):
        for fn, times in ((peer, peer_times), (ours, our_times)):
            start = clock()
            fn()
            times.append(clock() - start)
    return Comparison(name, statistics.median(peer_times), statistics.median(our_times))


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_memory_mib(fn: Callable[[], object]) -> float:
    """Peak resident memory while ``fn`` runs, above the resident memory before it (Linux).

    Writing 5 to /proc/self/clear_refs resets the kernel's peak-RSS counter (VmHWM).
    Large tensors are mmap-ed by the allocator and returned on free, so the figure is
    the peak working set of ``fn``.
    """
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    return max(peak - before, 0) / 1024


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine's name where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The 1-minute load average: how busy the host is while a table is measured."""
    return os.getloadavg()[0]


def machine_line() -> str:
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, load average {load_average():.1f}"
    )


def autocast(bf16: bool, device: str = "cpu"):
    """bf16 autocast when asked, else nothing."""
    return torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_step(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], optimizer, bf16: bool = False,
               sync: Callable[[], None] = lambda: None) -> Callable[[], None]:
    """One training update: zero the gradients, ``loss_of()`` (under bf16 autocast when
    asked; the loss itself in fp32), backward, ``optimizer.step()``."""
    device = next(model.parameters()).device.type

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(bf16, device):
            loss = loss_of()
        loss.float().backward()
        optimizer.step()
        sync()

    return step


def print_table(title: str, header: list[str], rows: list[list[object]]) -> str:
    """Print (and return) a Markdown table."""
    def cell(x):
        return f"{x:.4g}" if isinstance(x, float) else str(x)

    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text + "\n")
    return text
