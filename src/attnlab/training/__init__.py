"""attnlab.training: one model-agnostic Trainer, LR schedules and resumable checkpoints.

    from attnlab.training import Trainer, TrainConfig
    result = Trainer(model, data, TrainConfig(steps=500, lr=3e-4)).fit()

The same script under ``torchrun --nproc_per_node=N`` trains over N processes (DDP, or
FSDP2 with ``shard=True``). See docs/training.md and docs/distributed.md.
"""

from attnlab.training.batches import BatchSource
from attnlab.training.checkpoint import find_checkpoint
from attnlab.training.config import TrainConfig, TrainResult, resolve_device
from attnlab.training.distributed import World
from attnlab.training.losses import LossTerms
from attnlab.training.optim import default_optimizer, param_groups
from attnlab.training.progress import Progress
from attnlab.training.rng import set_seed
from attnlab.training.schedules import SCHEDULES, make_schedule
from attnlab.training.trainer import Trainer, model_loss

__all__ = [
    "SCHEDULES",
    "BatchSource",
    "LossTerms",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "World",
    "default_optimizer",
    "find_checkpoint",
    "make_schedule",
    "model_loss",
    "param_groups",
    "resolve_device",
    "set_seed",
]
