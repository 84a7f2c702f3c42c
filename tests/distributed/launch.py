"""Launching toy jobs under torchrun (gloo on CPU): one process group per launch, many
jobs per group (``worker.py``), so each test module pays the start-up once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
WORKER = HERE / "worker.py"


def torch_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("WORLD_SIZE", None)
    return env


def torchrun_args(nproc: int, *launcher: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *(launcher or ("--standalone",)),
            f"--nproc_per_node={nproc}", "--monitor-interval=0.2"]


def run_jobs(nproc: int, jobs: list[dict], folder: Path, timeout: float = 300) -> dict[str, dict]:
    """Run ``jobs`` in one ``nproc``-rank group; ``{name: result}`` (see worker.py)."""
    for job in jobs:
        job["result"] = str(folder / f"{job['name']}.json")
    spec = folder / f"jobs-{nproc}.json"
    spec.write_text(json.dumps(jobs))
    done = subprocess.run([*torchrun_args(nproc), str(WORKER), str(spec)], env=torch_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {job["name"]: json.loads(Path(job["result"]).read_text()) for job in jobs}


def computed_once(tmp_path_factory, name: str, compute):
    """``compute(folder) -> JSON value``, run once per test session: a module's torchrun
    fixture is shared by the pytest-xdist workers its tests are spread over (``make test``
    runs ``-n 2``), under a file lock, instead of being run by each."""
    import shutil

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder all workers share
    folder, done = base / name, base / f"{name}.json"
    with FileLock(str(base / f"{name}.lock")):
        if not done.is_file():
            if folder.exists():  # a worker that failed before
                shutil.rmtree(folder)
            folder.mkdir()
            done.write_text(json.dumps(compute(folder)))
        return json.loads(done.read_text())
