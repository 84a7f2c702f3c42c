"""The library doors of the command line that are no one app's: device, threads, processes,
the ONNX export and its runtime, the C kernels' build, the PNG of any checkpoint.

``attnlab.cli`` imports nothing but ``attnlab.apps`` and ``attnlab.errors`` (the
architecture test checks it): what a command needs from below the apps it reaches here.
Every import is inside the function that needs it, so a command imports only what it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError


def device(name: str) -> str:
    """``--device``: ``auto`` -> ``cuda`` when available, else ``cpu``; a clear error when
    the device is not there."""
    from attnlab.training.config import resolve_device

    return str(resolve_device(name))


def threads(requested: int | None) -> int:
    """``--threads`` of a command that runs a model (0: ``auto``): the count it set."""
    from attnlab.apps.common import apply_threads

    return apply_threads(requested)


def launch(nproc: int | None, argv: list[str]) -> None:
    """``--nproc N`` (N > 1, not yet under torchrun): this process becomes torchrun's
    launcher running the same command on N ranks, and exits with the job's status
    (:mod:`attnlab.training.launcher`: a rank that dies is one line). Under torchrun, ranks
    other than 0 print nothing on stdout."""
    if (nproc or 1) > 1 or _launched():
        from attnlab.training import distributed

        if (nproc or 1) > 1 and not distributed.launched():
            from attnlab.training.launcher import launch as run_ranks

            raise SystemExit(run_ranks(nproc, argv))
        distributed.quiet_other_ranks()


def release_folders() -> None:
    """The command is over: the output folders it owned are free for the next one."""
    from attnlab.training import out_lock

    out_lock.release_all()


def hand_over_error(message: str) -> bool:
    """Under ``--nproc``, on every rank: the one-line error goes to the launcher,
    which prints it once (True); else False (print it)."""
    if not _launched():
        return False
    from attnlab.training.launcher import hand_over_error as hand_over

    return hand_over(message)


def stopped_by_peer(error: BaseException) -> int | None:
    """Under torchrun, the exit status of a rank whose collective failed because another
    rank died (it prints nothing: the launcher says which rank died, once); None otherwise."""
    if not _launched():
        return None
    from attnlab.training.launcher import PEER_LOST, lost_peer

    return PEER_LOST if lost_peer(error) else None


def leave(wait: bool) -> None:
    """Under torchrun, leave the process group (``wait``: together with the other ranks)."""
    distributed = sys.modules.get("attnlab.training.distributed")  # not loaded: no process group to leave
    if distributed is not None:
        distributed.shutdown(wait=wait)


def _launched() -> bool:
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def seq2seq_attentions() -> tuple[str, ...]:
    """The attention names ``attnlab train seq2seq --attention`` takes."""
    from attnlab.models.seq2seq_attention import ATTENTION_NAMES

    return tuple(ATTENTION_NAMES)


def export_onnx(ckpt: str | Path, out: str | Path, *, opset: int | None, overwrite: bool,
                seed: int = 0) -> tuple[Path, dict]:
    """Export the checkpoint to ONNX in ``out``; the folder and its manifest. The example
    inputs of the trace are drawn from ``seed``. What the exporter's own loggers say that is
    not the user's business is not shown (QUIET_LOGGERS: torchvision's operators, which no
    attnlab model uses; onnx_ir's note on an empty attribute list)."""
    import logging

    import torch

    from attnlab.export import export_onnx as export
    from attnlab.export import read_manifest

    torch.manual_seed(seed)
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        folder = export(ckpt, out, opset=opset, overwrite=overwrite)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return folder, read_manifest(folder)


QUIET_LOGGERS = ("torch.onnx._internal.exporter._registration", "onnx_ir._convenience")


def load_onnx(ckpt: str | Path, model_types: tuple[str, ...], what: str, *, device: str = "cpu",
              threads: int | None = None) -> Any:
    """The ONNX Runtime object of an export folder holding one of ``model_types`` (a translator's
    in the app's :class:`~attnlab.apps.translate.translator.Translator`)."""
    from attnlab.export.runtime import load_runtime

    if device not in ("cpu", "auto"):
        raise AttnlabError(f"--device {device}: --runtime onnx runs on the CPU (ONNX Runtime's CPU provider)")
    rt = load_runtime(ckpt, threads=threads)
    if rt.kind not in model_types:
        raise AttnlabError(f"--ckpt {ckpt}: an ONNX export of a {rt.kind!r} model, not {what}")
    if rt.kind in ("transformer", "seq2seq"):  # the app's Translator, the export's graphs as its model
        from attnlab.apps.translate.translator import Translator

        return Translator(rt, *rt.tokenizer)
    return rt


def build_kernels() -> tuple[dict[str, Any], int, Path]:
    """Compile every C kernel for this machine: {name: path or error text}, how many there
    are, and the cache folder."""
    from attnlab.kernels.native import build

    return build.build_all(), len(build.KERNELS), build.cache_dir()


def draw(ckpt: str | Path, inputs: list[str], out: str | Path, *, device: str = "cpu") -> Path:
    """``attnlab viz``: the PNG of what the checkpoint attends to on ``inputs``, written to
    ``out`` (a ``.png`` file, or a folder for ``<model_type>_attention.png``)."""
    from attnlab.apps import attentions_for
    from attnlab.viz.figures import draw_explained

    return draw_explained(attentions_for(ckpt, inputs, device=device), out)
