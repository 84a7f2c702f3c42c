"""``attnlab train vit`` and ``attnlab classify``: flags -> :mod:`attnlab.apps.vit`."""

from __future__ import annotations

import argparse

from attnlab.apps import vit
from attnlab.cli.export import add_runtime_option, load_onnx
from attnlab.cli.options import add_command, add_run_options, add_train_options, runtime, settings

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
    add_train_options(p, vit.ViTSettings)
    p.set_defaults(func=run_train)


def register(commands) -> None:
    p = add_command(commands, "classify", "classify images with a trained ViT", CLASSIFY_EXAMPLES)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--ckpt", required=True, help="ViT folder (attnlab train vit, or a HuggingFace ViT classifier)")
    p.add_argument("--top-k", type=int, default=3)
    add_run_options(p)
    add_runtime_option(p)
    p.set_defaults(func=run_classify)


def run_train(args) -> int:
    trained = vit.train(settings(vit.ViTSettings, args))
    if trained.result.interrupted:
        return trained.result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    print(f"{trained.summary} after {trained.result.step} updates ({trained.result.elapsed_s / 60:.1f} min)   "
          f"checkpoint: {args.out}")
    return 0


def run_classify(args) -> int:
    from attnlab.training.config import resolve_device

    runtime(args)
    if args.runtime == "onnx":  # an `attnlab export` folder in ONNX Runtime: the same app function
        model = load_onnx(args, ("vit",), "a ViT")
    else:
        model = vit.load(args.ckpt, device=str(resolve_device(args.device)))
    for path, top in zip(args.images, vit.classify(model, args.images, args.top_k)):
        print(f"{path}: " + "  ".join(f"{label} {p:.3f}" for label, p in top))
    return 0
