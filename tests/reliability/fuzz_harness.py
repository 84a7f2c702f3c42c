"""Run one CLI call on a corrupt (or valid) input and say what happened.

Outcomes: ``clear`` (non-zero exit, exactly one stderr line ``attnlab: error: ...`` that
names the file), ``ok`` (exit 0), ``traceback`` (an exception escaped ``main``),
``hang`` (over the time limit), ``unclear`` (non-zero exit but not one line naming the
file). A corrupt input must end ``clear``; a valid one ``ok``. Each call runs in-process
under an alarm and an address-space limit, so a hang or a runaway allocation ends the
case instead of the test session.
"""

from __future__ import annotations

import contextlib
import io
import resource
import signal
import traceback
from dataclasses import dataclass

from attnlab.cli.main import main

TIME_LIMIT_S = 120  # generous: the suite shares two loaded cores
HEADROOM_BYTES = 6 << 30  # address space a case may add before an allocation fails


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no ``except Exception`` swallows it."""


@dataclass
class Result:
    outcome: str
    code: int | None
    stderr: str
    detail: str = ""


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def _limits(seconds: int):
    def on_alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + HEADROOM_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def run_cli(argv: list[str], names: str | None, *, valid: bool = False, seconds: int = TIME_LIMIT_S) -> Result:
    """``main(argv)`` in-process; ``names``: what the error line must mention (a file name)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with _limits(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except Hang:
        return Result("hang", None, err.getvalue())
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 -- the point: anything escaping main is a traceback
        return Result("traceback", None, err.getvalue(), traceback.format_exc(limit=-3))
    stderr = err.getvalue()
    if code == 0:
        return Result("ok", 0, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    if len(lines) == 1 and lines[0].startswith("attnlab: error: ") and (names is None or names in lines[0]):
        return Result("clear", code, stderr)
    return Result("unclear", code, stderr)
