"""The progress bar: one redrawn line on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import io
import os
import signal

import pytest

from attnlab.training import Progress
from attnlab.training.interrupts import deferred_interrupt
from attnlab.training.progress import format_duration, format_rate


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_every_log_every_when_not_a_tty():
    stream = io.StringIO()
    progress = Progress(25, enabled=True, log_every=10, stream=stream)
    for step in range(1, 26):
        progress.update(step, loss=float(step), tokens=100)
    progress.message("eval step 25/25: acc 0.5")
    lines = stream.getvalue().splitlines()
    assert [line.split(" loss")[0] for line in lines[:3]] == ["step 10/25", "step 20/25", "step 25/25"]
    assert "\r" not in stream.getvalue() and "tok/s" in lines[0] and "<" in lines[0]
    assert lines[3] == "eval step 25/25: acc 0.5"


def test_one_redrawn_line_on_a_terminal(monkeypatch):
    monkeypatch.setattr("attnlab.training.progress.REDRAW_S", 0.0)
    stream = Terminal()
    progress = Progress(4, enabled=True, stream=stream)
    for step in range(1, 5):
        progress.update(step, loss=1.0)
    progress.message("eval: ok")
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.count("\n") == 2  # the bar ended once, then the message
    assert "step 4/4 [########################] 100%" in text
    assert text.endswith("\neval: ok\n")


def test_disabled_progress_prints_nothing():
    stream = Terminal()
    progress = Progress(3, enabled=False, stream=stream)
    progress.update(1, loss=1.0)
    progress.close()
    assert stream.getvalue() == ""


def test_smoothed_loss_is_bias_corrected_ema():
    progress = Progress(10, enabled=False)
    losses = [4.0, 2.0, 3.0]
    for step, loss in enumerate(losses, 1):
        progress.update(step, loss)
    ema = 0.0
    for loss in losses:
        ema = 0.9 * ema + 0.1 * loss
    assert progress.loss == pytest.approx(ema / (1 - 0.9**3), rel=1e-12)


def test_formatting():
    assert format_duration(3725.9) == "1:02:05"
    assert format_rate(12345) == "12.3k" and format_rate(2.5e6) == "2.5M" and format_rate(12) == "12"


def test_deferred_interrupt_holds_sigint_until_the_block_ends():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("finished the critical section")
    assert done == ["finished the critical section"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _wait_for(predicate, limit_s: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + limit_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_phase_with_nothing_to_count_shows_it_is_alive():
    from attnlab.training.progress import Heartbeat

    log = io.StringIO()  # not a terminal: whole lines
    with Heartbeat("decoding the test split", stream=log, every_s=0.01, after_s=0.0):
        _wait_for(lambda: log.getvalue().count("\n") >= 2)
    lines = log.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith("decoding the test split ... 0:00:") for line in lines)
    term = Terminal()  # a terminal: one line redrawn, ended when the phase is
    with Heartbeat("generating the corpus", stream=term, after_s=0.0):
        _wait_for(lambda: "\r" in term.getvalue())
    assert term.getvalue().startswith("\rgenerating the corpus ... ") and term.getvalue().endswith("\n")
    assert "done in" in term.getvalue()
    quiet = io.StringIO()
    with Heartbeat("short", stream=quiet, after_s=60.0):
        pass
    with Heartbeat("off", stream=quiet, after_s=0.0, enabled=False):
        pass
    assert quiet.getvalue() == ""
