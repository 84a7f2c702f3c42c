"""How many CPU threads torch should use for a run."""

from __future__ import annotations

import os


def choose_threads() -> int:
    """All cores, but one when the machine is already busy: oversubscribed OpenMP
    threads spin against each other and run many times slower than a single one
    (measured 10-50x on a 2-core machine at load 12)."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return 1 if load > cores - 0.5 else cores
