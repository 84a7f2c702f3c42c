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
            filled = int(BAR_WIDTH * fraction)
            parts.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * fraction:3.0f}%")
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
    """Progress of a phase with nothing to count (generating a corpus, decoding a test split,
    a final evaluation): a context manager that, once the phase has lasted ``after_s``,
    shows it is alive — on a terminal one line redrawn with the elapsed time, elsewhere a
    line every ``every_s``::

        generating the synthetic corpus ... 0:00:20

    A phase shorter than ``after_s`` prints nothing. The lines come from a daemon thread; the
    phase's own work is untouched.
    """

    def __init__(self, label: str, *, enabled: bool = True, stream: TextIO | None = None,
                 every_s: float = 10.0, after_s: float = 3.0):
        import threading

        self.label, self.enabled, self.every_s, self.after_s = label, enabled, every_s, after_s
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._drawn = False

    def __enter__(self) -> Heartbeat:
        self.began = time.monotonic()
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._drawn and self.tty:
            self.stream.write(f"\r{self.label} ... done in {format_duration(time.monotonic() - self.began)}\n")
            self.stream.flush()

    def _beat(self) -> None:
        wait = self.after_s
        while not self._stop.wait(wait):
            text = f"{self.label} ... {format_duration(time.monotonic() - self.began)}"
            self.stream.write(f"\r{text}" if self.tty else text + "\n")
            self.stream.flush()
            self._drawn = True
            wait = 1.0 if self.tty else self.every_s
