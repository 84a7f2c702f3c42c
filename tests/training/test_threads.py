"""choose_threads: the cores other work leaves free, read from /proc/stat deltas."""

from __future__ import annotations

import os

import pytest

from attnlab.training import threads


def _stat_line(user: int, idle: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n"


@pytest.mark.parametrize(("busy_fraction", "cores", "expected"), [(0.0, 2, 2), (0.5, 2, 1), (0.9, 2, 1), (0.25, 8, 6), (1.0, 4, 1)])
def test_threads_follow_the_busy_cores(tmp_path, monkeypatch, busy_fraction, cores, expected):
    stat = tmp_path / "stat"
    stat.write_text(_stat_line(1000, 1000))
    monkeypatch.setattr(threads, "PROC_STAT", stat)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    busy = int(1000 * busy_fraction)
    clock = {"user": 1000, "idle": 1000}

    def sleep(_seconds):  # the window: other processes burn `busy` of 1000 jiffies
        clock["user"] += busy
        clock["idle"] += 1000 - busy
        stat.write_text(_stat_line(clock["user"], clock["idle"]))

    monkeypatch.setattr(threads.time, "sleep", sleep)
    assert threads.busy_cores() == pytest.approx(cores * busy_fraction)
    assert threads.choose_threads() == expected


def test_without_proc_stat_the_load_average_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "PROC_STAT", tmp_path / "missing")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 0.0, 0.0))
    assert threads.busy_cores() == 3.2
    assert threads.choose_threads() == 1


def test_the_real_machine_gives_a_sane_answer():
    busy = threads.busy_cores(window_s=0.05)
    assert 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9
    assert 1 <= threads.choose_threads() <= (os.cpu_count() or 1)
