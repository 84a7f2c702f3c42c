"""Stopping a run on Ctrl-C or SIGTERM without cutting a step in half.

While :class:`StopSignals` is active (the Trainer's ``fit``), SIGINT and SIGTERM are
handled the same way; the exit status a command should return is ``128 + signal``
(130 after Ctrl-C, 143 after SIGTERM). Two modes:

* ``immediate`` (one process): the signal raises :class:`Interrupted` (a
  ``KeyboardInterrupt``) where the program is, as Ctrl-C does in Python -- except inside
  :meth:`StopSignals.deferred` blocks (the optimizer update, checkpoint writing), where it
  is remembered and raised when the block ends.
* ``agreed`` (several processes): the signal is only remembered (``received``); the
  Trainer asks after every update whether any rank received one, and all ranks stop
  after the same update. An exception in the middle of a step would leave the other
  ranks waiting in a collective.

A signal that is ignored when the run starts (``nohup``, a background job of a
non-interactive shell: SIGINT is ``SIG_IGN``) stays ignored. Handlers can only be set from
the main thread; elsewhere nothing is installed and nothing is deferred.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised on SIGINT or SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def exit_status(signum: int | None) -> int:
    """What a command exits with after ``signum`` stopped it: 128 + signum, 0 for None."""
    return 0 if signum is None else 128 + int(signum)


class StopSignals:
    """Handle SIGINT and SIGTERM for the duration of a ``with`` block; see the module docstring."""

    def __init__(self, *, immediate: bool = True):
        self.immediate = immediate
        self.received: int | None = None  # the first stop signal received
        self._depth = 0  # nesting of deferred() blocks
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                current = signal.getsignal(signum)
                if current is not signal.SIG_IGN:  # an ignored signal stays ignored
                    self._previous[signum] = current
                    signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
        if self.immediate and self._depth == 0:
            raise Interrupted(signum)

    def hold(self) -> None:
        """From now on only remember signals (the run is stopping and saving)."""
        self.immediate = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a signal must not cut short; in ``immediate`` mode it raises after."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self.immediate and self._depth == 0 and self.received is not None:
            raise Interrupted(self.received)


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM) back for the block and raise :class:`Interrupted` after it.

    For code outside a Trainer run (GAT's full-batch loop); ignored signals stay ignored.
    """
    with StopSignals(immediate=True) as stop, stop.deferred():
        yield
