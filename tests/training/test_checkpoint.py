"""Checkpoints survive a kill at any moment: simulated at each stage of the save, and real."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_json
from attnlab.training import TrainConfig, Trainer, find_checkpoint
from attnlab.training import checkpoint as ckpt


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no except clause catches it."""


def test_split_and_join_round_trip():
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 7: {"momentum": None}},
        "param_groups": [{"betas": (0.9, 0.95), "lr": 1e-3, "params": [0, 7], "inf": math.inf}],
        "nested": ((1, "a"), [True, 2.5]),
    }
    tensors = {}
    structure = ckpt.split_tensors(state, tensors)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values()) and len(tensors) == 2
    back = ckpt.join_tensors(structure, tensors)
    assert back["param_groups"] == state["param_groups"] and back["nested"] == state["nested"]
    assert set(back["state"]) == {0, 7} and back["state"][7] == {"momentum": None}
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def kill_on_second_save(monkeypatch, stage):
    """Make the 2nd checkpoint save die at ``stage``; the 1st completes."""
    saves = []
    real_save, real_write_json, real_replace, real_rmtree = (
        ckpt.save_checkpoint, ckpt.write_json, os.replace, ckpt.shutil.rmtree)

    def save(*args, **kwargs):
        saves.append(1)
        return real_save(*args, **kwargs)

    def write_json_(path, obj):  # trainer_state.json is the last file written into .run.new
        if len(saves) == 2 and stage == "writing":
            raise Killed
        real_write_json(path, obj)

    def replace(src, dst):
        if len(saves) == 2 and stage == "between renames" and str(src).endswith(".new"):
            raise Killed
        real_replace(src, dst)

    def rmtree(path, *args, **kwargs):
        if len(saves) == 2 and stage == "cleanup" and str(path).endswith(".old"):
            raise Killed
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr("attnlab.training.trainer_checkpoints.save_checkpoint", save)
    monkeypatch.setattr(ckpt, "write_json", write_json_)
    monkeypatch.setattr(ckpt.os, "replace", replace)
    monkeypatch.setattr(ckpt.shutil, "rmtree", rmtree)


@pytest.mark.parametrize(
    "stage, expected_step, folder",
    [("writing", 4, "run"), ("between renames", 8, ".run.new"), ("cleanup", 8, "run")],
)
def test_kill_during_save_leaves_a_complete_checkpoint(
    stage, expected_step, folder, make_model, make_data, config, monkeypatch
):
    config = dataclasses.replace(config, save_every=4)
    straight = Trainer(make_model(), make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-s")).fit()
    with monkeypatch.context() as patch:
        kill_on_second_save(patch, stage)
        with pytest.raises(Killed):
            Trainer(make_model(), make_data(), config).fit()

    found = find_checkpoint(config.out_dir)
    assert found == Path(config.out_dir).parent / folder
    assert read_json(found / ckpt.STATE_FILE)["step"] == expected_step
    type(make_model()).from_pretrained(found)  # a loadable model folder

    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses
    left = sorted(p.name for p in Path(config.out_dir).parent.iterdir() if not p.name.endswith(".lock"))  # held by this process
    assert left == ["run", "run-s"]


def test_user_files_survive_a_save_and_foreign_folders_are_not_checkpoints(make_model, make_data, config):
    out = Path(config.out_dir)
    out.mkdir(parents=True)
    make_model().save_pretrained(out)  # a model folder, but no training state
    assert find_checkpoint(out) is None
    (out / "plots").mkdir()
    (out / "plots" / "attention.png").write_bytes(b"png")
    write_json(out / "notes.json", {"keep": True})
    Trainer(make_model(), make_data(), dataclasses.replace(config, steps=2)).fit()
    assert (out / "plots" / "attention.png").read_bytes() == b"png"
    assert read_json(out / "notes.json") == {"keep": True}
    assert find_checkpoint(out) == out


@pytest.mark.parametrize("name", [ckpt.OPTIMIZER_FILE, ckpt.RNG_FILE, "model.safetensors"])
def test_a_damaged_checkpoint_file_is_a_clear_error(name, make_model, make_data, config):
    Trainer(make_model(), make_data(), dataclasses.replace(config, steps=2)).fit()
    path = Path(config.out_dir) / name
    path.write_bytes(path.read_bytes()[:40])  # truncated, as by a failing disk
    with pytest.raises(AttnlabError, match="safetensors"):
        Trainer(make_model(), make_data(), config).fit(resume=True)


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import ToyData, toy_model
from attnlab.training import TrainConfig, Trainer
config = TrainConfig(out_dir={out!r}, steps=100000, save_every=1, schedule="constant", progress=False)
Trainer(toy_model(), ToyData(), config).fit()
"""


def _step_on_disk(out: Path) -> int:
    """The step of the latest complete checkpoint, read while the writer keeps renaming
    folders under us (a folder found complete may be renamed before we read it: try again)."""
    try:
        found = find_checkpoint(out)
        return -1 if found is None else read_json(found / ckpt.STATE_FILE)["step"]
    except AttnlabError:
        return -1


def test_sigkill_while_saving_every_step_never_corrupts(make_model, make_data, tmp_path):
    """A real training process that saves after every step, killed -9 mid-run."""
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    process = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 120
    while _step_on_disk(out) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "training process died"
        time.sleep(0.01)
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()

    found = find_checkpoint(out)
    state = read_json(found / ckpt.STATE_FILE)
    assert len(state["losses"]) == state["step"] >= 3
    type(make_model()).from_pretrained(found)
    config = TrainConfig(out_dir=str(out), steps=state["step"] + 2, schedule="constant", progress=False)
    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses[: state["step"]] == state["losses"] and resumed.step == state["step"] + 2


@pytest.mark.parametrize("version", [999, 0, "1", None])
def test_a_trainer_state_of_an_unknown_format_is_refused_naming_both(version, make_model, make_data, config):
    Trainer(make_model(), make_data(), dataclasses.replace(config, steps=2)).fit()
    path = Path(config.out_dir) / ckpt.STATE_FILE
    state = read_json(path)
    assert state["format_version"] == ckpt.STATE_FORMAT == 1
    write_json(path, {**state, "format_version": version})
    shown = {"1": r'"1"', None: "null"}.get(version, version)
    with pytest.raises(AttnlabError, match=rf"trainer_state.json: format_version {shown}; this attnlab reads format 1"):
        Trainer(make_model(), make_data(), config).fit(resume=True)
    del state["format_version"]  # written before the field existed: format 1
    write_json(path, state)
    assert Trainer(make_model(), make_data(), dataclasses.replace(config, steps=2)).fit(resume=True).step == 2
