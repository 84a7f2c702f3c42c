"""Faults and launchers, each its own torchrun job: SIGTERM to ``attnlab train --nproc 2``
(torchrun's launcher: every rank saves the last completed step once and exits 143), kill -9 of one rank (the job ends
non-zero within a minute, the previous checkpoint is intact and resumes), and the
two-"node" example of docs/distributed.md (two launchers on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import toy
from launch import WORKER, torch_env, torchrun_args

from attnlab.io import read_json
from attnlab.training import find_checkpoint
from attnlab.training.checkpoint import STATE_FILE
from attnlab.training.distributed import torchrun_command

pytestmark = pytest.mark.slow  # torchrun jobs: ~15-30 s each here

LONG = {"steps": 80, "slow": 0.08, "save_every": 3, "rank_logs": True, "progress": True, "log_every": 1}


def start(tmp_path: Path, name: str, job: dict, nproc: int = 2, launcher: tuple[str, ...] = ()) -> tuple:
    job = {"name": name, "out": str(tmp_path / name), "result": str(tmp_path / f"{name}.json"), **job}
    spec = tmp_path / f"{name}-spec.json"
    spec.write_text(json.dumps([job]))
    (tmp_path / "pids").mkdir(exist_ok=True)
    process = subprocess.Popen([*torchrun_args(nproc, *launcher), str(WORKER), str(spec)],
                               env=torch_env(PID_DIR=str(tmp_path / "pids")),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, Path(job["out"]), Path(job["result"])


def wait_for_checkpoint(process, out: Path, step: int, timeout: float = 120) -> dict:
    """Poll (a harness limit only: no assertion depends on how fast training runs)."""
    deadline = time.monotonic() + timeout
    while True:
        found = find_checkpoint(out)
        if found is not None:
            try:
                state = read_json(found / STATE_FILE)
            except Exception:  # mid-swap: try again
                state = {"step": -1}
            if state["step"] >= step:
                return state
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.05)


def test_sigterm_to_the_launcher_saves_once_on_every_rank_and_exits_143(tmp_path):
    """``attnlab train lm --nproc 2`` (which execs torchrun's launcher), then SIGTERM to it:
    torchrun forwards it, the ranks agree on the last update and save it once (each rank's
    exit status, 143, is checked in test_apps.py: torchrun does not report it after a signal)."""
    out = tmp_path / "lm"
    process = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "train", "lm", "--nproc", "2", "--preset", "tiny", "--max-chars", "20000",
         "--batch-size", "4", "--context", "32", "--eval-every", "0", "--final-eval", "none", "--steps", "100000",
         "--save-every", "3", "--rank-logs", "--out", str(out)],
        env=torch_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_checkpoint(process, out, 3)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=90)[0]
    assert process.returncode != 0
    state = read_json(out / STATE_FILE)
    assert state["world_size"] == 2 and state["step"] == len(state["losses"]) >= 3
    for rank in (0, 1):
        log = (out / "logs" / f"rank{rank}.log").read_text()
        assert log.count(f"interrupted: checkpoint at step {state['step']} ") == 1, output[-2000:]


def test_kill_9_of_one_rank_ends_the_job_and_the_last_checkpoint_resumes(tmp_path):
    process, out, _ = start(tmp_path, "killed", LONG)
    wait_for_checkpoint(process, out, 6)
    victim = int((tmp_path / "pids" / "rank1.pid").read_text())
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    process.communicate(timeout=90)
    assert process.returncode != 0 and time.monotonic() - killed_at < 60
    state = read_json(find_checkpoint(out) / STATE_FILE)
    assert state["step"] >= 6 and len(state["losses"]) == state["step"]
    resumed = toy.train(str(out), steps=80, resume=True, save_every=3)
    straight = toy.train(str(tmp_path / "straight"), steps=80)
    assert resumed.losses[: state["step"]] == state["losses"]
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_one_machine(tmp_path):
    """docs/distributed.md: ``torchrun --nnodes 2 --node-rank R --rdzv-endpoint HOST:PORT``
    on each "node", one process each; the same losses as one process."""
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [start(tmp_path / f"node{r}", "two_nodes",
                   {"out": str(tmp_path / "run")}, nproc=1,
                   launcher=("--nnodes=2", f"--node-rank={r}", f"--rdzv-endpoint={endpoint}"))
             for r in (0, 1) if (tmp_path / f"node{r}").mkdir() is None]
    for process, _, _ in nodes:
        output = process.communicate(timeout=180)[0]
        assert process.returncode == 0, output[-3000:]
    result = json.loads(nodes[0][2].read_text())
    assert result["world"] == 2
    one = toy.train(str(tmp_path / "one"))
    assert result["losses"] == pytest.approx(one.losses, rel=1e-5)


def test_the_torchrun_command_line():
    assert torchrun_command(4, ["train", "lm", "--nproc", "4", "--steps", "9", "--nproc=4"]) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
        "-m", "attnlab", "train", "lm", "--steps", "9"]
