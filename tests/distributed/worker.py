"""Runs a list of toy training jobs in one torchrun process group (one start-up for many
checks): ``torchrun ... worker.py JOBS.json``. Each job is ``{"name", "out", "result", ...}``
with :func:`toy.train`'s keyword arguments; the result file gets rank 0's losses and step,
and every rank's error line, if any."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import toy  # noqa: E402

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.training import distributed  # noqa: E402


def failing_save(folder: Path) -> None:
    if distributed.current().main:
        raise OSError(28, "No space left on device")


def main() -> None:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    world = distributed.setup("cpu")
    Path(os.environ.get("PID_DIR", "/nonexistent")).is_dir() and (
        Path(os.environ["PID_DIR"]) / f"rank{world.rank}.pid").write_text(str(os.getpid()))
    for job in jobs:
        name, result_file = job.pop("name"), job.pop("result")
        exit_after = job.pop("exit", False)
        if job.pop("fail_save", False):
            job["save_extra"] = failing_save
        try:
            result = toy.train(**job)
            values = {"losses": result.losses, "step": result.step, "signal": result.signal,
                      "exit_code": result.exit_code, "metrics": result.metrics, "error": None}
        except AttnlabError as e:
            values = {"error": str(e)}
        gathered = distributed.gather(values, distributed.current())
        if world.main:
            toy.write_result(result_file, name=name, world=world.size, ranks=gathered, **gathered[0])
        if exit_after:
            sys.exit(values.get("exit_code", 1))
    distributed.shutdown()  # no rank exits while its peer still talks to it


if __name__ == "__main__":
    main()
