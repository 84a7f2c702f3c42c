"""A Vision Transformer image classifier: train, classify, and what its attention sees.

    from attnlab.apps import vit
    trained = vit.train(vit.ViTSettings(out="runs/vit", steps=600))
    vit.classify(vit.load("runs/vit"), ["digit.png"], top_k=3)
    explained = vit.attentions(vit.load("runs/vit"), ["digit.png"])

The embedded default is scikit-learn's 1,797 8x8 digits (80/20 stratified split); your
data is a folder with one sub-folder of images per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from attnlab.apps.common import (
    TrainSettings,
    at_least,
    check_ckpt,
    check_out,
    run_config,
)
from attnlab.attention.maps import Explained
from attnlab.data.images import (
    ImageBatches,
    ImageDataset,
    load_digits,
    load_image_folder,
    read_image,
)
from attnlab.errors import AttnlabError
from attnlab.models.vit import ViT, vit_config
from attnlab.training import Trainer, TrainResult

DEFAULT_STEPS = 2400
INPUT_KIND = "image"  # what a live explorer page takes
EVALUATIONS = 5


@dataclass
class ViTSettings(TrainSettings):
    """``data`` None: the digits; else a folder of class sub-folders, resized to ``image_size``."""

    data: str | None = None
    preset: str = "digits"
    image_size: int | None = None
    channels: int = 3
    patch_size: int | None = None
    affine: bool = True
    shift: int = 0
    label_smoothing: float = 0.1
    test_fraction: float = 0.2
    out: str = "runs/vit"
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels not in (1, 3):
            raise AttnlabError(f"--channels: expected 1 or 3, got {self.channels}")
        if not 0 < self.test_fraction < 1:
            raise AttnlabError(f"--test-fraction: expected a number in (0, 1), got {self.test_fraction}")
        if not 0 <= self.label_smoothing < 1:
            raise AttnlabError(f"--label-smoothing: expected a number in [0, 1), got {self.label_smoothing}")
        at_least(0, shift=self.shift)


@dataclass
class TrainedViT:
    model: ViT
    result: TrainResult
    test_accuracy: float
    summary: str


def load_data(settings: ViTSettings) -> tuple[ImageDataset, object]:
    """``(dataset, model config)`` for the default digits or the user's image folder."""
    overrides = {k: v for k, v in (("image_size", settings.image_size), ("patch_size", settings.patch_size)) if v is not None}
    if settings.dropout is not None:
        overrides["dropout"] = settings.dropout
    if settings.data is None:
        if "image_size" in overrides or "patch_size" in overrides:
            raise AttnlabError("--image-size/--patch-size apply to --data folders; the digits are 8x8")
        data = load_digits()
        return data, vit_config(settings.preset, num_channels=1, image_size=8, labels=data.names, **overrides)
    config = vit_config(settings.preset, num_channels=settings.channels, **overrides)
    data = load_image_folder(settings.data, config.image_size, settings.channels)
    return data, vit_config(settings.preset, num_channels=settings.channels, labels=data.names, **overrides)


@torch.no_grad()
def accuracy(model: ViT, data: ImageDataset) -> float:
    device = next(model.parameters()).device
    hits = sum(
        (model(data.images[i : i + 256].to(device)).logits.argmax(-1).cpu() == data.labels[i : i + 256]).sum().item()
        for i in range(0, len(data), 256)
    )
    return hits / len(data)


def train(settings: ViTSettings) -> TrainedViT:
    """Train on the digits or the folder; the test accuracy in the summary."""
    check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("vit",))
    settings.apply_threads()
    data, model_config = load_data(settings)
    train_split, test = data.split(settings.test_fraction, seed=settings.seed)
    torch.manual_seed(settings.seed)  # the initial weights are part of the run
    model = ViT(model_config)
    batches = ImageBatches(train_split, settings.batch_size, seed=settings.seed, shift=settings.shift, affine=settings.affine)

    def loss_fn(m: ViT, batch):
        logits = m.class_logits(batch["pixel_values"])
        return F.cross_entropy(logits, batch["labels"], label_smoothing=settings.label_smoothing)

    config = run_config(settings, model, batches, default_steps=DEFAULT_STEPS, loss_fn=loss_fn, evaluations=EVALUATIONS)
    result = Trainer(model, batches, config, loss_fn=loss_fn,
                     evaluate=lambda m: {"test_accuracy": accuracy(m, test)}).fit(resume=settings.resume)
    acc = result.metrics.get("test_accuracy", 0.0)
    summary = f"test accuracy {acc:.4f} on {len(test)} images ({len(train_split)} for training)"
    return TrainedViT(model, result, acc, summary)


def load(ckpt: str | Path, device: str = "cpu") -> ViT:
    check_ckpt(ckpt)
    return ViT.from_pretrained(ckpt, map_location=device).eval()


def read_images(model: ViT, paths: list[str]) -> torch.Tensor:
    """``(B, C, S, S)`` in [-1, 1], resized to the model's input."""
    c = model.config
    device = next(model.parameters()).device
    return torch.stack([read_image(p, c.image_size, c.num_channels) for p in paths]).to(device)


@torch.no_grad()
def classify(model: ViT, paths: list[str], top_k: int = 3) -> list[list[tuple[str, float]]]:
    """For each image, the ``top_k`` most likely labels and their probabilities."""
    config = model.config
    if not config.labels:
        raise AttnlabError("--ckpt: the ViT has no classifier head")
    if top_k < 1:
        raise AttnlabError(f"--top-k: expected >= 1, got {top_k}")
    probs = model(read_images(model, paths)).logits.float().softmax(-1)
    top_p, top_i = probs.topk(min(top_k, config.num_labels), dim=-1)
    return [[(config.labels[i], p) for i, p in zip(ids, ps)] for ps, ids in zip(top_p.tolist(), top_i.tolist())]


@torch.no_grad()
def attentions(model: ViT, inputs: list[str]) -> Explained:
    """Every layer's attention over [CLS] + patches for each image of ``inputs`` (files;
    empty: the first test digit for a digits model)."""
    c = model.config
    if inputs:
        images, names = read_images(model, inputs), [Path(p).name for p in inputs]
    elif (c.image_size, c.num_channels) == (8, 1):
        images, names = load_digits().images[:1], ["digits[0]"]
    else:
        raise AttnlabError("give an image file for this ViT")
    model.eval()
    out = model(images.to(next(model.parameters()).device), need_weights=True)
    rows, cols = c.image_size // c.patch_size, c.image_size // c.patch_size
    labels = ["[CLS]"] + [f"patch {r},{q}" for r in range(rows) for q in range(cols)]
    extras = {"image": ((images.float().cpu() + 1) / 2).clamp(0, 1), "grid": (rows, cols), "special": {"[CLS]"},
              "names": names}
    if out.logits is not None and c.labels:
        extras["predictions"] = [c.labels[int(k)] for k in out.logits.argmax(-1)]
    return Explained("vit", out.attentions, {"patches": [labels] * len(images)}, extras)
