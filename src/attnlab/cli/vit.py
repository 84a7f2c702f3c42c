"""``attnlab train vit`` and ``attnlab classify``: a Vision Transformer on images.

The embedded default is scikit-learn's 1,797 8x8 digits (80/20 stratified split);
your data is a folder with one sub-folder of images per class. ``attnlab viz`` on a
ViT checkpoint draws the attention rollout over an image and every head's class-token
attention (:mod:`attnlab.viz.rollout`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from attnlab.cli.bert import add_training_args, run_training
from attnlab.cli.main import add_command
from attnlab.errors import AttnlabError

TRAIN_EXAMPLES = """  attnlab train vit                                  # sklearn digits, ~3 minutes on a laptop CPU
  attnlab train vit --data photos/ --image-size 32 --channels 3 --patch-size 4 --out runs/photos
  attnlab train vit --out runs/vit --resume --steps 3000
"""
CLASSIFY_EXAMPLES = """  attnlab classify --ckpt runs/vit digit.png
  attnlab classify --ckpt runs/photos --top-k 3 a.jpg b.jpg
"""


def register_train(tasks) -> None:
    p = add_command(tasks, "vit", "train a Vision Transformer image classifier", TRAIN_EXAMPLES)
    p.add_argument("--data", help="folder with one sub-folder of images per class (default: sklearn digits)")
    p.add_argument("--preset", default="digits", help="model shape: digits, base")
    p.add_argument("--image-size", type=int, help="resize folder images to this side (default: the preset's)")
    p.add_argument("--channels", type=int, default=3, choices=[1, 3], help="grey (1) or RGB (3) folder images")
    p.add_argument("--patch-size", type=int, help="patch side (default: the preset's)")
    p.add_argument("--affine", action=argparse.BooleanOptionalAction, default=True,
                   help="augment by random rotations (10 degrees), zooms (10%%) and moves (half a pixel)")
    p.add_argument("--shift", type=int, default=0, help="augment by random shifts of up to this many whole pixels")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    add_training_args(p, out="runs/vit", steps=2400, batch_size=64, lr=2e-3)
    p.set_defaults(func=run_train, weight_decay=0.05)


def register(commands) -> None:
    p = add_command(commands, "classify", "classify images with a trained ViT", CLASSIFY_EXAMPLES)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--ckpt", required=True, help="ViT folder (attnlab train vit, or a HuggingFace ViT classifier)")
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(func=run_classify)


def load_data(args):
    """``(dataset, model config)`` for the default digits or the user's image folder."""
    from attnlab.data.images import load_digits, load_image_folder
    from attnlab.models.vit import vit_config

    overrides = {k: v for k, v in (("image_size", args.image_size), ("patch_size", args.patch_size)) if v is not None}
    if args.data is None:
        if overrides:
            raise AttnlabError("--image-size/--patch-size apply to --data folders; the digits are 8x8")
        data = load_digits()
        return data, vit_config(args.preset, num_channels=1, image_size=8, labels=data.names, **overrides)
    config = vit_config(args.preset, num_channels=args.channels, **overrides)
    data = load_image_folder(args.data, config.image_size, args.channels)
    return data, vit_config(args.preset, num_channels=args.channels, labels=data.names, **overrides)


@torch.no_grad()
def accuracy(model, data) -> float:
    device = next(model.parameters()).device
    hits = sum(
        (model(data.images[i : i + 256].to(device)).logits.argmax(-1).cpu() == data.labels[i : i + 256]).sum().item()
        for i in range(0, len(data), 256)
    )
    return hits / len(data)


def train_vit(args, config):
    """Train on the digits or the folder; ``(TrainResult, summary)`` with the test accuracy."""
    import torch.nn.functional as F

    from attnlab.data.images import ImageBatches
    from attnlab.models.vit import ViT
    from attnlab.training import Trainer

    data, model_config = load_data(args)
    train, test = data.split(args.test_fraction, seed=args.seed)
    torch.manual_seed(args.seed)

    def loss_fn(model, batch):
        logits = model.class_logits(batch["pixel_values"])
        return F.cross_entropy(logits, batch["labels"], label_smoothing=args.label_smoothing)

    result = Trainer(
        ViT(model_config), ImageBatches(train, args.batch_size, seed=args.seed, shift=args.shift, affine=args.affine), config,
        loss_fn=loss_fn, evaluate=lambda m: {"test_accuracy": accuracy(m, test)},
    ).fit(resume=args.resume)
    summary = f"test accuracy {result.metrics.get('test_accuracy', 0):.4f} on {len(test)} images ({len(train)} for training)"
    return result, summary


def run_train(args) -> int:
    return run_training(args, train_vit, evaluations=5)


def load_vit(ckpt: str | Path):
    from attnlab.models.vit import ViT

    if not Path(ckpt).is_dir():
        raise AttnlabError(f"--ckpt {ckpt}: checkpoint folder not found")
    return ViT.from_pretrained(ckpt)


def run_classify(args) -> int:
    from attnlab.data.images import read_image

    model = load_vit(args.ckpt)
    config = model.config
    if not config.labels:
        raise AttnlabError(f"--ckpt {args.ckpt}: the ViT has no classifier head")
    if args.top_k < 1:
        raise AttnlabError(f"--top-k: expected >= 1, got {args.top_k}")
    images = torch.stack([read_image(p, config.image_size, config.num_channels) for p in args.images])
    with torch.no_grad():
        probs = model(images).logits.softmax(-1)
    top_p, top_i = probs.topk(min(args.top_k, config.num_labels), dim=-1)
    for path, ps, ids in zip(args.images, top_p.tolist(), top_i.tolist()):
        print(f"{path}: " + "  ".join(f"{config.labels[i]} {p:.3f}" for i, p in zip(ids, ps)))
    return 0


def view_vit(ckpt: Path, inputs: list[str], out: Path) -> Path:
    """``attnlab viz`` for ViT: the rollout over the image and every head's class-token map."""
    from attnlab.data.images import load_digits, read_image
    from attnlab.viz.rollout import attention_figure, write_png

    model = load_vit(ckpt)
    config = model.config
    if inputs:
        image, name = read_image(inputs[0], config.image_size, config.num_channels), Path(inputs[0]).name
    elif (config.image_size, config.num_channels) == (8, 1):
        image, name = load_digits().images[0], "digits[0]"
    else:
        raise AttnlabError("attnlab viz: give an image file for this ViT")
    with torch.no_grad():
        out_model = model(image[None], need_weights=True)
    title = name
    if out_model.logits is not None:
        title += f": predicted {config.labels[int(out_model.logits.argmax())]}"
    path = out / "vit_attention.png" if out.suffix.lower() != ".png" else out
    return write_png(attention_figure(image, out_model.attentions, title), path)
