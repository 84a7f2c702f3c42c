"""What a training run is told (``TrainConfig``) and what it reports (``TrainResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from attnlab.errors import AttnlabError
from attnlab.training.schedules import SCHEDULES


@dataclass
class TrainConfig:
    """Everything the Trainer needs besides the model and the data.

    ``schedule`` is one of ``attnlab.training.schedules.SCHEDULES``; ``lr`` is its peak.
    ``eval_every`` / ``save_every`` = 0 mean only at the end (a checkpoint is also written
    on Ctrl-C and when ``max_time_s`` is spent). ``bf16`` runs forward and loss under
    ``torch.autocast(device_type, dtype=torch.bfloat16)``. ``refit_up_to`` (with
    ``max_time_s``): a new run re-sizes ``steps``, and so its schedule, to the updates its
    own measured rate (since the previous re-fit) fits in the budget, at 10%, 25%, 50% and 75% of it (or of the schedule, if its
    updates get there first), at most ``refit_up_to``
    (:mod:`attnlab.training.schedule_refit`); None: no re-fit. ``save_interval_s``: also a
    checkpoint once that much training time has passed since the last one, so a long run
    killed -9 loses at most that much (None: off). ``resumable``: the command that started
    the run continues it with ``--resume``, so the interrupt and time-budget lines print that
    command (:func:`attnlab.training.trainer.continue_command`); False (``attnlab compare``,
    which has no ``--resume``): they name the checkpoint only.

    Several processes (torchrun; :mod:`attnlab.training.distributed`): ``shard`` shards
    the model, its gradients and optimizer state with FSDP2 and writes sharded checkpoints
    (else DDP replicates the model); ``rank_logs`` writes every rank's progress and
    messages to ``out_dir/logs/rank<r>.log`` (else only rank 0 prints).
    """

    out_dir: str = "runs/run"
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 10
    bf16: bool = False
    device: str = "cpu"
    seed: int = 0
    max_time_s: float | None = None
    refit_up_to: int | None = None
    progress: bool = True
    save_interval_s: float | None = 900.0
    shard: bool = False
    rank_logs: bool = False
    resumable: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # a list after a JSON round trip
        _check(self.steps >= 0, "steps", self.steps, "an integer >= 0")
        _check(self.lr > 0, "lr", self.lr, "> 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas", self.betas, "two numbers in [0, 1)",
        )
        _check(self.eps > 0, "eps", self.eps, "> 0")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {sorted(SCHEDULES)}")
        for name in ("warmup_steps", "eval_every", "save_every"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), "an integer >= 0")
        _check(self.log_every >= 1, "log_every", self.log_every, "an integer >= 1")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", self.grad_clip, "None or > 0")
        _check(self.max_time_s is None or self.max_time_s > 0, "max_time_s", self.max_time_s, "None or > 0")
        _check(self.save_interval_s is None or self.save_interval_s > 0, "save_interval_s", self.save_interval_s, "None or > 0")
        _check(self.refit_up_to is None or self.refit_up_to >= 1, "refit_up_to", self.refit_up_to, "None or >= 1")
        resolve_device(self.device)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise AttnlabError(f"TrainConfig.{name} = {value!r}; expected {expected}")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; ``"cuda"`` must be available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AttnlabError(f"--device {name!r}: expected 'cpu', 'cuda' or 'auto'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AttnlabError(f"--device {name!r}: CUDA is not available in this PyTorch build or machine; use 'cpu' or 'auto'")
    if device.type not in ("cpu", "cuda"):
        raise AttnlabError(f"--device {name!r}: expected 'cpu', 'cuda' or 'auto'")
    return device


@dataclass
class TrainResult:
    """What ``Trainer.fit`` returns.

    ``step`` counts all updates made so far (including those before a resume), ``losses``
    has one training loss per update, ``metrics`` is the last evaluation (``{}`` if none),
    ``eval_history`` every evaluation as ``{"step": s, **metrics}``, ``elapsed_s`` the
    training wall time summed over all sessions of the run.
    """

    step: int
    losses: list[float]
    metrics: dict[str, float]
    elapsed_s: float
    interrupted: bool = False
    stopped_by_time: bool = False
    eval_history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM)

    @property
    def exit_code(self) -> int:
        """What a command should exit with: 128 + the signal after one stopped the run (130
        after Ctrl-C, 143 after SIGTERM: the shell convention), else 0."""
        if not self.interrupted:
            return 0
        return 128 + (self.signal or 2)
