"""The Trainer against a plain PyTorch loop, and resume / Ctrl-C / time budget / eval semantics.

Losses on CPU are compared bit for bit (``==``): the Trainer must do exactly what the
reference loop does, and a resumed run exactly what the uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from attnlab.config import config_from_dict
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training import TrainConfig, Trainer, find_checkpoint, resolve_device, set_seed
from attnlab.training.interrupts import deferred_interrupt
from attnlab.training.optim import no_decay_names
from attnlab.training.trainer_checkpoints import TrainerCheckpoints


def fit(make_model, data, config, **kwargs):
    return Trainer(make_model(), data, config, **kwargs).fit()


def test_matches_plain_pytorch_loop(make_model, make_data, config):
    """Reference: AdamW + LambdaLR(cosine with warm-up, closed form) + clip_grad_norm_."""
    result = fit(make_model, make_data(), config)

    model, data = make_model(), make_data()
    decayed = {"up.weight", "down.weight"}  # embedding, LayerNorm and biases are not decayed
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if n in decayed], "weight_decay": config.weight_decay},
         {"params": [p for n, p in named if n not in decayed], "weight_decay": 0.0}],
        lr=config.lr, betas=config.betas, eps=config.eps,
    )
    W, T = config.warmup_steps, config.steps

    def factor(i):  # update s = i + 1
        s = i + 1
        return s / W if s <= W else 0.5 * (1 + math.cos(math.pi * (s - 1 - W) / (T - W)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    set_seed(config.seed)
    model.train()
    losses = []
    for step in range(T):
        optimizer.zero_grad()
        loss = model(**data.batch(step)).loss
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    assert result.losses == losses
    assert result.step == T and not result.interrupted and not result.stopped_by_time
    assert losses[-1] < losses[0]


def test_resume_is_bit_exact(make_model, make_data, config):
    config = dataclasses.replace(config, schedule="constant", steps=10)
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))

    first = fit(make_model, make_data(), dataclasses.replace(config, steps=5))
    assert first.step == 5
    data = make_data()
    resumed = Trainer(make_model(seed=99), data, config).fit(resume=True)  # other init: weights must load
    assert data.asked == list(range(5, 10))
    assert resumed.losses == straight.losses
    assert resumed.step == 10 and resumed.elapsed_s >= first.elapsed_s


def test_ctrl_c_saves_and_resume_is_bit_exact(make_model, make_data, config, capsys):
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))

    stopped = fit(make_model, make_data(interrupt_at=7), config)
    assert stopped.interrupted and stopped.step == 7 and len(stopped.losses) == 7 and stopped.exit_code == 130
    assert "continue with: Trainer.fit(resume=True)" in capsys.readouterr().err
    assert find_checkpoint(config.out_dir) is not None

    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses


def test_ctrl_c_inside_the_forward_saves_the_rng_of_the_last_update(make_model, make_data, config):
    """Interrupted after dropout drew its mask: the checkpoint must hold the RNG of before."""
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))
    calls = []

    def loss_fn(model, batch):
        loss = model(**batch).loss
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return loss

    assert fit(make_model, make_data(), config, loss_fn=loss_fn).step == 5
    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses


def test_ctrl_c_during_the_optimizer_step_completes_that_step(make_model, make_data, config):
    """SIGINT while parameters are being updated: the update finishes and is counted."""
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))
    trainer = Trainer(make_model(), make_data(), config)
    calls = []

    def sigint_at_third_step(optimizer, args, kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)

    trainer.optimizer.register_step_pre_hook(sigint_at_third_step)
    stopped = trainer.fit()
    assert stopped.interrupted and stopped.step == 3 and stopped.losses == straight.losses[:3]
    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses


class SigintData:
    """Sends a real SIGINT to this process while building the batch of step ``at``."""

    def __init__(self, data, at):
        self.data, self.at = data, at

    def batch(self, step):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the handler raises KeyboardInterrupt here
        return self.data.batch(step)


def test_real_sigint_interrupts_cleanly(make_model, make_data, config):
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))
    stopped = fit(make_model, SigintData(make_data(), at=4), config)
    assert stopped.interrupted and stopped.losses == straight.losses[:4]
    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses


class SignalData:
    """Sends ``signum`` to this process while building the batch of step ``at``."""

    def __init__(self, data, at, signum):
        self.data, self.at, self.signum = data, at, signum

    def batch(self, step):
        if step == self.at:
            os.kill(os.getpid(), self.signum)
            time.sleep(0.5)  # the handler raises here (an ignored signal does not)
        return self.data.batch(step)


def test_sigterm_is_handled_like_ctrl_c(make_model, make_data, config, capsys):
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))
    before = signal.getsignal(signal.SIGTERM)
    stopped = fit(make_model, SignalData(make_data(), 4, signal.SIGTERM), config)
    assert stopped.interrupted and stopped.signal == signal.SIGTERM and stopped.exit_code == 143
    assert stopped.losses == straight.losses[:4] and "continue with: " in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the run's only
    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses


def test_an_ignored_sigint_stays_ignored(make_model, make_data, config):
    """A run started under nohup or in the background of a script (SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    result = fit(make_model, SignalData(make_data(), 4, signal.SIGINT), config)
    assert not result.interrupted and result.step == config.steps and result.exit_code == 0
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    with deferred_interrupt():
        os.kill(os.getpid(), signal.SIGINT)  # still ignored: nothing raised after the block
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_the_output_folder_is_checked_before_training(make_model, make_data, config, tmp_path):
    data = make_data()
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    for out in (taken, taken / "run"):
        with pytest.raises(AttnlabError, match="--out"):
            Trainer(make_model(), data, dataclasses.replace(config, out_dir=str(out))).fit()
    assert data.asked == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_unwritable_parent_is_refused_before_training(make_model, make_data, config, tmp_path, monkeypatch):
    """A parent this user cannot write (simulated: the tests may run as root, who can)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr("attnlab.training.checkpoint.os.access",
                        lambda path, mode: Path(path) != locked and real_access(path, mode))
    data = make_data()
    with pytest.raises(AttnlabError, match="--out .*permission denied"):
        Trainer(make_model(), data, dataclasses.replace(config, out_dir=str(locked / "run" / "deeper"))).fit()
    assert data.asked == [] and list(locked.iterdir()) == []


def test_evaluation_is_isolated_from_training(make_model, make_data, config):
    """Evaluating (with RNG use of its own) must not change the training losses."""
    seen = []

    def evaluate(model):
        assert not model.training and not torch.is_grad_enabled()
        torch.rand(100), random.random()  # draws that would shift dropout masks if leaked
        seen.append(model.training)
        return {"val": float(len(seen))}

    plain = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-plain"))
    evaluated = fit(make_model, make_data(), dataclasses.replace(config, eval_every=4), evaluate=evaluate)
    assert evaluated.losses == plain.losses
    assert [h["step"] for h in evaluated.eval_history] == [4, 8, 12]
    assert evaluated.metrics == {"val": 3.0}


def test_time_budget_stops_cleanly_and_resumes(make_model, make_data, config, clock, ticking):
    """Updates of 1/16 s on an injected clock and a 0.3 s budget: the update that ends past
    it (the 5th, at 5/16 s) is the last."""
    config = dataclasses.replace(config, steps=40)
    straight = fit(make_model, make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-straight"))
    budgeted = dataclasses.replace(config, max_time_s=0.3)
    stopped = Trainer(make_model(), ticking(make_data(), clock, 1 / 16), budgeted, clock=clock).fit()
    assert stopped.stopped_by_time and not stopped.interrupted and stopped.step == 5
    assert stopped.elapsed_s == 5 / 16
    resumed = Trainer(make_model(), make_data(), config).fit(resume=True)
    assert resumed.losses == straight.losses


def test_periodic_saves_by_updates_and_by_training_time(make_model, make_data, config, clock, ticking, monkeypatch):
    saved = []
    monkeypatch.setattr(TrainerCheckpoints, "save", lambda self, elapsed, final=False: saved.append(self.trainer.step))
    fit(make_model, make_data(), dataclasses.replace(config, save_every=5))
    assert saved == [5, 10, 12]  # the last one is the final save
    saved.clear()
    timed = dataclasses.replace(config, save_interval_s=1.0)
    Trainer(make_model(), ticking(make_data(), clock, 0.25), timed, clock=clock).fit()
    assert saved == [4, 8, 12]  # a save once 1 s of training has passed since the last
    assert TrainConfig().save_interval_s == 900.0  # a long run killed -9 loses at most 15 minutes


def test_bf16_autocast_runs_the_forward_in_bfloat16(make_model, make_data, config):
    config = dataclasses.replace(config, steps=1)
    dtypes = {}
    for bf16 in (False, True):
        model = make_model(dropout=0.0)
        model.up.register_forward_hook(lambda m, i, out, bf16=bf16: dtypes.__setitem__(bf16, out.dtype))
        run = Trainer(model, make_data(), dataclasses.replace(config, bf16=bf16, out_dir=f"{config.out_dir}{bf16}")).fit()
        dtypes[f"loss{bf16}"] = run.losses[0]
    assert dtypes[False] == torch.float32 and dtypes[True] == torch.bfloat16
    assert dtypes["lossTrue"] == pytest.approx(dtypes["lossFalse"], rel=2e-2)  # bf16 tolerance


def test_default_weight_decay_groups(make_model):
    model = make_model()
    assert no_decay_names(model) == {"embed.weight", "norm.weight", "norm.bias", "up.bias", "down.bias"}
    model.no_weight_decay = lambda: {"up.weight"}  # the timm hook
    assert "up.weight" in no_decay_names(model)


def test_checkpoint_is_a_model_folder(make_model, make_data, config):
    trainer = Trainer(make_model(), make_data(), dataclasses.replace(config, save_every=5),
                      save_extra=lambda folder: (folder / "vocab.txt").write_text("a b\n"))
    trainer.fit()
    loaded = type(trainer.model).from_pretrained(config.out_dir)
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    files = sorted(p.name for p in trainer.out_dir.iterdir())
    assert files == ["config.json", "model.safetensors", "optimizer.safetensors",
                     "rng_state.safetensors", "trainer_state.json", "vocab.txt"]
    state = read_json(trainer.out_dir / "trainer_state.json")
    assert config_from_dict(TrainConfig, state["config"]) == trainer.config  # betas back to a tuple
    assert state["step"] == len(state["losses"]) == trainer.config.steps


def test_resume_never_unpickles(make_model, make_data, config, monkeypatch):
    fit(make_model, make_data(), dataclasses.replace(config, steps=4))

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle-based loading used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr("pickle.load", forbidden)
    monkeypatch.setattr("pickle.loads", forbidden)
    assert Trainer(make_model(), make_data(), config).fit(resume=True).step == config.steps


class NoLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 1)

    def forward(self, x, **_):
        return self.lin(x)


def test_clear_errors(make_model, make_data, config):
    with pytest.raises(AttnlabError, match="no complete checkpoint"):
        Trainer(make_model(), make_data(), config).fit(resume=True)
    with pytest.raises(AttnlabError, match="returned no .loss"):
        Trainer(NoLoss(), make_data(), config).fit()
    with pytest.raises(AttnlabError, match="BatchSource"):
        Trainer(make_model(), [1, 2], config)
    fit(make_model, make_data(), dataclasses.replace(config, steps=3))
    with pytest.raises(AttnlabError, match="diverged"):
        fit(make_model, make_data(), config, loss_fn=lambda m, b: m(**b).loss * float("nan"))
    assert find_checkpoint(config.out_dir) is not None  # the last good checkpoint is intact
    with pytest.raises(AttnlabError, match="evaluate must return"):
        fit(make_model, make_data(), config, evaluate=lambda m: {"acc": "high"})


def test_starting_afresh_over_a_checkpoint_says_so(make_model, make_data, config, capsys):
    fit(make_model, make_data(), dataclasses.replace(config, steps=3))
    capsys.readouterr()
    fit(make_model, make_data(), dataclasses.replace(config, steps=2, progress=True))
    err = capsys.readouterr().err
    assert "holds a checkpoint at step 3; starting afresh" in err and "done: checkpoint at step 2" in err


@pytest.mark.parametrize(
    "field, value",
    [("steps", -1), ("lr", 0.0), ("schedule", "step"), ("betas", (0.9, 1.5)), ("grad_clip", 0.0),
     ("log_every", 0), ("device", "tpu"), ("max_time_s", -1.0)],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(AttnlabError, match=f"TrainConfig.{field}|--{field}"):
        TrainConfig(**{field: value})


def test_device_selection():
    has_cuda = torch.cuda.is_available()
    assert resolve_device("auto").type == ("cuda" if has_cuda else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not has_cuda:
        with pytest.raises(AttnlabError, match="CUDA is not available"):
            TrainConfig(device="cuda")


def test_a_plain_module_trains_and_resumes_too(make_data, config):
    """Not a PretrainedModel: weights are its state_dict in model.safetensors."""
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def loss_fn(model, batch):
        return nn.functional.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])

    config = dataclasses.replace(config, schedule="constant")
    straight = Trainer(make(), make_data(), dataclasses.replace(config, out_dir=config.out_dir + "-s"), loss_fn=loss_fn).fit()
    Trainer(make(), make_data(), dataclasses.replace(config, steps=5), loss_fn=loss_fn).fit()
    resumed = Trainer(make(), make_data(), config, loss_fn=loss_fn).fit(resume=True)
    assert resumed.losses == straight.losses


def test_the_interrupt_line_gives_the_shell_command_that_continues():
    from attnlab.training.trainer import continue_command

    run = ["/venv/bin/attnlab", "train", "lm", "--out", "runs/my lm", "--overwrite", "--max-minutes", "5"]
    assert continue_command(1, run) == "attnlab train lm --out 'runs/my lm' --max-minutes 5 --resume"
    module = ["/src/attnlab/__main__.py", "demo", "--resume", "--nproc=4"]
    assert continue_command(2, module) == "attnlab demo --nproc 2 --resume"
    assert continue_command(1, ["/usr/bin/pytest", "-x"]) == "Trainer.fit(resume=True)"


@pytest.mark.parametrize("resumable", [True, False])
def test_a_command_without_resume_is_not_told_to_use_it(make_model, make_data, config, clock, ticking, capsys,
                                                        monkeypatch, resumable):
    """The time-budget line of ``attnlab compare`` (no --resume flag) names the checkpoint
    only; a resumable command's line gives the command that continues it."""
    monkeypatch.setattr("sys.argv", ["/venv/bin/attnlab", "compare", "--max-minutes", "10"])
    budgeted = dataclasses.replace(config, steps=40, max_time_s=0.3, progress=True, resumable=resumable)
    stopped = Trainer(make_model(), ticking(make_data(), clock, 1 / 16), budgeted, clock=clock).fit()
    said = capsys.readouterr()
    line = next(s for s in (said.out + said.err).splitlines() if "time budget of" in s)
    assert stopped.stopped_by_time and f"checkpoint at step 5 in {config.out_dir}" in line
    assert line.endswith("; continue with: attnlab compare --max-minutes 10 --resume") is resumable
    assert ("--resume" in line) is resumable
