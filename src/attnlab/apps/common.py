"""What every application shares: the run settings, the output folder rule, threads.

Every train app's settings dataclass extends :class:`TrainSettings`; the command line
fills it from flags of the same names (``--batch-size`` -> ``batch_size``), a Python user
fills it directly::

    from attnlab.apps import lm
    lm.train(lm.LMSettings(out="runs/lm", steps=500, max_minutes=2))

Rules every app keeps: an existing run in ``out`` is never replaced without
``overwrite=True`` (``resume=True`` continues it), the output folder is checked before any
long work starts, the same ``seed`` gives the same run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from attnlab.errors import AttnlabError
from attnlab.io import CONFIG_FILE, read_json
from attnlab.training import TrainConfig, distributed, out_lock
from attnlab.training.budget import steps_within_budget
from attnlab.training.checkpoint import find_checkpoint, read_trainer_state
from attnlab.training.threads import choose_threads, decide, warm_up_vml

MAX_BATCH_SIZE = 65_536  # a global batch larger than this is a typo on the machines attnlab targets


@dataclass
class TrainSettings:
    """The settings every ``attnlab train TASK`` shares (the CLI flag is the field's name).

    ``steps`` None: the app's default, or as many as fit in ``max_minutes``;
    ``save_every`` None: a checkpoint every ``steps // 10`` updates, at least 100 apart
    (0: only at the end, on Ctrl-C/SIGTERM and when the time budget is spent).
    """

    out: str = "runs/run"
    steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    dropout: float | None = None  # None: the preset's
    device: str = "cpu"
    seed: int = 0
    threads: int | None = None
    max_minutes: float | None = None
    save_every: int | None = None
    bf16: bool = False
    shard: bool = False  # several processes: FSDP2 instead of DDP
    rank_logs: bool = False  # several processes: every rank's log in out/logs/rank<r>.log
    resume: bool = False
    overwrite: bool = False
    wait: bool = False  # --out in use by a live run: wait for it to end instead of refusing
    progress: bool = True

    def __post_init__(self) -> None:
        self.started = time.monotonic()  # the time budget counts from here (not a field: never saved)
        at_least(1, batch_size=self.batch_size, steps=self.steps)
        at_most(MAX_BATCH_SIZE, batch_size=self.batch_size)
        at_least(0, warmup=self.warmup, save_every=self.save_every)
        at_least(0, threads=self.threads)
        if not self.lr > 0:
            raise AttnlabError(f"--lr: expected a number > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise AttnlabError(f"--weight-decay: expected a number >= 0, got {self.weight_decay}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise AttnlabError(f"--dropout: expected a number in [0, 1), got {self.dropout}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise AttnlabError(f"--max-minutes: expected a number > 0, got {self.max_minutes}")
        if self.resume and self.overwrite:
            raise AttnlabError("--resume and --overwrite contradict each other: continue the run or replace it")

    def apply_threads(self) -> int:
        """Set this run's threads (:func:`run_threads`) and return the count."""
        return run_threads(self.threads, self.out, resume=self.resume, budgeted=self.max_minutes is not None)

    @property
    def max_time_s(self) -> float | None:
        return None if self.max_minutes is None else self.max_minutes * 60


def at_least(low: int, **values: int | None) -> None:
    """Each ``name=value`` (None: unset) is an integer >= ``low``; the error names the flag."""
    for name, value in values.items():
        if value is not None and value < low:
            raise AttnlabError(f"--{name.replace('_', '-')}: expected an integer >= {low}, got {value}")


def at_most(high: int, **values: int | None) -> None:
    """Each ``name=value`` (None: unset) is at most ``high``: a size flag is bounded before any
    work starts, so a typo cannot hang the command; the error names the flag and the limit."""
    for name, value in values.items():
        if value is not None and value > high:
            raise AttnlabError(f"--{name.replace('_', '-')}: at most {high:,}, got {value:,}")


def apply_threads(threads: int | None) -> int:
    """Set torch's CPU threads and return the count: ``threads``; 0 for the cores other work
    leaves free now (faster on a busy machine, but a count that depends on the load); None
    for torch's own count (``OMP_NUM_THREADS``, else the physical cores: fixed for the
    machine) — under torchrun this machine's cores shared among its ranks.

    The thread count is part of what a run computes: PyTorch's CPU reductions split their
    sums by thread, so 1 and 2 threads differ in the last bits. attnlab never picks it from
    the load unless asked (``threads=0``), so the same seed gives the same run. This is the
    one place the count is decided (``training.threads.decide``); the Trainer passes it on
    to ``distributed.setup``, so an explicit count wins under torchrun too.
    """
    warm_up_vml()
    if distributed.launched() and not threads:  # a share of the cores, not the load
        threads = distributed.threads_per_rank()
    elif threads == 0:
        threads = choose_threads()
    return decide(threads if threads is not None else torch.get_num_threads())


def run_threads(threads: int | None, out: str | Path, *, resume: bool, budgeted: bool) -> int:
    """The threads of a training run (see :func:`apply_threads`): on ``resume`` without
    ``threads``, the count the run recorded, so it continues bit for bit; with a time budget
    (``budgeted``: ``max_minutes``) and no ``threads``, the cores other work leaves free — such a run
    sizes its schedule to the machine's speed now, so it is not repeatable bit for bit
    anyway, and oversubscribed threads on a busy machine run many times slower."""
    if threads is None and resume:
        threads = recorded_threads(out)
    if threads is None and budgeted:
        threads = 0
    return apply_threads(threads)


def recorded_threads(out: str | Path) -> int | None:
    """The thread count the run in ``out`` recorded (None: none recorded; a multi-seed
    graph run: its first seed's). :func:`read_trainer_state` checks the field."""
    out = Path(out)
    candidates = [out] + sorted(p for p in (out / "seeds").glob("*") if p.is_dir())
    for folder in candidates:
        found = find_checkpoint(folder)
        if found is not None:
            return read_trainer_state(found).get("threads")
    return None


EXPORT_MANIFEST = "export.json"  # what `attnlab export` writes into its folder


def check_ckpt(ckpt: str | Path) -> Path:
    """``--ckpt``: a checkpoint folder, with the message a shell user needs when it is not one
    (a file inside it: give the folder; an ONNX export: add ``--runtime onnx``)."""
    ckpt = Path(ckpt)
    if ckpt.is_file():
        raise AttnlabError(f"--ckpt {ckpt}: is a file; give the folder that holds it ({ckpt.parent})")
    if not ckpt.is_dir():
        raise AttnlabError(f"--ckpt {ckpt}: checkpoint folder not found")
    if (ckpt / EXPORT_MANIFEST).is_file() and not (ckpt / "config.json").is_file():
        raise AttnlabError(f"--ckpt {ckpt}: this is an ONNX export: add --runtime onnx")
    return ckpt


def check_out(out: str | Path, *, resume: bool, overwrite: bool, wait: bool = False,
              kinds: tuple[str, ...] = ()) -> Path:
    """The output folder of a run, checked before any work starts, and owned from then on.

    * The folder is claimed for this process (:mod:`attnlab.training.out_lock`): another
      live run in it is refused naming its PID, or awaited with ``wait=True``.
    * A new run needs a new or empty folder. A folder that holds a run (a checkpoint or a
      model's ``config.json``) is replaced only with ``overwrite=True``, and is then emptied
      first: the new run starts clean, nothing of the old one (a translator's
      ``translator.json`` and tokenizers) is carried into it. A folder holding other files
      only (``notes.txt``) is not a run and attnlab never empties it: refused, with or
      without ``overwrite``.
    * ``resume=True`` needs the folder, holding a model of one of ``kinds`` (the
      ``model_type`` values this command trains) when given.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AttnlabError(f"--out {out}: is a file, expected a folder for the run")
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise AttnlabError(f"--out {out}: {parent} is not writable")
    main = os.environ.get("RANK", "0") == "0"  # under torchrun rank 0 owns and judges alone
    if main:
        out_lock.claim(out, wait=wait)
    if resume:
        if not out.is_dir():
            raise AttnlabError(f"--resume: no run in --out {out}; train without --resume first")
        _check_kind(out, kinds)
        return out
    if main and out.is_dir() and any(out.iterdir()):
        if not _is_run(out):
            names = sorted(p.name for p in out.iterdir())
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise AttnlabError(f"--out {out}: not empty ({shown}) and not an attnlab run; choose a new or empty "
                               "folder (--overwrite replaces a run, never other files)")
        if not overwrite:
            raise AttnlabError(f"--out {out}: already holds a run; pass --resume to continue it or --overwrite to replace it")
        _empty(out)
    return out


def _is_run(folder: Path) -> bool:
    """A checkpoint (or an interrupted save of one) or a model folder, in ``folder`` or one
    level down (compare's variants) or in ``seeds/*`` (graph runs)."""
    inner = [p for p in folder.iterdir() if p.is_dir()] + [p for p in (folder / "seeds").glob("*") if p.is_dir()]
    return any(find_checkpoint(f) is not None or (f / CONFIG_FILE).is_file() for f in [folder, *inner])


def _empty(folder: Path) -> None:
    """Remove what the run in ``folder`` left (and its interrupted saves beside it)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for leftover in (folder.parent / f".{folder.name}.new", folder.parent / f".{folder.name}.old"):
        shutil.rmtree(leftover, ignore_errors=True)


def _check_kind(out: Path, kinds: tuple[str, ...]) -> None:
    config = out / CONFIG_FILE
    if not kinds or not config.is_file():
        return
    found = read_json(config).get("model_type")
    if found not in kinds:
        raise AttnlabError(f"--resume: --out {out} holds a {found!r} model; this command trains "
                           f"{' or '.join(map(repr, kinds))}: resume it with the command that trained it, "
                           "or train this one into another --out")


def train_config(settings: TrainSettings, *, steps: int, eval_every: int = 0, **overrides) -> TrainConfig:
    """The Trainer's config from the shared settings; ``overrides`` set app-specific fields."""
    save_every = settings.save_every if settings.save_every is not None else max(steps // 10, 100)
    fields = dict(
        out_dir=str(settings.out), steps=steps, lr=settings.lr, warmup_steps=min(settings.warmup, steps // 5),
        weight_decay=settings.weight_decay, eval_every=eval_every, save_every=save_every, bf16=settings.bf16,
        device=settings.device, seed=settings.seed, progress=settings.progress, max_time_s=settings.max_time_s,
        shard=settings.shard, rank_logs=settings.rank_logs,
    )
    return TrainConfig(**{**fields, **overrides})


def settings_from(cls, values: dict):
    """``cls(**values)`` keeping only the keys that are fields of ``cls`` (flags -> settings)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names and v is not None})


UNCAPPED = 10**9  # a time budget without --steps: the budget alone sets the schedule's length
EVAL_SHARE = 0.15  # of a time budget, kept for the evaluation after training


def run_config(settings: TrainSettings, model, batches, *, default_steps: int, loss_fn=None,
               evaluations: int = 0, **overrides) -> TrainConfig:
    """:func:`train_config` for ``settings`` under the budget policy (:func:`budgeted`):
    ``--steps``, else ``default_steps``, else (with ``--max-minutes``) what the budget fits;
    ``evaluations`` > 0: that many evaluations over the run."""
    config = train_config(settings, steps=settings.steps or default_steps, **overrides)
    config = budgeted(config, model, batches, loss_fn=loss_fn, fit=settings.steps is None,
                      resume=settings.resume, started=settings.started)
    if evaluations:
        config = dataclasses.replace(config, eval_every=max(config.steps // evaluations, 1))
    return config


def budgeted(config: TrainConfig, model, batches, *, loss_fn=None, fit: bool, resume: bool,
             started: float | None = None) -> TrainConfig:
    """The one time-budget policy of every train app: ``config`` with its step count and
    training time decided from the budget ``T = config.max_time_s``.

    The budget covers the whole command, counted from ``started`` (``time.monotonic()`` when
    the app began: data and model building count) and the final evaluation::

        training time   T_train = (1 - EVAL_SHARE) * T - (now - started)
        fit, new run    steps = floor(0.95 * T_train / t_update)   (budget.steps_within_budget,
                        timed probe updates; no cap, so the budget sizes the schedule up as well
                        as down), re-fitted to the run's recent rate at 10, 25, 50, 75% of T_train
        resumed run     the steps (and re-fit) its checkpoint recorded: the same learning rates
        otherwise       config.steps; the budget only stops the run

    ``fit``: no ``--steps`` was given (``config.steps`` is the app's default).
    """
    previous = find_checkpoint(config.out_dir) if resume and fit else None
    if previous is not None:
        recorded = read_trainer_state(previous)["config"]
        config = dataclasses.replace(config, steps=recorded["steps"], refit_up_to=recorded.get("refit_up_to"))
    if config.max_time_s is None:
        return config
    spent = 0.0 if started is None else time.monotonic() - started
    train_s = (1 - EVAL_SHARE) * config.max_time_s - spent
    if train_s <= 0:
        raise AttnlabError(f"--max-minutes {config.max_time_s / 60:g}: the start-up took {spent:.0f} s, "
                           "no time is left for training; give a larger budget")
    total, config = config.max_time_s, dataclasses.replace(config, max_time_s=train_s)
    if fit and not resume:
        probe = dataclasses.replace(config, steps=UNCAPPED)
        steps = steps_within_budget(model, batches, probe, fraction=0.95, **({} if loss_fn is None else {"loss_fn": loss_fn}))
        config = dataclasses.replace(config, steps=steps, refit_up_to=UNCAPPED)
        if config.progress and distributed.current().main:
            print(f"{steps} updates fit in {train_s / 60:.2g} of the {total / 60:g} minutes here (the rest: start-up and the final evaluation): the schedule's length", file=sys.stderr)
    return config
