"""The Trainer's checkpoints: what it writes, and how ``fit(resume=True)`` reads it back.

A checkpoint folder (``checkpoint.py`` writes it atomically) holds the model, the
optimizer and scheduler state, every rank's RNG states and ``trainer_state.json``::

    {"format_version": 1, "step", "losses", "metrics", "eval_history", "elapsed_s",
     "world_size", "config"}

Resuming restores all of it, so the next update is the one the uninterrupted run would
have made. Under torchrun every rank enters :meth:`~TrainerCheckpoints._save`; rank 0
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
from attnlab.training import distributed, sharded
from attnlab.training.checkpoint import (
    OPTIMIZER_FILE,
    STATE_FILE,
    check_optimizer_state,
    find_checkpoint,
    load_checkpoint,
    prepare_checkpoint,
    save_checkpoint,
)
from attnlab.training.rng import rank_seed, restore_rng, set_seed


class TrainerCheckpoints:
    """Saving and resuming, for :class:`~attnlab.training.trainer.Trainer` (a mixin: it uses
    the Trainer's ``config``, ``world``, ``out_dir``, ``model``, ``optimizer``,
    ``scheduler``, ``sharded``, ``forward_model``, ``save_extra``, the run's bookkeeping
    (``step``, ``losses``, ``metrics``, ``eval_history``, ``elapsed_before``, ``_rng``),
    its stop signals ``_stop`` and ``_resize_schedule``)."""

    def _warn_if_replacing(self) -> None:
        previous = find_checkpoint(self.out_dir)
        if previous is not None and self.config.progress and self.world.main:
            step = read_json(previous / STATE_FILE).get("step")
            print(f"note: {self.out_dir} holds a checkpoint at step {step}; starting afresh replaces it "
                  "at the first save (use --resume / fit(resume=True) to continue it)", file=sys.stderr)

    def _save(self, session_elapsed: float, final: bool = False) -> None:
        """Every rank enters; rank 0 writes the folder, the others wait for its outcome."""
        state = {
            "format_version": 1,
            "step": self.step,
            "losses": self.losses,
            "metrics": self.metrics,
            "eval_history": self.eval_history,
            "elapsed_s": self.elapsed_before + session_elapsed,
            "world_size": self.world.size,
            "threads": torch.get_num_threads(),  # part of what the run computes (see apps.common.apply_threads)
            "config": config_to_dict(self.config),
        }
        with self._stop.deferred():
            rngs = distributed.gather(self._rng, self.world)
            model: nn.Module | None = self.model
            optimizer_state: dict[str, Any] = {"scheduler": self.scheduler.state_dict()}
            if self.sharded:
                model, optimizer_state["sharded"] = self._save_shards(final)
            else:
                optimizer_state["optimizer"] = self.optimizer.state_dict() if self.world.main else None

            def write() -> None:
                try:
                    save_checkpoint(self.out_dir, model, optimizer_state, state, rngs, self.save_extra,
                                    prepared=self.sharded)
                except OSError as e:
                    raise AttnlabError(f"cannot write the checkpoint in {self.out_dir}: {e}") from None

            distributed.agree(write, self.world)

    def _save_shards(self, final: bool) -> tuple[nn.Module | None, dict[str, Any]]:
        """Every rank writes its shards into the new folder; at the end of a run rank 0 gets
        the full model too (written as the usual model folder). Collective."""
        distributed.agree(lambda: prepare_checkpoint(self.out_dir), self.world)
        new = self.out_dir.parent / f".{self.out_dir.name}.new"
        try:
            rest = sharded.save_shards(self.model, self.optimizer, new)
        except Exception as e:  # DCP raises on every rank when one fails
            raise AttnlabError(f"cannot write the sharded checkpoint in {self.out_dir}: {str(e).splitlines()[0]}") from None
        if not final:
            return None, rest
        weights = sharded.full_weights(self.model)
        return (sharded.unsharded_copy(self.model, weights) if self.world.main else None), rest

    def _resume(self) -> None:
        folder = find_checkpoint(self.out_dir)
        if folder is None:
            raise AttnlabError(f"--resume: no complete checkpoint in {self.out_dir} (no readable {STATE_FILE}); "
                               "train without --resume first")
        state, optimizer_state, rngs = load_checkpoint(folder, None if self.sharded else self.model)
        if self.sharded != ("sharded" in optimizer_state):
            saved = "a sharded (--shard)" if "sharded" in optimizer_state else "an unsharded"
            raise AttnlabError(f"resume: {folder} holds {saved} run; resume it the same way "
                               f"(--shard {'on' if 'sharded' in optimizer_state else 'off'}, with several processes)")
        if self.sharded:
            sharded.load_shards(self.model, self.optimizer, folder, optimizer_state["sharded"])
        else:
            check_optimizer_state(optimizer_state["optimizer"], self.optimizer, folder / OPTIMIZER_FILE)
            try:
                self.optimizer.load_state_dict(optimizer_state["optimizer"])
            except (ValueError, KeyError, TypeError) as e:
                raise AttnlabError(f"{folder / OPTIMIZER_FILE}: optimizer state does not fit this optimizer ({e})") from None
        try:
            self.scheduler.load_state_dict(optimizer_state["scheduler"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise AttnlabError(f"{folder / OPTIMIZER_FILE}: scheduler state does not fit ({e})") from None
        recorded_steps = state["config"]["steps"]
        if self.config.refit_up_to is not None and recorded_steps != self.config.steps:
            self._resize_schedule(recorded_steps)  # the length the first session re-fitted
        self.step = state["step"]
        self.losses = list(state["losses"])
        self.metrics = dict(state["metrics"])
        self.eval_history = list(state["eval_history"])
        self.elapsed_before = state["elapsed_s"]
        threads = state.get("threads")
        if threads is not None and threads != torch.get_num_threads() and self.config.progress and self.world.main:
            print(f"note: the run used {threads} CPU thread(s), this session {torch.get_num_threads()}: it continues, "
                  f"but not bit for bit (resume with --threads {threads} for that)", file=sys.stderr)
        if self.world.rank < len(rngs):
            restore_rng(rngs[self.world.rank])
        else:  # a rank the saved run did not have
            set_seed(rank_seed(self.config.seed, self.world.rank, self.step))
