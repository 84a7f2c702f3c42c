"""The one model-agnostic training loop every attnlab model trains with.

One update ``s`` (1-based; the batch source is asked for ``batch(s - 1)``)::

    batch  = data.batch(s - 1)                        deterministic in the step
    loss   = loss_fn(model, batch)                    under bf16 autocast if asked
    loss.backward(); clip_grad_norm_(grad_clip)
    optimizer.step(); scheduler.step()                Ctrl-C is held back here

A checkpoint (see ``checkpoint.py``) is written every ``save_every`` updates, every
``save_interval_s`` of training, at the end, on Ctrl-C or SIGTERM (exit status 130 / 143,
:attr:`TrainResult.exit_code`) and when ``max_time_s`` is spent; the output folder is
checked before the first update. ``fit(resume=True)`` restores model,
optimizer, scheduler, step and every RNG and continues with the same losses the
uninterrupted run would have had, bit for bit on CPU. With ``config.refit_up_to`` a
time-budgeted run re-sizes its schedule from its measured update rate
(``schedule_refit.py``) in its first session and records the length it chose; a resumed
run keeps it. Evaluation runs in eval mode under ``no_grad`` with the RNG states saved
and restored around it, so evaluating (or not) never changes the training losses.
Every time the loop asks (budget, re-fit, periodic saves) comes from ``clock``
(``time.monotonic`` unless a test injects one). Saving and resuming live in
``trainer_checkpoints.py`` (``self.checkpoints``, composed).

Under torchrun (:mod:`attnlab.training.distributed`) the same loop runs on every rank:
``batch(s - 1)`` is the global batch and each rank keeps its rows; the loss is the global
batch's (:mod:`attnlab.training.losses`), gradients are averaged by DDP (or FSDP2 with
``config.shard``); one all-reduce per update also carries the stop signals and rank 0's
clock, so every rank stops, re-fits and saves after the same update. Rank 0 writes the
checkpoint while the others wait; only rank 0 prints.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from attnlab.errors import AttnlabError
from attnlab.training import distributed, threads
from attnlab.training.batches import BatchSource
from attnlab.training.checkpoint import check_out_dir
from attnlab.training.config import TrainConfig, TrainResult, resolve_device
from attnlab.training.interrupts import StopSignals
from attnlab.training.losses import LossTerms, Terms, batch_rows
from attnlab.training.optim import default_optimizer
from attnlab.training.progress import Progress, Tee, format_duration
from attnlab.training.rng import capture_rng, rank_seed, restore_rng, set_seed
from attnlab.training.schedule_refit import ScheduleRefit
from attnlab.training.schedules import make_schedule
from attnlab.training.threads import warm_up_vml
from attnlab.training.time_reserve import TimeReserve
from attnlab.training.trainer_checkpoints import TrainerCheckpoints

LossFn = Callable[[nn.Module, dict], "torch.Tensor | LossTerms"]


def model_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The default loss: ``model(**batch).loss``."""
    loss = getattr(model(**batch), "loss", None)
    if loss is None:
        raise AttnlabError(
            f"{type(model).__name__}(**batch) returned no .loss; put the targets in the batch "
            f"(batch keys: {sorted(batch)}) or pass loss_fn= to the Trainer"
        )
    return loss


def continue_command(world_size: int = 1, argv: list[str] | None = None) -> str:
    """What continues an interrupted run, as its user would type it: the ``attnlab``
    command line that started it with ``--resume`` (and without ``--overwrite``, which would
    start afresh; with ``--nproc N`` under torchrun), else the Python call."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]).name if argv else ""
    if program not in ("attnlab", "__main__.py") or (program == "__main__.py" and Path(argv[0]).parent.name != "attnlab"):
        return "Trainer.fit(resume=True)"
    words, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif arg not in ("--overwrite", "--resume") and not arg.startswith("--nproc="):
            words.append(arg)
    processes = ["--nproc", str(world_size)] if world_size > 1 else []
    return shlex.join(["attnlab", *words, *processes, "--resume"])


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Train ``model`` on ``data`` as ``config`` says; see the module docstring.

    ``loss_fn(model, batch)`` returns a scalar mean over ``loss_units(batch)`` units (default:
    the batch's rows; give the target-token count for a per-token mean) or
    :data:`~attnlab.training.losses.LossTerms`. A ``data`` source whose batch is not a stack
    of rows (a full-batch graph) sets ``replicate = True``: every rank then trains on the
    whole batch. ``clock`` is the time source of budgets, re-fits and periodic saves.
    """

    def __init__(
        self,
        model: nn.Module,
        data: BatchSource,
        config: TrainConfig,
        *,
        loss_fn: LossFn | None = None,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        count_tokens: Callable[[dict], int] | None = None,
        save_extra: Callable[[Path], None] | None = None,
        loss_units: Callable[[dict], float] | None = None,
        reserve: TimeReserve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not callable(getattr(data, "batch", None)):
            raise AttnlabError(f"data: expected a BatchSource with .batch(step), got {type(data).__name__}")
        self.config = config
        self.world = distributed.setup(config.device, threads=threads.decided())
        self.device = distributed.rank_device(resolve_device(config.device), self.world)
        self.model = model.to(self.device)
        self.sharded = config.shard and self.world.distributed
        self.loss_fn = loss_fn or model_loss
        # several ranks: loss_fn(model, batch) runs as the forward of one module that DDP or
        # FSDP wraps, so they see every parameter it uses, whatever methods it calls
        self.forward_model: nn.Module | None = None
        if self.world.distributed:
            self.forward_model = distributed.LossModule(self.model, self.loss_fn)
            if self.sharded:
                if optimizer is not None:
                    raise AttnlabError("shard=True builds the optimizer after sharding the model; do not pass optimizer=")
                distributed.wrap_fsdp(self.forward_model)
            else:
                self.forward_model = distributed.wrap_ddp(self.forward_model, self.device)
        self.data = data
        self.replicate = bool(getattr(data, "replicate", False))
        self.loss_units = loss_units
        self.evaluate = evaluate
        self.optimizer = optimizer if optimizer is not None else default_optimizer(self.model, config)
        self.scheduler = LambdaLR(self.optimizer, make_schedule(config.schedule, config.steps, config.warmup_steps))
        self.count_tokens = count_tokens
        self.save_extra = save_extra
        self.reserve = reserve
        self.evaluation_s = 0.0  # how long the last validation took (the measured reserve counts it)
        self.clock = clock
        self.out_dir = Path(config.out_dir)
        self.step = 0
        self.losses: list[float] = []
        self.metrics: dict[str, float] = {}
        self.eval_history: list[dict[str, float]] = []
        self.elapsed_before = 0.0  # training time of earlier sessions of this run
        self._rng = capture_rng()  # RNG states right after the last completed update
        self._stop = StopSignals(immediate=not self.world.distributed)
        self._log = None  # this rank's log file (config.rank_logs)
        self.checkpoints = TrainerCheckpoints(self)  # saving and resuming (trainer_checkpoints.py)

    @property
    def speaks(self) -> bool:
        """Whether this rank prints progress and messages: rank 0, or every rank into its log."""
        return self.config.progress and (self.world.main or self.config.rank_logs)

    # --- the loop ------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train up to ``config.steps`` updates; see the module docstring."""
        distributed.agree(lambda: check_out_dir(self.out_dir), self.world)
        warm_up_vml()  # before any multi-threaded math: see training/threads.py
        if resume:
            self.checkpoints.resume()
        else:
            self.checkpoints.warn_if_replacing()
            set_seed(rank_seed(self.config.seed, self.world.rank))
        config = self.config
        refit = None
        if config.refit_up_to is not None and config.max_time_s is not None and not resume:
            refit = ScheduleRefit(config.max_time_s, max_steps=config.refit_up_to)
        # one process only: a measured limit would differ between ranks' clocks
        reserve = self.reserve if config.max_time_s is not None and not resume and not self.world.distributed else None
        progress = self._progress()
        # the RNG state right after the last completed update: what a checkpoint holds, even
        # when Ctrl-C cuts an update short after it drew random numbers (dropout masks)
        self._rng = capture_rng()
        interrupted = stopped_by_time = False
        signum = None
        first = self.step
        started = self.clock()
        elapsed = last_save = 0.0
        self.model.train()
        self._stop = StopSignals(immediate=not self.world.distributed)
        with self._stop:
            try:
                while self.step < self.config.steps:
                    tokens, elapsed, signum = self._update(started)
                    progress.update(self.step, self.losses[-1], tokens)
                    if signum is not None:  # some rank got SIGINT/SIGTERM: all stop here
                        interrupted = True
                        break
                    if reserve is not None and reserve.due(elapsed, config.max_time_s):
                        config = self._move_limit(reserve, progress)
                        reserve = None
                        if refit is not None:
                            refit.max_time_s = config.max_time_s
                    fitted = refit.observe(self.step, elapsed, self.config.steps) if refit is not None else None
                    if fitted is not None and fitted != self.config.steps:
                        self.resize_schedule(fitted)
                        progress.total = fitted
                        self._say(progress, f"schedule re-fitted to the measured rate: {fitted} updates in the budget")
                    if self.step >= self.config.steps:
                        break
                    if config.max_time_s is not None and elapsed >= config.max_time_s:
                        stopped_by_time = True
                        break
                    if self._due(config.eval_every):
                        self._run_evaluation(progress)
                    interval = config.save_interval_s is not None and elapsed - last_save >= config.save_interval_s
                    if self._due(config.save_every) or interval:
                        self.checkpoints.save(elapsed)
                        last_save = elapsed
                if self.step > first and not interrupted:
                    self._run_evaluation(progress, final=True)
            except KeyboardInterrupt as e:
                if self.world.distributed:
                    raise  # raised by code on one rank: the others are mid-step, no save can agree
                interrupted, signum = True, getattr(e, "signum", signal.SIGINT)
            finally:
                self._stop.hold()  # a second Ctrl-C cannot cut the final save short
                progress.close()
            elapsed = self.clock() - started
            self.checkpoints.save(elapsed, final=True)
        if self.sharded:
            # the parameters outside the blocks stay gathered, so that what a command does with
            # the model next (its test evaluation, decoding) runs -- on every rank together, as
            # each block still gathers its own shards when called
            self.forward_model.unshard()
        self._report(progress, interrupted, stopped_by_time)
        self._close_log()
        return TrainResult(
            step=self.step, losses=list(self.losses), metrics=dict(self.metrics),
            elapsed_s=self.elapsed_before + elapsed, interrupted=interrupted,
            stopped_by_time=stopped_by_time, eval_history=list(self.eval_history), checkpoint=self.out_dir,
            signal=signum if interrupted else None,
        )

    def _progress(self) -> Progress:
        stream = None
        if self.config.rank_logs:
            folder = self.out_dir / "logs"
            folder.mkdir(parents=True, exist_ok=True)
            self._log = open(folder / f"rank{self.world.rank}.log", "a", encoding="utf-8")  # noqa: SIM115
            stream = Tee(sys.stderr, self._log) if self.world.main else self._log
        return Progress(self.config.steps, self.step, enabled=self.speaks,
                        log_every=self.config.log_every, stream=stream)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _say(self, progress: Progress, text: str) -> None:
        if self.speaks:
            progress.message(text)

    def _move_limit(self, reserve: TimeReserve, progress: Progress) -> TrainConfig:
        """Measure what the evaluation after training needs (eval mode, no gradients, RNG
        states kept), add the last validation's time (the final one repeats it), and move the
        training time limit by that (``time_reserve.py``)."""
        rng = capture_rng()
        self.model.eval()
        with torch.no_grad():
            needed = reserve.measure() + self.evaluation_s
        self.model.train()
        restore_rng(rng)
        limit = reserve.moved(self.config.max_time_s, needed)
        self._say(progress, f"the evaluation after training needs ~{format_duration(needed)}: "
                            f"training may take {format_duration(limit)}")
        self.config = dataclasses.replace(self.config, max_time_s=limit)
        return self.config

    def resize_schedule(self, steps: int) -> None:
        """Give the schedule a new length ``steps`` from the next update on (``config.steps`` too)."""
        self.config = dataclasses.replace(self.config, steps=steps)
        schedule = make_schedule(self.config.schedule, steps, self.config.warmup_steps)
        self.scheduler.lr_lambdas = [schedule] * len(self.optimizer.param_groups)
        for group, base_lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_lr * schedule(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _update(self, started: float) -> tuple[int, float, int | None]:
        """One optimizer update on ``batch(self.step)``.

        Returns the global batch's token count, rank 0's elapsed session time, and the stop
        signal some rank received (always None with one process: there it raises).
        """
        batch = self.data.batch(self.step)
        tokens = self.count_tokens(batch) if self.count_tokens is not None else 0
        padding = not self.replicate and distributed.is_padding(batch, self.world)
        if not self.replicate:
            batch = distributed.shard_batch(batch, self.world)
        units = self.loss_units(batch) if self.loss_units is not None else batch_rows(batch)
        batch = to_device(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_fn(self.model, batch) if self.forward_model is None else self.forward_model(batch)
            terms = Terms.of(loss, units)
            if padding:  # fewer rows than ranks: this one only keeps DDP's collectives in step
                terms = terms.as_padding()
        elapsed, signum = self.clock() - started, None
        if self.world.distributed:
            received = self._stop.received
            flags = [float(received == signal.SIGINT), float(received == signal.SIGTERM),
                     elapsed if self.world.main else 0.0]
            summed = distributed.all_sum(terms.stats() + flags, self.world, self.device)
            value = terms.global_loss(summed)
            sigint, sigterm, elapsed = summed[-3:]
            signum = signal.SIGTERM if sigterm else signal.SIGINT if sigint else None
            objective = terms.objective(summed, self.world.size)
        else:
            objective = terms.objective(None, 1)
            value = objective.item()
        if value != value or abs(value) == float("inf"):
            raise AttnlabError(
                f"loss is {value} at step {self.step + 1}: training diverged "
                f"(lower lr, add warmup_steps or set grad_clip); the last checkpoint in {self.out_dir} is intact"
            )
        objective.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        with self._stop.deferred():  # from here on the update is applied and counted in full
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            self.losses.append(value)
            self._rng = capture_rng()
        return tokens, elapsed, signum

    def _autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _run_evaluation(self, progress: Progress, final: bool = False) -> None:
        """Every rank evaluates the same model (FSDP needs all of them for a forward). Its
        line is shown every ``log_every`` updates and at the end, so that evaluating every
        update (a graph's best-validation weights) does not print one line per update."""
        if self.evaluate is None:
            return
        rng, begun = capture_rng(), self.clock()
        self.model.eval()
        if self.sharded:  # the parameters outside the blocks, gathered for the evaluation's calls
            self.forward_model.unshard()
        try:
            with torch.no_grad(), self._autocast():
                metrics = self.evaluate(self.model)
        finally:
            if self.sharded:
                self.forward_model.reshard()
            self.model.train()
            restore_rng(rng)
        self.evaluation_s = self.clock() - begun
        try:
            self.metrics = {str(k): float(v) for k, v in metrics.items()}
        except (AttributeError, TypeError, ValueError):
            raise AttnlabError(f"evaluate must return {{name: number}}, got {metrics!r}") from None
        self.eval_history.append({"step": self.step, **self.metrics})
        if final or self._due(max(self.config.log_every, self.config.eval_every)):
            shown = " | ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
            self._say(progress, f"eval step {self.step}/{self.config.steps}: {shown}")

    def _report(self, progress: Progress, interrupted: bool, stopped_by_time: bool) -> None:
        where = f"checkpoint at step {self.step} in {self.out_dir}"
        # a command without --resume (compare) is not told to use it
        then = f"; continue with: {continue_command(self.world.size)}" if self.config.resumable else ""
        if interrupted and (self.world.main or self.config.rank_logs):
            # printed even without progress: the user needs to know how to go on
            text = f"interrupted: {where}{then}"
            (progress.stream if self.config.rank_logs else sys.stderr).write(text + "\n")
        elif stopped_by_time:
            self._say(progress, f"time budget of {format_duration(self.config.max_time_s or 0.0)} spent: {where}{then}")
        elif not interrupted:
            self._say(progress, f"done: {where}")
