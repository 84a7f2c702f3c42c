"""The Trainer's checkpoints: what it writes, and how ``fit(resume=True)`` reads it back.

A checkpoint folder (``checkpoint.py`` writes it atomically) holds the model, the
optimizer and scheduler state, every rank's RNG states and ``trainer_state.json``::

    {"format_version": 1, "step", "losses", "metrics", "eval_history", "elapsed_s",
     "world_size", "config"}

Resuming restores all of it, so the next update is the one the uninterrupted run would
have made. The Trainer holds one :class:`TrainerCheckpoints` (``trainer.checkpoints``): composed,
not inherited. Under torchrun every rank enters :meth:`~TrainerCheckpoints.save`; rank 0
writes the folder while the others wait for its outcome (``distributed.agree``); with
FSDP2 (``shard=True``) each rank writes its own shards (``sharded.py``) and rank 0 the
rest.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from attnlab.config import config_to_dict
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training import distributed, out_lock, sharded
from attnlab.training.checkpoint import (
    OPTIMIZER_FILE,
    STATE_FILE,
    STATE_FORMAT,
    check_optimizer_state,
    find_checkpoint,
    load_checkpoint,
    prepare_checkpoint,
    save_checkpoint,
)
from attnlab.training.rng import rank_seed, restore_rng, set_seed


class TrainerCheckpoints:
    """Saving and resuming one :class:`~attnlab.training.trainer.Trainer`'s run.

    It reads the trainer's ``config``, ``world``, ``out_dir``, ``model``, ``optimizer``,
    ``scheduler``, ``sharded``, ``forward_model``, ``save_extra``, its stop signals
    (``_stop``) and the run's RNG states (``_rng``); :meth:`resume` sets the run's
    bookkeeping (``step``, ``losses``, ``metrics``, ``eval_history``, ``elapsed_before``)
    and calls ``resize_schedule`` when the first session re-fitted the schedule.
    """

    def __init__(self, trainer: Any):  # the Trainer (not imported: it imports this module)
        self.trainer = trainer

    def warn_if_replacing(self) -> None:
        t = self.trainer
        previous = find_checkpoint(t.out_dir)
        if previous is not None and t.config.progress and t.world.main:
            step = read_json(previous / STATE_FILE).get("step")
            print(f"note: {t.out_dir} holds a checkpoint at step {step}; starting afresh replaces it "
                  "at the first save (use --resume / fit(resume=True) to continue it)", file=sys.stderr)

    def save(self, session_elapsed: float, final: bool = False) -> None:
        """Every rank enters; rank 0 writes the folder, the others wait for its outcome."""
        t = self.trainer
        state = {
            "format_version": STATE_FORMAT,
            "step": t.step,
            "losses": t.losses,
            "metrics": t.metrics,
            "eval_history": t.eval_history,
            "elapsed_s": t.elapsed_before + session_elapsed,
            "world_size": t.world.size,
            "threads": torch.get_num_threads(),  # part of what the run computes (see apps.common.apply_threads)
            "config": config_to_dict(t.config),
        }
        with t._stop.deferred():
            rngs = distributed.gather(t._rng, t.world)
            model: nn.Module | None = t.model
            optimizer_state: dict[str, Any] = {"scheduler": t.scheduler.state_dict()}
            if t.sharded:
                model, optimizer_state["sharded"] = self._save_shards(final)
            else:
                optimizer_state["optimizer"] = t.optimizer.state_dict() if t.world.main else None

            def write() -> None:
                try:
                    save_checkpoint(t.out_dir, model, optimizer_state, state, rngs, t.save_extra,
                                    prepared=t.sharded)
                except OSError as e:
                    raise AttnlabError(f"cannot write the checkpoint in {t.out_dir}: {e}") from None

            distributed.agree(write, t.world)
        if final and t.world.main:
            out_lock.release(t.out_dir)  # the reference fit's check_out_dir took: the run is over

    def _save_shards(self, final: bool) -> tuple[nn.Module | None, dict[str, Any]]:
        """Every rank writes its shards into the new folder; at the end of a run rank 0 gets
        the full model too (written as the usual model folder). Collective."""
        t = self.trainer
        distributed.agree(lambda: prepare_checkpoint(t.out_dir), t.world)
        new = t.out_dir.parent / f".{t.out_dir.name}.new"
        try:
            rest = sharded.save_shards(t.model, t.optimizer, new)
        except Exception as e:  # DCP raises on every rank when one fails
            raise AttnlabError(f"cannot write the sharded checkpoint in {t.out_dir}: {str(e).splitlines()[0]}") from None
        if not final:
            return None, rest
        weights = sharded.full_weights(t.model)
        return (sharded.unsharded_copy(t.model, weights) if t.world.main else None), rest

    def resume(self) -> None:
        t = self.trainer
        folder = find_checkpoint(t.out_dir)
        if folder is None:
            raise AttnlabError(f"--resume: no complete checkpoint in {t.out_dir} (no readable {STATE_FILE}); "
                               "train without --resume first")
        state, optimizer_state, rngs = load_checkpoint(folder, None if t.sharded else t.model)
        if t.sharded != ("sharded" in optimizer_state):
            saved = "a sharded (--shard)" if "sharded" in optimizer_state else "an unsharded"
            raise AttnlabError(f"resume: {folder} holds {saved} run; resume it the same way "
                               f"(--shard {'on' if 'sharded' in optimizer_state else 'off'}, with several processes)")
        if t.sharded:
            sharded.load_shards(t.model, t.optimizer, folder, optimizer_state["sharded"])
        else:
            check_optimizer_state(optimizer_state["optimizer"], t.optimizer, folder / OPTIMIZER_FILE)
            try:
                t.optimizer.load_state_dict(optimizer_state["optimizer"])
            except (ValueError, KeyError, TypeError) as e:
                raise AttnlabError(f"{folder / OPTIMIZER_FILE}: optimizer state does not fit this optimizer ({e})") from None
        try:
            t.scheduler.load_state_dict(optimizer_state["scheduler"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise AttnlabError(f"{folder / OPTIMIZER_FILE}: scheduler state does not fit ({e})") from None
        recorded_steps = state["config"]["steps"]
        if t.config.refit_up_to is not None and recorded_steps != t.config.steps:
            t.resize_schedule(recorded_steps)  # the length the first session re-fitted
        t.step = state["step"]
        t.losses = list(state["losses"])
        t.metrics = dict(state["metrics"])
        t.eval_history = list(state["eval_history"])
        t.elapsed_before = state["elapsed_s"]
        threads = state.get("threads")
        if threads is not None and threads != torch.get_num_threads() and t.config.progress and t.world.main:
            print(f"note: the run used {threads} CPU thread(s), this session {torch.get_num_threads()}: it continues, "
                  f"but not bit for bit (resume with --threads {threads} for that)", file=sys.stderr)
        if t.world.rank < len(rngs):
            restore_rng(rngs[t.world.rank])
        else:  # a rank the saved run did not have
            set_seed(rank_seed(t.config.seed, t.world.rank, t.step))
