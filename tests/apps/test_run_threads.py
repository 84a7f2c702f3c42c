"""A run's thread count is part of what it computes (1 and 2 threads differ in the last
bits), so attnlab never takes it from the machine's load unless asked: the default is
torch's own count, ``--threads auto`` and a ``--max-minutes`` run take the free cores,
and ``--resume`` takes the count the run recorded."""

from __future__ import annotations

import pytest
import torch

from attnlab.apps import common
from attnlab.cli.main import main
from attnlab.io import read_json


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after the test; the load reader fails if consulted,
    unless the test replaces it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def load_never_read(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the thread count was taken from the machine's load")

    monkeypatch.setattr(common, "choose_threads", refuse)


def test_the_default_keeps_torchs_count_whatever_the_load(torch_threads, load_never_read):
    torch.set_num_threads(2)
    assert common.apply_threads(None) == 2
    torch.set_num_threads(1)
    assert common.apply_threads(None) == 1
    assert common.apply_threads(2) == 2 and torch.get_num_threads() == 2


def test_auto_takes_the_free_cores(torch_threads, monkeypatch):
    monkeypatch.setattr(common, "choose_threads", lambda: 2)
    torch.set_num_threads(1)
    assert common.apply_threads(0) == 2


def test_a_budgeted_run_takes_the_free_cores_a_counted_one_does_not(torch_threads, monkeypatch, tmp_path):
    monkeypatch.setattr(common, "choose_threads", lambda: 2)
    torch.set_num_threads(1)
    assert common.run_threads(None, tmp_path / "a", resume=False, budgeted=False) == 1
    assert common.run_threads(None, tmp_path / "a", resume=False, budgeted=True) == 2
    torch.set_num_threads(1)
    assert common.run_threads(1, tmp_path / "a", resume=False, budgeted=True) == 1  # an explicit count wins


def test_threads_flag_parses_counts_and_auto():
    from attnlab.cli.options import threads_flag

    assert threads_flag("3") == 3 and threads_flag("auto") == 0
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(Exception, match="expected an integer >= 1 or 'auto'"):
            threads_flag(bad)


TRAIN = ["train", "lm", "--data", "", "--preset", "tiny", "--context", "16", "--batch-size", "2",
         "--final-eval", "none", "--eval-every", "0"]


def _train(text, out, *extra) -> int:
    args = list(TRAIN)
    args[3] = str(text)
    return main([*args, "--out", str(out), *extra])  # not --quiet: notes are shown


def test_the_run_records_its_threads_and_resume_reuses_them(torch_threads, load_never_read, tmp_path, capsys):
    text = tmp_path / "code.py"
    text.write_text("".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(200)))
    out = tmp_path / "run"
    assert _train(text, out, "--steps", "2", "--threads", "2") == 0
    assert read_json(out / "trainer_state.json")["threads"] == 2
    torch.set_num_threads(1)
    assert _train(text, out, "--steps", "3", "--resume") == 0  # no --threads: the run's 2
    assert torch.get_num_threads() == 2
    assert read_json(out / "trainer_state.json")["threads"] == 2
    assert "note: the run used" not in capsys.readouterr().err
    assert _train(text, out, "--steps", "4", "--resume", "--threads", "1") == 0  # asked: 1, and told
    assert read_json(out / "trainer_state.json")["threads"] == 1
    err = capsys.readouterr().err
    assert "the run used 2 CPU thread(s), this session 1" in err and "--threads 2" in err


def test_a_bad_recorded_count_is_one_clear_line(torch_threads, load_never_read, tmp_path, capsys):
    text = tmp_path / "code.py"
    text.write_text("".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(200)))
    out = tmp_path / "run"
    assert _train(text, out, "--steps", "2", "--threads", "1") == 0
    state = read_json(out / "trainer_state.json")
    state["threads"] = "many"
    (out / "trainer_state.json").write_text(__import__("json").dumps(state))
    assert _train(text, out, "--steps", "3", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("threads: expected an integer >= 1 (the run's CPU threads), got \"many\"")



def test_an_explicit_count_survives_the_process_group_start(torch_threads, monkeypatch, tmp_path):
    """Under torchrun the process group starts in the Trainer; an explicit ``--threads``
    (3) is kept there, not replaced by this machine's share (16 cores / 2 ranks = 8)."""
    from torch import nn

    from attnlab.training import TrainConfig, Trainer, distributed

    started = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: bool(started))
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: started.append(a))
    monkeypatch.setattr(distributed, "current", lambda: distributed.World())  # one rank seen: no DDP

    class Rows:
        def batch(self, step):
            return {"x": torch.randn(2, 3)}

    assert distributed.threads_per_rank() == 8
    assert common.apply_threads(3) == 3
    Trainer(nn.Linear(3, 1), Rows(), TrainConfig(out_dir=str(tmp_path / "run"), steps=1, progress=False))
    assert started and torch.get_num_threads() == 3
    common.apply_threads(None)  # nothing explicit: this machine's share
    Trainer(nn.Linear(3, 1), Rows(), TrainConfig(out_dir=str(tmp_path / "run"), steps=1, progress=False))
    assert torch.get_num_threads() == 8
