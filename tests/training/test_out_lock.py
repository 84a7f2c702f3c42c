"""One live run per output folder, tried with two real processes.

A child process trains a toy run that saves after every step (slowly: each batch sleeps),
so that at any moment its ``.run.new`` may be a save in progress. A second job on the same
folder -- a Trainer, or the recovery of an interrupted swap -- is refused naming the
child's PID and touches nothing; once the child is killed (-9) the kernel drops its lock
and the folder can be taken; ``wait=True`` blocks until the owner is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.errors import AttnlabError
from attnlab.training import TrainConfig, Trainer, find_checkpoint, out_lock
from attnlab.training import checkpoint as ckpt

pytestmark = pytest.mark.skipif(out_lock.fcntl is None, reason="no advisory locks on this platform")

OWNER = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import ToyData, toy_model
from attnlab.training import TrainConfig, Trainer

class Slow(ToyData):
    def batch(self, step):
        time.sleep(0.05)
        return super().batch(step)

config = TrainConfig(out_dir={out!r}, steps=100000, save_every=1, schedule="constant", progress=False)
Trainer(toy_model(), Slow(), config).fit()
"""

WAITER = """
from attnlab.training import out_lock
out_lock.claim({out!r}, wait=True)
print("claimed", flush=True)
"""


def _until(condition, process: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the child died before {what}"
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.02)


@pytest.fixture
def owner(tmp_path):
    """A child process training into ``tmp_path/run`` (it owns the folder); killed after."""
    out = tmp_path / "run"
    script = tmp_path / "owner.py"
    script.write_text(OWNER.format(tests=str(Path(__file__).parent), out=str(out)))
    process = subprocess.Popen([sys.executable, str(script)])
    _until(lambda: find_checkpoint(out) is not None and out_lock.owner(out), process, "first checkpoint")
    yield out, process
    process.kill()
    process.wait()


def test_a_second_job_is_refused_naming_the_owner_and_touches_nothing(owner, make_model, make_data):
    out, process = owner
    assert out_lock.owner(out) == process.pid
    config = TrainConfig(out_dir=str(out), steps=3, progress=False)
    with pytest.raises(AttnlabError, match=rf"^--out {out}: in use by a live run \(PID {process.pid}\); .* --wait"):
        Trainer(make_model(), make_data(), config).fit()
    with pytest.raises(AttnlabError, match=rf"in use by a live run \(PID {process.pid}\)"):
        Trainer(make_model(), make_data(), config).fit(resume=True)

    # the recovery of an interrupted swap never runs in a folder a live run owns: catch the
    # owner mid-save (its .run.new exists) and ask for the recovery; its save goes on
    new = out.parent / ".run.new"
    _until(new.exists, process, ".run.new")
    with pytest.raises(AttnlabError, match=rf"PID {process.pid}"):
        ckpt.prepare_checkpoint(out)
    steps = []
    _until(lambda: steps.append(ckpt.read_json(find_checkpoint(out) / ckpt.STATE_FILE)["step"]) or steps[-1] >= steps[0] + 3,
           process, "three more saves")  # the owner keeps saving: nothing of its was removed


def test_a_killed_owner_frees_the_folder_and_a_waiter_starts_then(owner, make_model, make_data, tmp_path):
    out, process = owner
    waiter = subprocess.Popen([sys.executable, "-c", WAITER.format(out=str(out))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    note = waiter.stderr.readline()
    assert note == f"note: --out {out} is in use by a live run (PID {process.pid}); waiting for it to end\n"
    assert waiter.poll() is None  # still waiting
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert waiter.stdout.readline() == "claimed\n"
    waiter.wait(timeout=60)
    assert waiter.returncode == 0
    assert not out_lock.lock_path(out).exists()  # released (and removed) when the waiter exited

    # the folder the killed owner left (maybe mid-save) is recovered by the next run, which
    # owns it until its final save
    trainer = Trainer(make_model(), make_data(), TrainConfig(out_dir=str(out), steps=2, progress=False))
    owned = []
    real_save = trainer.checkpoints.save
    trainer.checkpoints.save = lambda *a, **k: owned.append(out_lock.holds(out)) or real_save(*a, **k)
    result = trainer.fit()
    assert result.step == 2 and find_checkpoint(out) == out
    assert owned and all(owned) and not out_lock.holds(out)  # released with the run's end
    assert sorted(p.name for p in out.parent.iterdir() if p.name != "owner.py") == ["run"]


def test_claims_are_counted_per_process_and_the_last_release_removes_the_lock_file(tmp_path):
    out = tmp_path / "a" / "run"
    out_lock.claim(out)
    out_lock.claim(out)  # a second reference (a command, then its Trainer)
    out_lock.release(out)
    assert out_lock.holds(out)
    assert out_lock.lock_path(out) == tmp_path / "a" / ".run.lock"
    assert out_lock.lock_path(out).read_text() == f"{os.getpid()}\n"
    child = subprocess.run([sys.executable, "-c", f"from attnlab.training import out_lock; out_lock.claim({str(out)!r})"],
                           capture_output=True, text=True)
    assert child.returncode == 1 and f"in use by a live run (PID {os.getpid()})" in child.stderr
    out_lock.release(out)
    assert not out_lock.lock_path(out).exists()
    child = subprocess.run([sys.executable, "-c", f"from attnlab.training import out_lock; out_lock.claim({str(out)!r})"])
    assert child.returncode == 0
