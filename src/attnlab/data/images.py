"""Image classification data: scikit-learn's bundled digits, or a folder of images.

The embedded default is ``sklearn.datasets.load_digits`` (1,797 grey 8x8 digits, no
download). User data is a folder with one sub-folder per class, read with Pillow::

    images/
      cat/ a.png b.jpg ...
      dog/ c.png ...

Pixels become floats in [-1, 1] (``2 x / max - 1``). :class:`ImageBatches` is the
Trainer's step-indexed batch source, with optional random shifts (translations by up
to ``shift`` pixels, zero-filled) drawn from ``(seed, step)``.

Notation: N images, C channels, S image side, B batch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.data.shuffle import EpochShuffler
from attnlab.errors import AttnlabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class ImageDataset:
    """``images (N, C, S, S)`` float in [-1, 1], ``labels (N,)`` int64, class ``names``."""

    images: Tensor
    labels: Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """A stratified (per class) train/test split, the same for the same seed."""
        if not 0 < test_fraction < 1:
            raise AttnlabError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        test = []
        for c in range(len(self.names)):
            members = np.flatnonzero(self.labels.numpy() == c)
            test.extend(rng.permutation(members)[: round(len(members) * test_fraction)].tolist())
        is_test = torch.zeros(len(self), dtype=torch.bool)
        is_test[test] = True
        return self.subset(~is_test), self.subset(is_test)

    def subset(self, keep: Tensor) -> ImageDataset:
        return ImageDataset(self.images[keep], self.labels[keep], self.names)


def load_digits() -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (values 0..16) as ``(N, 1, 8, 8)`` in [-1, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (N, 1, 8, 8)
    return ImageDataset(images, torch.tensor(digits.target, dtype=torch.int64), [str(d) for d in range(10)])


def read_image(path: str | Path, image_size: int, num_channels: int) -> Tensor:
    """One image file as ``(C, S, S)`` in [-1, 1]: grey (C=1) or RGB (C=3), resized to S x S."""
    from PIL import Image, UnidentifiedImageError

    if num_channels not in (1, 3):
        raise AttnlabError(f"num_channels: expected 1 (grey) or 3 (RGB), got {num_channels}")
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings():  # over Pillow's pixel limit: an error, not a warning and minutes of decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = image.convert("L" if num_channels == 1 else "RGB").resize((image_size, image_size), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32).reshape(image_size, image_size, num_channels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise AttnlabError(f"{path}: too many pixels for an image file ({e}); expected at most "
                           f"{Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's MAX_IMAGE_PIXELS)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:  # Pillow's plugins raise all of these
        raise AttnlabError(f"{path}: not a readable image ({e})") from None
    return torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1.0  # (C, S, S)


def load_image_folder(folder: str | Path, image_size: int, num_channels: int = 3) -> ImageDataset:
    """Every image under ``folder/CLASS/``; classes in sorted order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AttnlabError(f"{folder}: image folder not found")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise AttnlabError(f"{folder}: expected one sub-folder per class (at least 2), found {len(names)}")
    images, labels = [], []
    for label, name in enumerate(names):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise AttnlabError(f"{folder / name}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        images.extend(read_image(f, image_size, num_channels) for f in files)
        labels.extend([label] * len(files))
    return ImageDataset(torch.stack(images), torch.tensor(labels, dtype=torch.int64), names)


def random_shift(images: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by up to ``shift`` pixels each way, filling with the background -1."""
    if shift == 0:
        return images
    n, _, height, width = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), value=-1.0)  # (N, C, S + 2s, S + 2s)
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator)
    rows = offsets[:, :1] + torch.arange(height)  # (N, S)
    cols = offsets[:, 1:] + torch.arange(width)  # (N, S)
    index = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_affine(images: Tensor, generator: torch.Generator, degrees: float = 10.0, scale: float = 0.1, translate: float = 0.5) -> Tensor:
    """Rotate by up to ``degrees``, zoom by up to ``scale`` and move by up to ``translate``
    pixels (bilinear, filling with the background -1); one draw per image."""
    n, _, height, width = images.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * translate * 2 / torch.tensor([width, height])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (N, S, S, 2)
    return F.grid_sample(images + 1, grid, align_corners=False) - 1  # zeros outside = background -1


class ImageBatches:
    """Step-indexed batches ``{"pixel_values": (B, C, S, S), "labels": (B,)}`` for the Trainer."""

    def __init__(self, data: ImageDataset, batch_size: int, seed: int = 0, shift: int = 0, affine: bool = False):
        self.data = data
        self.shuffler = EpochShuffler(len(data), batch_size, seed)
        self.seed = seed
        self.shift = shift
        self.affine = affine

    def batch(self, step: int) -> dict[str, Tensor]:
        index = torch.tensor(self.shuffler.indices(step))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        images = random_shift(self.data.images[index], self.shift, generator)
        if self.affine:
            images = random_affine(images, generator)
        return {"pixel_values": images, "labels": self.data.labels[index]}
