"""``kill -9`` of one rank of ``attnlab train lm --nproc 2``: one line, not ~80.

The line names the rank that died and how, and the command that resumes the run from its
last checkpoint (which is intact); no traceback of the surviving rank or of torchrun.
:func:`attnlab.training.launcher.describe` picks the rank that failed in its own right.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launch import torch_env

from attnlab.io import read_json
from attnlab.training import find_checkpoint
from attnlab.training.checkpoint import STATE_FILE
from attnlab.training.launcher import PEER_LOST, describe, lost_peer

ARGV = ["train", "lm", "--nproc", "2", "--preset", "tiny", "--max-chars", "20000", "--batch-size", "4", "--context",
        "32", "--eval-every", "0", "--final-eval", "none", "--steps", "100000", "--save-every", "3"]


def _rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the launcher's children (their RANK environment variable)."""
    ranks = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                env = dict(line.split("=", 1) for line in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in line)
            except OSError:
                continue
            if "RANK" in env:
                ranks[int(env["RANK"])] = int(pid)
    return ranks


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks in /proc (Linux)")
def test_kill_9_of_one_rank_is_one_line_naming_it_and_the_resume_command(tmp_path):
    out = tmp_path / "lm"
    argv = [*ARGV, "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "attnlab", *argv], env=torch_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180  # a harness limit: nothing below depends on speed
    while find_checkpoint(out) is None or len(ranks := _rank_pids(process.pid)) < 2:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.05)
    os.kill(ranks[1], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    lines = [line for line in (stdout + stderr).splitlines() if not line.startswith("step ")]  # progress lines
    assert len(lines) == 1, "\n".join(lines[:40])
    state = read_json(find_checkpoint(out) / STATE_FILE)
    resume = shlex.join(["python", "-m", "attnlab", *argv, "--resume"]).replace("python", Path(sys.executable).name, 1)
    assert lines[0] == (f"attnlab: error: rank 1 of 2 (pid {ranks[1]}) was killed by SIGKILL; the job stopped. "
                        f"Resume the last checkpoint (step {state['step']}) in {out} with: {resume}")
    assert len(state["losses"]) == state["step"] >= 3  # intact (test_faults.py resumes such a run)


def test_describe_names_the_rank_that_failed_in_its_own_right(tmp_path):
    """The launcher SIGTERMs the survivors and a survivor may fail first on the lost
    connection (PEER_LOST): neither is the cause."""
    out = tmp_path / "none"
    argv = ["train", "lm", "--out", str(out), "--overwrite"]
    failures = {0: (10, -signal.SIGTERM, 1.0), 1: (11, PEER_LOST, 0.5), 2: (12, -signal.SIGSEGV, 2.0)}
    line, status = describe(failures, 3, argv)
    assert status == 1 and line.startswith("attnlab: error: rank 2 of 3 (pid 12) was killed by SIGSEGV; the job stopped. ")
    assert line.endswith(f"No checkpoint was saved in {out} yet: run the command again (without --resume)")
    line, _ = describe({0: (10, PEER_LOST, 0.1), 1: (11, 1, 0.9)}, 2, argv)
    assert "rank 1 of 2 (pid 11) exited with status 1" in line
    # a user error: every rank hands its line over, the first is printed once
    assert describe({0: (10, 2, 0.1, "--data x: bad"), 1: (11, 2, 0.2, "--data x: bad")}, 2, argv) == (
        "attnlab: error: --data x: bad", 2)
    assert describe({0: (10, -signal.SIGTERM, 0.5, ""), 1: (11, 2, 0.1, "--data y: bad")}, 2, argv) == (
        "attnlab: error: --data y: bad", 2)
    line, status = describe({0: (10, 143, 0.1), 1: (11, 143, 0.2)}, 2, argv)  # SIGTERM to one rank: all stop
    assert status == 143 and line.startswith("attnlab: rank 0 of 2 was stopped by SIGTERM; every rank saved. ")
    assert lost_peer(RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error: Connection reset by peer"))
    assert not lost_peer(RuntimeError("Socket Timeout")) and not lost_peer(ValueError("Connection reset by peer"))


@pytest.mark.slow
def test_a_user_error_under_nproc_is_one_line_not_one_per_rank(tmp_path):
    """Both ranks meet the same bad --data: rank 0 prints it, rank 1 hands it over; and
    torchrun's OMP_NUM_THREADS banner is not printed."""
    env = torch_env()
    env.pop("OMP_NUM_THREADS")
    done = subprocess.run([sys.executable, "-m", "attnlab", "train", "lm", "--nproc", "2", "--data",
                           str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o"), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip().splitlines() == [
        f"attnlab: error: --data {tmp_path / 'missing.txt'}: no such file or folder"]
