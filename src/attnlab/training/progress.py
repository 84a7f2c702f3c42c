"""A one-line progress bar on stderr, and plain log lines where stderr is not a terminal.

On a terminal the line is redrawn in place (at most ~10 times a second)::

    step 120/1000 [###.......................]  12% loss 2.3456 | 5.1k tok/s | 0:00:12<0:01:45

In a CI log (stderr not a TTY) the same fields are printed as a new line every
``log_every`` steps and at the last step. ``message`` prints a whole line (evaluation
results, notices) without garbling the bar. The loss shown is an exponential moving
average (factor 0.9, bias-corrected like Adam's moments); rates and the ETA are
averages over this session.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24
REDRAW_S = 0.1


def format_duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_rate(per_second: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.1f}{unit}"
    return f"{per_second:.0f}"


def format_bar(fraction: float) -> str:
    """``[######..................]  25%``: ``BAR_WIDTH`` cells, ``fraction`` in [0, 1] filled."""
    filled = int(BAR_WIDTH * min(max(fraction, 0.0), 1.0))
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * fraction:3.0f}%"


class Tee:
    """A text stream writing to several (a terminal and a log file); a TTY if the first is."""

    def __init__(self, *streams: TextIO):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return hasattr(self.streams[0], "isatty") and self.streams[0].isatty()


class Progress:
    """Progress of steps ``start+1 .. total``; silent when ``enabled`` is False."""

    def __init__(
        self, total: int, start: int = 0, *, enabled: bool = True, log_every: int = 10,
        stream: TextIO | None = None, smoothing: float = 0.9,
    ):
        self.total, self.start, self.enabled, self.log_every = total, start, enabled, log_every
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.smoothing = smoothing
        self.began = time.monotonic()
        self.last_draw = -float("inf")
        self.tokens = 0
        self.updates = 0
        self._ema = 0.0
        self._on_line = False  # whether a bar is drawn and not yet ended by a newline

    @property
    def loss(self) -> float:
        """The bias-corrected moving average of the losses seen so far."""
        return self._ema / (1 - self.smoothing**self.updates) if self.updates else float("nan")

    def update(self, step: int, loss: float, tokens: int = 0) -> None:
        self.updates += 1
        self._ema = self.smoothing * self._ema + (1 - self.smoothing) * loss
        self.tokens += tokens
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty and (now - self.last_draw >= REDRAW_S or step == self.total):
            self.last_draw = now
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + self.line(step, bar=True)[:width].ljust(width))
            self.stream.flush()
            self._on_line = True
        elif not self.tty and (step % self.log_every == 0 or step == self.total):
            self.stream.write(self.line(step, bar=False) + "\n")
            self.stream.flush()

    def line(self, step: int, *, bar: bool) -> str:
        elapsed = time.monotonic() - self.began
        done = step - self.start
        eta = elapsed / done * (self.total - step) if done else 0.0
        fraction = step / self.total if self.total else 1.0
        parts = [f"step {step}/{self.total}"]
        if bar:
            parts.append(format_bar(fraction))
        parts.append(f"loss {self.loss:.4f}")
        text = " ".join(parts)
        if self.tokens:
            text += f" | {format_rate(self.tokens / max(elapsed, 1e-9))} tok/s"
        return text + f" | {format_duration(elapsed)}<{format_duration(eta)}"

    def message(self, text: str) -> None:
        """Print ``text`` as its own line (also when the bar is disabled)."""
        self._end_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self._on_line:
            self.stream.write("\n")
            self._on_line = False


class Heartbeat:
    """Progress of a phase outside training (generating a corpus, decoding a test split, a
    final evaluation): a context manager that, once the phase has lasted ``after_s``, shows
    it is alive — on a terminal one line redrawn in place, elsewhere a line every ``every_s``.

    A phase that counts its work passes :meth:`update` as its ``on_progress(done, total)``
    callback; the line then shows the count, a bar (terminal only), the rate and the ETA
    ``elapsed / done * (total - done)``::

        generating the synthetic corpus ... 12000/32000 [#########...............]  38% | 1.2k/s | 0:00:10<0:00:17

    and the last line printed shows ``total/total``. A phase with nothing to count shows the
    elapsed time, drawn by a daemon thread (until the first count arrives)::

        final evaluation ... 0:00:20

    A phase shorter than ``after_s`` prints nothing. ``clock`` (seconds) is injectable.
    """

    def __init__(self, label: str, *, total: int | None = None, enabled: bool = True,
                 stream: TextIO | None = None, every_s: float = 10.0, after_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic):
        import threading

        self.label, self.enabled, self.every_s, self.after_s = label, enabled, every_s, after_s
        self.total, self.done, self.clock = total, 0, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._drawn = False
        self._last_draw = -float("inf")
        self._drawn_done = -1  # the count the last line showed

    def __enter__(self) -> Heartbeat:
        self.began = self.clock()
        if self.enabled and self.total is None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._drawn and self.tty:
            self._draw(self.clock(), final=True)

    def update(self, done: int, total: int | None = None) -> None:
        """``on_progress``: ``done`` of ``total`` items finished (``total`` once, or every call)."""
        with self._lock:
            self.done = done
            self.total = total if total is not None else self.total
            if not self.enabled:
                return
            now = self.clock()
            finished = self.total is not None and done >= self.total
            if now - self.began < self.after_s and not self._drawn:
                return
            due = now - self._last_draw >= (REDRAW_S if self.tty else self.every_s)
            if due or not self._drawn or (finished and self._drawn_done != done):
                self._draw(now)

    def line(self, final: bool = False) -> str:
        elapsed = self.clock() - self.began
        text = f"{self.label} ..."
        if self.total is not None:
            text += f" {self.done}/{self.total}"
            if self.tty:
                text += " " + format_bar(self.done / self.total if self.total else 1.0)
            text += f" | {format_rate(self.done / max(elapsed, 1e-9))}/s |"
        if final:
            return f"{text} done in {format_duration(elapsed)}"
        eta = elapsed / self.done * (self.total - self.done) if self.total is not None and self.done else None
        return f"{text} {format_duration(elapsed)}" + (f"<{format_duration(eta)}" if eta is not None else "")

    def _draw(self, now: float, final: bool = False) -> None:
        """Redraw the terminal line (ended by a newline when ``final``), or print a log line."""
        self._last_draw, self._drawn_done = now, self.done
        text = self.line(final)
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + text[:width].ljust(width) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True

    def _beat(self) -> None:
        wait = self.after_s
        while not self._stop.wait(wait):
            with self._lock:
                if self.total is not None:  # counts arrived: update() draws from now on
                    return
                self._draw(self.clock())
            wait = 1.0 if self.tty else self.every_s
