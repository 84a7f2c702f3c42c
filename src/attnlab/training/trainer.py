"""The one model-agnostic training loop every attnlab model trains with.

One update ``s`` (1-based; the batch source is asked for ``batch(s - 1)``)::

    batch  = data.batch(s - 1)                        deterministic in the step
    loss   = loss_fn(model, batch)                    under bf16 autocast if asked
    loss.backward(); clip_grad_norm_(grad_clip)
    optimizer.step(); scheduler.step()                Ctrl-C is held back here

A checkpoint (see ``checkpoint.py``) is written every ``save_every`` updates, at the
end, on Ctrl-C and when ``max_time_s`` is spent. ``fit(resume=True)`` restores model,
optimizer, scheduler, step and every RNG and continues with the same losses the
uninterrupted run would have had, bit for bit on CPU. With ``config.refit_up_to`` a
time-budgeted run re-sizes its schedule from its measured update rate
(``schedule_refit.py``) in its first session and records the length it chose; a resumed
run keeps it. Evaluation runs in eval mode under ``no_grad`` with the RNG states saved
and restored around it, so evaluating (or not) never changes the training losses.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from attnlab.config import config_to_dict
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training.batches import BatchSource
from attnlab.training.checkpoint import (
    STATE_FILE,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from attnlab.training.config import TrainConfig, TrainResult, resolve_device
from attnlab.training.interrupts import deferred_interrupt
from attnlab.training.optim import default_optimizer
from attnlab.training.progress import Progress, format_duration
from attnlab.training.rng import capture_rng, restore_rng, set_seed
from attnlab.training.schedule_refit import ScheduleRefit
from attnlab.training.schedules import make_schedule

LossFn = Callable[[nn.Module, dict], torch.Tensor]


def model_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The default loss: ``model(**batch).loss``."""
    loss = getattr(model(**batch), "loss", None)
    if loss is None:
        raise AttnlabError(
            f"{type(model).__name__}(**batch) returned no .loss; put the targets in the batch "
            f"(batch keys: {sorted(batch)}) or pass loss_fn= to the Trainer"
        )
    return loss


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Train ``model`` on ``data`` as ``config`` says; see the module docstring."""

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
    ):
        if not callable(getattr(data, "batch", None)):
            raise AttnlabError(f"data: expected a BatchSource with .batch(step), got {type(data).__name__}")
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.data = data
        self.loss_fn = loss_fn or model_loss
        self.evaluate = evaluate
        self.optimizer = optimizer if optimizer is not None else default_optimizer(self.model, config)
        self.scheduler = LambdaLR(self.optimizer, make_schedule(config.schedule, config.steps, config.warmup_steps))
        self.count_tokens = count_tokens
        self.save_extra = save_extra
        self.out_dir = Path(config.out_dir)
        self.step = 0
        self.losses: list[float] = []
        self.metrics: dict[str, float] = {}
        self.eval_history: list[dict[str, float]] = []
        self.elapsed_before = 0.0  # training time of earlier sessions of this run
        self._rng = capture_rng()  # RNG states right after the last completed update

    # --- the loop ------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train up to ``config.steps`` updates; see the module docstring."""
        if resume:
            self._resume()
        else:
            self._warn_if_replacing()
            set_seed(self.config.seed)
        config = self.config
        refit = None
        if config.refit_up_to is not None and config.max_time_s is not None and not resume:
            refit = ScheduleRefit(config.max_time_s, max_steps=config.refit_up_to)
        started = time.monotonic()
        progress = Progress(config.steps, self.step, enabled=config.progress, log_every=config.log_every)
        # the RNG state right after the last completed update: what a checkpoint holds, even
        # when Ctrl-C cuts an update short after it drew random numbers (dropout masks)
        self._rng = capture_rng()
        interrupted = stopped_by_time = False
        first = self.step
        self.model.train()
        try:
            while self.step < self.config.steps:
                if config.max_time_s is not None and time.monotonic() - started >= config.max_time_s:
                    stopped_by_time = True
                    break
                tokens = self._update()
                progress.update(self.step, self.losses[-1], tokens)
                fitted = refit.observe(self.step, time.monotonic() - started) if refit is not None else None
                if fitted is not None and fitted != self.config.steps:
                    self._resize_schedule(fitted)
                    progress.total = fitted
                    progress.message(f"schedule re-fitted to the measured rate: {fitted} updates in the budget")
                if self.step < self.config.steps and self._due(config.eval_every):
                    self._run_evaluation(progress)
                if self.step < self.config.steps and self._due(config.save_every):
                    self._save(time.monotonic() - started)
            if self.step > first:
                self._run_evaluation(progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
        elapsed = time.monotonic() - started
        self._save(elapsed)
        self._report(progress, interrupted, stopped_by_time)
        return TrainResult(
            step=self.step, losses=list(self.losses), metrics=dict(self.metrics),
            elapsed_s=self.elapsed_before + elapsed, interrupted=interrupted,
            stopped_by_time=stopped_by_time, eval_history=list(self.eval_history), checkpoint=self.out_dir,
        )

    def _resize_schedule(self, steps: int) -> None:
        """Give the schedule a new length ``steps`` from the next update on (``config.steps`` too)."""
        self.config = dataclasses.replace(self.config, steps=steps)
        schedule = make_schedule(self.config.schedule, steps, self.config.warmup_steps)
        self.scheduler.lr_lambdas = [schedule] * len(self.optimizer.param_groups)
        for group, base_lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_lr * schedule(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _update(self) -> int:
        """One optimizer update on ``batch(self.step)``; returns the batch's token count."""
        batch = self.data.batch(self.step)
        tokens = self.count_tokens(batch) if self.count_tokens is not None else 0
        batch = to_device(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_fn(self.model, batch)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise AttnlabError(f"loss_fn must return a scalar tensor, got {type(loss).__name__} {getattr(loss, 'shape', '')}")
        value = loss.item()
        if value != value or abs(value) == float("inf"):
            raise AttnlabError(
                f"loss is {value} at step {self.step + 1}: training diverged "
                f"(lower lr, add warmup_steps or set grad_clip); the last checkpoint in {self.out_dir} is intact"
            )
        loss.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        with deferred_interrupt():  # from here on the update is applied and counted in full
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            self.losses.append(value)
            self._rng = capture_rng()
        return tokens

    def _autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _run_evaluation(self, progress: Progress) -> None:
        if self.evaluate is None:
            return
        rng = capture_rng()
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                metrics = self.evaluate(self.model)
        finally:
            self.model.train()
            restore_rng(rng)
        try:
            self.metrics = {str(k): float(v) for k, v in metrics.items()}
        except (AttributeError, TypeError, ValueError):
            raise AttnlabError(f"evaluate must return {{name: number}}, got {metrics!r}") from None
        self.eval_history.append({"step": self.step, **self.metrics})
        if self.config.progress:
            shown = " | ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
            progress.message(f"eval step {self.step}/{self.config.steps}: {shown}")

    def _report(self, progress: Progress, interrupted: bool, stopped_by_time: bool) -> None:
        where = f"checkpoint at step {self.step} in {self.out_dir}"
        if interrupted:  # printed even without progress: the user needs to know how to go on
            print(f"interrupted: {where}; continue with --resume (Trainer.fit(resume=True))", file=sys.stderr)
        elif stopped_by_time and self.config.progress:
            budget = format_duration(self.config.max_time_s or 0.0)
            progress.message(f"time budget of {budget} spent: {where}; continue with --resume")
        elif self.config.progress:
            progress.message(f"done: {where}")

    # --- checkpoints ---------------------------------------------------------------
    def _warn_if_replacing(self) -> None:
        previous = find_checkpoint(self.out_dir)
        if previous is not None and self.config.progress:
            step = read_json(previous / STATE_FILE).get("step")
            print(f"note: {self.out_dir} holds a checkpoint at step {step}; starting afresh replaces it "
                  "at the first save (use --resume / fit(resume=True) to continue it)", file=sys.stderr)

    def _save(self, session_elapsed: float) -> None:
        state = {
            "format_version": 1,
            "step": self.step,
            "losses": self.losses,
            "metrics": self.metrics,
            "eval_history": self.eval_history,
            "elapsed_s": self.elapsed_before + session_elapsed,
            "config": config_to_dict(self.config),
        }
        optimizer_state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        with deferred_interrupt():
            save_checkpoint(self.out_dir, self.model, optimizer_state, state, self._rng, self.save_extra)

    def _resume(self) -> None:
        folder = find_checkpoint(self.out_dir)
        if folder is None:
            raise AttnlabError(f"resume: no complete checkpoint in {self.out_dir} (train without --resume first)")
        state, optimizer_state, rng = load_checkpoint(folder, self.model)
        try:
            self.optimizer.load_state_dict(optimizer_state["optimizer"])
        except ValueError as e:
            raise AttnlabError(f"{folder}: optimizer state does not fit this optimizer ({e})") from None
        self.scheduler.load_state_dict(optimizer_state["scheduler"])
        recorded_steps = state["config"]["steps"]
        if self.config.refit_up_to is not None and recorded_steps != self.config.steps:
            self._resize_schedule(recorded_steps)  # the length the first session re-fitted
        self.step = state["step"]
        self.losses = list(state["losses"])
        self.metrics = dict(state["metrics"])
        self.eval_history = list(state["eval_history"])
        self.elapsed_before = state["elapsed_s"]
        restore_rng(rng)
