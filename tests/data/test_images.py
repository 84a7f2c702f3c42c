"""Digits and image folders: shapes, ranges, the stratified split, shifts, bad files."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits as sklearn_digits

from attnlab.data.images import (
    ImageBatches,
    load_digits,
    load_image_folder,
    random_affine,
    random_shift,
    read_image,
)
from attnlab.errors import AttnlabError


def test_digits_match_sklearn_and_split_is_stratified():
    data = load_digits()
    raw = sklearn_digits()
    assert data.images.shape == (1797, 1, 8, 8)
    torch.testing.assert_close(data.images[:, 0], torch.tensor(raw.images, dtype=torch.float32) / 8 - 1)
    train, test = data.split(0.2, seed=0)
    assert len(train) + len(test) == 1797
    counts = torch.bincount(test.labels, minlength=10).float()
    assert torch.all((counts / torch.bincount(data.labels).float() - 0.2).abs() < 0.01)
    again, _ = data.split(0.2, seed=0)
    assert torch.equal(again.labels, train.labels)


def test_random_shift_against_a_loop():
    images = torch.randn(5, 2, 6, 6)
    shifted = random_shift(images, 2, torch.Generator().manual_seed(3))
    offsets = torch.randint(0, 5, (5, 2), generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), value=-1.0)
    for n, (r, c) in enumerate(offsets.tolist()):
        torch.testing.assert_close(shifted[n], padded[n, :, r : r + 6, c : c + 6], atol=0, rtol=0)


def test_random_affine_identity_and_range():
    images = load_digits().images[:32]
    same = random_affine(images, torch.Generator().manual_seed(0), degrees=0, scale=0, translate=0)
    torch.testing.assert_close(same, images, atol=1e-6, rtol=0)
    moved = random_affine(images, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and moved.min() >= -1 - 1e-6 and moved.max() <= 1 + 1e-6
    assert not torch.allclose(moved, images)
    # a pure rotation keeps the image centre's pixel mass roughly in place
    assert (moved.mean() - images.mean()).abs() < 0.1


def test_batches_are_deterministic_in_the_step():
    data = load_digits()
    a, b = ImageBatches(data, 16, seed=1, shift=1), ImageBatches(data, 16, seed=1, shift=1)
    assert torch.equal(a.batch(7)["pixel_values"], b.batch(7)["pixel_values"])
    assert a.batch(7)["pixel_values"].shape == (16, 1, 8, 8)
    assert not torch.equal(a.batch(7)["pixel_values"], a.batch(8)["pixel_values"])


def test_image_folder(tmp_path):
    for name, value in (("dark", 20), ("light", 230)):
        (tmp_path / name).mkdir()
        for k in range(2):
            Image.fromarray(np.full((10, 14, 3), value + k, dtype=np.uint8)).save(tmp_path / name / f"{k}.png")
    (tmp_path / "light" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, image_size=8, num_channels=3)
    assert data.names == ["dark", "light"] and data.labels.tolist() == [0, 0, 1, 1]
    assert data.images.shape == (4, 3, 8, 8)
    torch.testing.assert_close(data.images[0], torch.full((3, 8, 8), 20 / 127.5 - 1))
    assert read_image(tmp_path / "dark" / "0.png", 4, 1).shape == (1, 4, 4)


def test_bad_image_input(tmp_path):
    with pytest.raises(AttnlabError, match="image folder not found"):
        load_image_folder(tmp_path / "missing", 8)
    (tmp_path / "only").mkdir()
    with pytest.raises(AttnlabError, match="at least 2"):
        load_image_folder(tmp_path, 8)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(AttnlabError, match="not a readable image"):
        read_image(tmp_path / "bad.png", 8, 1)
    with pytest.raises(AttnlabError, match="test_fraction"):
        load_digits().split(1.5)
