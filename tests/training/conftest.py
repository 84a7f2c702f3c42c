"""A tiny model with dropout (so RNG restore matters) and a step-indexed data source."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from attnlab.data.shuffle import EpochShuffler
from attnlab.models.base import PretrainedModel
from attnlab.training import TrainConfig


@dataclass
class ToyConfig:
    dim: int = 6
    hidden: int = 16
    dropout: float = 0.2
    vocab: int = 11


@dataclass
class ToyOutput:
    prediction: torch.Tensor
    loss: torch.Tensor | None


class ToyRegressor(PretrainedModel):
    """Embedding + LayerNorm + MLP with dropout: every kind of parameter group."""

    config_class = ToyConfig
    model_type = "toy-regressor"

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.dim)
        self.norm = nn.LayerNorm(config.dim)
        self.up = nn.Linear(config.dim, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.down = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor, token: torch.Tensor, y: torch.Tensor | None = None) -> ToyOutput:
        h = self.norm(x + self.embed(token))  # (B, D)
        prediction = self.down(self.drop(torch.relu(self.up(h)))).squeeze(-1)  # (B,)
        loss = None if y is None else nn.functional.mse_loss(prediction.float(), y)
        return ToyOutput(prediction, loss)


class ToyData:
    """Regression items ``y = sum(x) + token / 10``, batched by an EpochShuffler."""

    def __init__(self, num_items: int = 50, batch_size: int = 8, seed: int = 0, interrupt_at: int | None = None):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(num_items, ToyConfig.dim, generator=g)
        self.token = torch.randint(0, ToyConfig.vocab, (num_items,), generator=g)
        self.y = self.x.sum(-1) + self.token / 10
        self.shuffler = EpochShuffler(num_items, batch_size, seed)
        self.interrupt_at = interrupt_at
        self.asked: list[int] = []

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        self.asked.append(step)
        if step == self.interrupt_at:
            raise KeyboardInterrupt
        i = self.shuffler.indices(step)
        return {"x": self.x[i], "token": self.token[i], "y": self.y[i]}


class FakeClock:
    """A clock that moves only when told: budgets and re-fits tested without wall time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TickingData:
    """Each batch "takes" ``seconds`` on ``clock``; records the learning rate in use then."""

    def __init__(self, data, clock: FakeClock, seconds: float, interrupt_at: int | None = None):
        self.data, self.clock, self.seconds, self.interrupt_at = data, clock, seconds, interrupt_at
        self.trainer = None
        self.lrs: list[float] = []

    def batch(self, step: int):
        if step == self.interrupt_at:
            raise KeyboardInterrupt
        self.clock.advance(self.seconds)
        if self.trainer is not None:
            self.lrs.append(self.trainer.optimizer.param_groups[0]["lr"])
        return self.data.batch(step)


def toy_model(seed: int = 0, **overrides) -> ToyRegressor:
    torch.manual_seed(seed)
    return ToyRegressor(ToyConfig(**overrides))


@pytest.fixture
def config(tmp_path) -> TrainConfig:
    """A short, quiet run writing into a fresh folder."""
    return TrainConfig(out_dir=str(tmp_path / "run"), steps=12, lr=3e-3, schedule="cosine",
                       warmup_steps=3, weight_decay=0.1, progress=False)


@pytest.fixture
def make_model():
    return toy_model


@pytest.fixture
def make_data():
    return ToyData


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ticking():
    """``ticking(data, clock, seconds)``: a batch source whose batches take ``seconds``."""
    return TickingData


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and the CPU is shared: restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _sigint_raises_keyboard_interrupt():
    """Some tests send a real SIGINT; make it raise KeyboardInterrupt as in a terminal.

    A process started in the background by a non-interactive shell inherits SIGINT as
    ignored, and Python then leaves it ignored; the tests must not depend on how the
    suite was launched. Python also runs signal handlers at any bytecode boundary,
    inside garbage-collector callbacks too (hypothesis installs one), where a
    KeyboardInterrupt is swallowed; with the collector off during these short tests the
    interrupt always lands in the code under test.
    """
    import gc
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    gc.disable()
    yield
    gc.enable()
    signal.signal(signal.SIGINT, previous)
