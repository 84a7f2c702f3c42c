"""``attnlab ... --nproc N``: torchrun's own launcher in this process, and one line when a rank dies.

The job is what ``python -m torch.distributed.run --standalone --nproc-per-node N -m
attnlab ARGV`` runs (:func:`~attnlab.training.distributed.torchrun_command`): the same
elastic agent, rendezvous, signal forwarding and exit statuses. What differs is the
report when a rank fails. torchrun prints ~80 lines -- the surviving ranks' tracebacks
(gloo's "Connection reset by peer" in the collective they were in), its own log lines and
its ``ChildFailedError`` traceback. Here:

* a rank whose collective failed because another rank died (:func:`lost_peer`) prints
  nothing and exits with :data:`PEER_LOST` (the command's ``main`` asks);
* a user error (exit status 2) is not printed by the ranks: each hands its line to the
  launcher in torchrun's error file (:func:`hand_over_error`), which prints the first
  one -- the same bad ``--data`` is one line, not one per rank;
* the launcher prints one line naming the rank that failed first, how (its signal, or its
  exit status), and the command that resumes the run from its last checkpoint
  (:func:`describe`).

torchrun's log lines (``torch.distributed.elastic``) are kept below CRITICAL. Under
``torchrun`` itself (no ``--nproc``) nothing of this applies but :func:`lost_peer`.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from attnlab.io import read_json
from attnlab.training.checkpoint import STATE_FILE, find_checkpoint
from attnlab.training.distributed import torchrun_command

PEER_LOST = 3  # exit status of a rank that stopped because another rank died
USER_ERROR = 2  # exit status of a command that printed a one-line error
_ONE_LINE_ENV = "ATTNLAB_LAUNCHER"  # set for the ranks this launcher starts
_PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "NCCL communicator was aborted")


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank went away (a closed
    connection: gloo's ``Connection reset/closed by peer``, NCCL's abort) -- not a timeout,
    which is a hang, and not an error of this rank's own."""
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistNetworkError", ())):
        return True
    return isinstance(error, RuntimeError) and any(s in str(error) for s in _PEER_GONE)


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``attnlab ARGV`` on ``nproc`` ranks of this machine; the exit status of the job."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun.parse_args(torchrun_command(nproc, argv)[3:])
    for name in ["torch.distributed.run", "torch.distributed.elastic",
                 *(n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed.elastic"))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ[_ONE_LINE_ENV] = "1"
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        failures = {rank: (f.pid, f.exitcode, f.timestamp, _handed_over(f.error_file_data))
                    for rank, f in e.failures.items()}
        line, status = describe(failures, nproc, argv)
        print(line, file=sys.stderr)
        return status
    except SignalException as e:  # SIGTERM/SIGINT to the launcher: forwarded; the ranks said what they saved
        return 128 + int(e.sigval)
    return 0


def _handed_over(data: object) -> str:
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else ""


def hand_over_error(message: str) -> bool:
    """On a rank started by :func:`launch`: write the one-line ``message`` into torchrun's
    error file for the launcher instead of printing it (True); else False."""
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if os.environ.get(_ONE_LINE_ENV) != "1" or not error_file:
        return False
    with open(error_file, "w", encoding="utf-8") as f:
        json.dump({"message": message, "timestamp": int(time.time())}, f)
    return True


def describe(failures: dict[int, tuple], world: int, argv: list[str]) -> tuple[str, int]:
    """The one line and the job's exit status, from each failed rank's ``(pid, exitcode,
    time[, message])`` (torchrun's exitcode: ``-signum`` after a signal; the message a rank
    handed over with :func:`hand_over_error`, or "").

    The rank that failed first in its own right: one killed by a signal other than the
    SIGTERM the launcher sends to the rest, else one that exited with an error of its own,
    else the earliest.
    """
    import signal

    def order(item):
        rank, (_, code, when, *_) = item
        own = (code < 0 and code != -signal.SIGTERM) or (code > 0 and code != PEER_LOST)
        return (not own, code > 0, when, rank)

    rank, (pid, code, _, *message) = min(failures.items(), key=order)
    if code == USER_ERROR and message and message[0]:
        return f"attnlab: error: {message[0]}", USER_ERROR
    if code - 128 in (signal.SIGINT, signal.SIGTERM):  # a stop every rank agreed on, after saving
        name = signal.Signals(code - 128).name
        return f"attnlab: rank {rank} of {world} was stopped by {name}; every rank saved. {resume_hint(argv)}", code
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    status = USER_ERROR if code == USER_ERROR else 1
    return f"attnlab: error: rank {rank} of {world} (pid {pid}) {how}; the job stopped. {resume_hint(argv)}", status


def resume_hint(argv: list[str]) -> str:
    """Where the run's last checkpoint is and the command that continues it (``--resume``
    added, ``--overwrite`` dropped)."""
    command = [a for a in argv if a != "--overwrite"]
    if "--resume" not in command:
        command.append("--resume")
    program = "attnlab" if Path(sys.argv[0]).name == "attnlab" else f"{Path(sys.executable).name} -m attnlab"
    shown = f"{program} {shlex.join(command)}"
    out = _flag(argv, "--out")
    found = find_checkpoint(out) if out else None
    if out and found is None:
        return f"No checkpoint was saved in {out} yet: run the command again (without --resume)"
    where = f"the last checkpoint (step {read_json(found / STATE_FILE).get('step')}) in {out}" if found else "the run"
    return f"Resume {where} with: {shown}"


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None

