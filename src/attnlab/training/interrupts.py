"""Holding Ctrl-C back while a step must not be cut in half.

Inside ``deferred_interrupt()`` a SIGINT is remembered instead of raised; on leaving
the block it is raised as ``KeyboardInterrupt``. The Trainer wraps the optimizer update
(parameters half-updated would be a corrupt model) and checkpoint writing in it.
Signal handlers can only be set from the main thread; elsewhere the block does nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        if received:
            raise KeyboardInterrupt
