"""``attnlab export``: flags -> :func:`attnlab.apps.commands.export_onnx`."""

from __future__ import annotations

from attnlab.cli.options import add_command, add_run_options, runtime

EXPORT_EXAMPLES = """  attnlab export --ckpt runs/lm --format onnx --out runs/lm-onnx
  attnlab generate --runtime onnx --ckpt runs/lm-onnx --prompt "def "
  attnlab export --ckpt runs/translate --out runs/translate-onnx --opset 20 --overwrite
"""


COMMANDS = {"export": "export a trained model to ONNX (run it with --runtime onnx)"}


def register(commands) -> None:
    p = add_command(commands, "export", COMMANDS["export"], EXPORT_EXAMPLES)
    p.add_argument("--ckpt", required=True, help="checkpoint folder (translator, seq2seq, GPT, BERT, ViT, GAT or HAN)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("--out", required=True, help="export folder (written whole or not at all)")
    p.add_argument("--opset", type=int, help="ONNX opset, 18..23 (default 18)")
    p.add_argument("--overwrite", action="store_true", help="replace the folder in --out")
    add_run_options(p)
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from attnlab.apps.commands import export_onnx
    from attnlab.errors import AttnlabError

    runtime(args)
    if args.device not in ("cpu", "auto"):
        raise AttnlabError(f"--device {args.device}: export traces the model on the CPU (use cpu or auto)")
    out, manifest = export_onnx(args.ckpt, args.out, opset=args.opset, overwrite=args.overwrite, seed=args.seed)
    for name, graph in manifest["graphs"].items():
        inputs = ", ".join(i["name"] for i in graph["inputs"][:4]) + (", ..." if len(graph["inputs"]) > 4 else "")
        how = graph["exporter"] + (f" ({graph['fallback_reason']})" if "fallback_reason" in graph else "")
        print(f"{out / graph['file']}: {name}({inputs}), opset {manifest['opset']}, {how}")
    weights = manifest["weights"]
    print(f"{out / weights['file']}: the weights of every graph, {weights['bytes'] / 2**20:.1f} MiB, each tensor once")
    print(f"{out / 'export.json'}: the graphs' inputs and outputs and the model's config ({manifest['model_type']})")
    return 0


RUNTIME_HELP = "torch: the checkpoint in PyTorch; onnx: an `attnlab export` folder in ONNX Runtime (CPU)"


def add_runtime_option(parser) -> None:
    """``--runtime torch|onnx`` of the commands that run a model."""
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnx"], help=RUNTIME_HELP)


def load_onnx(args, model_types: tuple[str, ...], what: str):
    """The ONNX Runtime object of ``--ckpt`` (an export folder holding one of ``model_types``)."""
    from attnlab.apps.commands import load_onnx as load

    return load(args.ckpt, model_types, what, device=getattr(args, "device", "cpu"),
                threads=getattr(args, "threads", None))
