"""``attnlab train vit`` and ``attnlab classify``: flags -> :mod:`attnlab.apps.vit`."""

from __future__ import annotations

import argparse

from attnlab.cli.export import add_runtime_option, load_onnx
from attnlab.cli.options import (
    add_command,
    add_run_options,
    add_train_options,
    device,
    runtime,
    settings,
)

TRAIN_EXAMPLES = """  attnlab train vit                                  # sklearn digits, ~3 minutes on a laptop CPU
  attnlab train vit --data photos/ --image-size 32 --channels 3 --patch-size 4 --out runs/photos
  attnlab train vit --out runs/vit --resume --steps 3000
"""
CLASSIFY_EXAMPLES = """  attnlab classify --ckpt runs/vit digit.png
  attnlab classify --ckpt runs/classify "def foo(x): return x"      # a BERT text classifier
  attnlab classify --ckpt runs/photos --top-k 3 a.jpg b.jpg
"""


TASKS = {"vit": "train a Vision Transformer image classifier"}
COMMANDS = {"classify": "classify images with a trained ViT, or texts with a BERT classifier"}


def register_train(tasks) -> None:
    from attnlab.apps import vit

    p = add_command(tasks, "vit", TASKS["vit"], TRAIN_EXAMPLES)
    p.add_argument("--data", help="folder with one sub-folder of images per class (default: sklearn digits)")
    p.add_argument("--preset", default="digits", help="model shape: digits, base")
    p.add_argument("--image-size", type=int, help="resize folder images to this side (default: the preset's)")
    p.add_argument("--channels", type=int, default=3, choices=[1, 3], help="grey (1) or RGB (3) folder images")
    p.add_argument("--patch-size", type=int, help="patch side (default: the preset's)")
    p.add_argument("--affine", action=argparse.BooleanOptionalAction, default=True,
                   help="augment by random rotations (10 degrees), zooms (10%%) and moves (half a pixel); "
                        "--no-affine: off")
    p.add_argument("--shift", type=int, default=0, help="augment by random shifts of up to this many whole pixels")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of the images held out for testing")
    add_train_options(p, vit.ViTSettings)
    p.set_defaults(func=run_train)


def register(commands) -> None:
    p = add_command(commands, "classify", COMMANDS["classify"], CLASSIFY_EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (ViT) or texts (BERT classifier)")
    p.add_argument("--ckpt", required=True, help="a ViT folder (attnlab train vit, or a HuggingFace ViT classifier) "
                   "or a BERT classifier (attnlab train classify)")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="labels shown per input")
    add_run_options(p)
    add_runtime_option(p)
    p.set_defaults(func=run_classify)


def run_train(args) -> int:
    from attnlab.apps import vit

    trained = vit.train(settings(vit.ViTSettings, args))
    if trained.result.interrupted:
        return trained.result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    print(f"{trained.summary} after {trained.result.step} updates ({trained.result.elapsed_s / 60:.1f} min)   "
          f"checkpoint: {args.out}")
    return 0


def run_classify(args) -> int:
    from attnlab.apps import predict, vit

    runtime(args)
    if args.runtime == "onnx":  # an `attnlab export` folder in ONNX Runtime: the same app function
        tops = vit.classify(load_onnx(args, ("vit",), "a ViT"), args.inputs, args.top_k)
    else:
        tops = predict.classify(args.ckpt, args.inputs, args.top_k, device=device(args))
    for item, top in zip(args.inputs, tops):
        print(f"{item}: " + "  ".join(f"{label} {p:.3f}" for label, p in top))
    return 0
