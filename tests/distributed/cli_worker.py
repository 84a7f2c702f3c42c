"""Runs ``attnlab`` commands one after another in one process (under torchrun: in one
process group): ``cli_worker.py JOBS.json``, each job ``{"name", "argv", "stop_at"}``.

``stop_at`` k: rank 0 sends itself SIGTERM just before update k + 1 (the test's stand-in
for a user's kill; one process stops after k updates, several after k + 1, as agreed).
Return codes go to ``JOBS.json.<name>.rc`` (rank 0).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from attnlab.cli.main import main
from attnlab.training import distributed
from attnlab.training.trainer import Trainer

STOP_AT: dict[str, int | None] = {"at": None}
_update = Trainer._update


def _stopping_update(self, started):
    if self.step == STOP_AT["at"] and self.world.main:
        os.kill(os.getpid(), signal.SIGTERM)
    return _update(self, started)


Trainer._update = _stopping_update


def run(argv: list[str], stop_at: int | None = None) -> int:
    STOP_AT["at"] = stop_at
    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return int(e.code or 0)
    finally:
        STOP_AT["at"] = None


if __name__ == "__main__":
    spec = Path(sys.argv[1])
    for job in json.loads(spec.read_text()):
        rc = run(job["argv"], job.get("stop_at"))
        if os.environ.get("RANK", "0") == "0":
            Path(f"{spec}.{job['name']}.rc").write_text(str(rc))
    sys.stdout.flush()
    distributed.shutdown()
