"""What every attnlab model shares: a typed config, a checkpoint directory, input checks.

A checkpoint is a folder with ``config.json`` and ``model.safetensors``, both written
atomically. Models whose folder format is HuggingFace's (GPT, BERT, ViT) override
``_export_checkpoint`` / ``_import_checkpoint`` to rename tensors and config fields
(the maps live in :mod:`attnlab.interop`: dicts in, dicts out); every model loads its
weights through :meth:`PretrainedModel._load_weights`, the one place that names missing,
unexpected and misshapen tensors. :func:`check_ids` is the one check of token ids.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from attnlab.config import config_from_dict, config_to_dict
from attnlab.errors import AttnlabError
from attnlab.io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    read_json,
    read_safetensors,
    write_json,
    write_safetensors,
)
from attnlab.validation import check_memory, check_tensors, module_bytes

IGNORE_INDEX = -100  # labels with this value add nothing to a loss (the HF/PyTorch convention)
# The weights file being loaded (from_pretrained sets it): _load_weights's messages name it.
_WEIGHTS_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("weights_source", default=None)
_CONFIG_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("config_source", default=None)


def check_ids(
    ids: Tensor, name: str, high: int, *, what: str = "vocab_size", shape: tuple[int, ...] | None = None,
    max_len: int | None = None, offset: int = 0, length_name: str = "max_len",
) -> None:
    """Check integer ids ``(B, L)``: non-empty, ``0 <= id < high`` (``what`` names the
    limit), ``offset + L <= max_len`` (the config field ``length_name``), and ``shape`` when given; an :class:`AttnlabError`
    naming ``name`` otherwise. One read of the values (a ``min``/``max`` pass; none while
    ``torch.compile`` traces, where the read would split the graph)."""
    if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32) or (shape is not None and ids.shape != shape):
        expected = "(B, L)" if shape is None else str(tuple(shape))
        raise AttnlabError(f"{name} must be an integer tensor of shape {expected}, got {ids.dtype} {tuple(ids.shape)}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise AttnlabError(f"{name} is empty {tuple(ids.shape)}: expected at least one sequence of at least one token")
    if max_len is not None and offset + ids.shape[1] > max_len:
        raise AttnlabError(
            f"{name}: a sequence of {offset + ids.shape[1]} tokens is longer than the model's limit of "
            f"{length_name}={max_len}"
        )
    if torch.compiler.is_compiling():
        return
    if ids.numel() == 1:  # a decoding step: one read
        low = high_seen = int(ids)
    else:
        low, high_seen = (int(v) for v in ids.aminmax())  # one pass, one sync
    if low < 0 or high_seen >= high:
        raise AttnlabError(f"{name} holds ids in [{low}, {high_seen}]; expected ids in [0, {high - 1}] ({what} is {high})")


def check_labels(labels: Tensor, name: str, shape: tuple[int, ...], num_classes: int, *, ignore: bool = True) -> None:
    """Class labels of ``shape`` in ``[0, num_classes)`` (or ``IGNORE_INDEX`` with ``ignore``)."""
    if labels.shape != shape or labels.dtype not in (torch.int64, torch.int32):
        raise AttnlabError(
            f"{name} must be an integer tensor of shape {tuple(shape)}, got {labels.dtype} {tuple(labels.shape)}"
        )
    if torch.compiler.is_compiling() or not labels.numel():
        return
    real = labels[labels != IGNORE_INDEX] if ignore else labels
    if real.numel() and (int(real.min()) < 0 or int(real.max()) >= num_classes):
        allowed = f"[0, {num_classes - 1}]" + (f" or {IGNORE_INDEX} (ignored)" if ignore else "")
        raise AttnlabError(f"{name} holds values in [{int(real.min())}, {int(real.max())}]; expected {allowed}")



class PretrainedModel(nn.Module):
    """Base class: subclasses set ``config_class`` and take ``config`` as first argument."""

    config_class: ClassVar[type]
    model_type: ClassVar[str]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # --- the checkpoint format; override both for a foreign (e.g. HuggingFace) format ---
    def _export_checkpoint(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        config = {"model_type": self.model_type, **config_to_dict(self.config)}
        return config, dict(self.state_dict())

    @classmethod
    def _import_checkpoint(
        cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> PretrainedModel:
        config = dict(config)
        model_type = config.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise AttnlabError(f"checkpoint holds a {model_type!r} model, not {cls.model_type!r}")
        model = cls(config_from_dict(cls.config_class, config))
        return model._load_weights(tensors, f"{cls.model_type} checkpoint")

    # Older names of weights, read when a checkpoint still has them: {old prefix: new prefix}.
    renamed_weights: ClassVar[dict[str, str]] = {}

    def _load_weights(self, tensors: dict[str, Tensor], source: str) -> PretrainedModel:
        """Load ``tensors`` (attnlab names) into this model: every weight must be there (but
        the tied ones), none left over, each of its shape. Returns the model."""
        source = _WEIGHTS_SOURCE.get() or source
        tensors = {_renamed(k, self.renamed_weights): v for k, v in tensors.items()}
        expected = self.state_dict()
        missing = [k for k in expected if k not in tensors and not self._is_tied(k)]
        unexpected = [k for k in tensors if k not in expected]
        misshapen = [
            f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
            for k, v in tensors.items() if k in expected and v.shape != expected[k].shape
        ]
        problems = [
            f"{what} {names[:5]}" + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            for what, names in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", misshapen))
            if names
        ]
        if problems:
            config = _CONFIG_SOURCE.get()
            raise AttnlabError(f"{source}: the weights do not match the config{f' in {config}' if config else ''}: "
                               + "; ".join(problems))
        check_tensors({k: v for k, v in tensors.items() if k in expected}, source, expected, finite=False)
        if not any(t.is_meta for t in expected.values()):  # a meta model (from_pretrained's sketch) holds no values
            self.load_state_dict(tensors, strict=False)
        return self

    @classmethod
    def _copy_hf(cls, hf_model: nn.Module) -> PretrainedModel:
        """A copy of a live ``transformers`` model: its config dict and weights through
        :meth:`_import_checkpoint` (the name maps), on its device and dtype, in its mode."""
        config = hf_model.config.to_dict()
        config["architectures"] = [type(hf_model).__name__]
        model = cls._import_checkpoint(config, dict(hf_model.state_dict()))
        weight = next(hf_model.parameters())
        return model.to(device=weight.device, dtype=weight.dtype).train(hf_model.training)

    def _is_tied(self, name: str) -> bool:
        """Parameters that are tied to another and may be absent from a checkpoint."""
        return False

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        config, tensors = self._export_checkpoint()
        write_safetensors(directory / WEIGHTS_FILE, tensors, metadata={"format": "pt"})
        write_json(directory / CONFIG_FILE, config)

    @classmethod
    def _sketch(cls, config: dict[str, Any], tensors: dict[str, Tensor], config_path: Path, weights_path: Path):
        """The model of ``config`` on the meta device (no memory), its weights' names and
        shapes checked against ``tensors`` (the file's header). A size too large for any
        tensor (``n_embd: 10**9``: torch's storage size overflows even on meta) is named here,
        with the file's sizes, instead of torch's raw ``RuntimeError``."""
        try:
            with torch.device("meta"):
                return cls._import_checkpoint(config, tensors)
        except RuntimeError as e:  # on meta nothing is computed: only a size can fail
            widest = max((max(t.shape, default=1) for t in tensors.values()), default=0)
            raise AttnlabError(
                f"{config_path}: a {cls.model_type} model of these sizes cannot be built ({str(e).splitlines()[0]}); "
                f"the tensors of {weights_path.name} are at most {widest} wide: is a size in the config wrong?"
            ) from None

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        """Read a checkpoint folder. Every check runs before the model is allocated: the
        config (types and ranges), the weights' names, shapes, dtypes and values, and the
        model's size against the memory left -- measured on a sketch built on the meta
        device. A bad folder is one :class:`AttnlabError` naming the file at fault."""
        directory = Path(directory)
        if not directory.is_dir():
            raise AttnlabError(f"{directory}: checkpoint folder not found")
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        config = read_json(config_path)
        tensors = read_safetensors(weights_path)
        check_tensors(tensors, weights_path)  # NaN/Inf, named as the file names them
        tokens = _WEIGHTS_SOURCE.set(str(weights_path)), _CONFIG_SOURCE.set(str(config_path))
        try:
            sketch = cls._sketch(config, tensors, config_path, weights_path)
            check_memory(module_bytes(sketch), config_path, f"a {cls.model_type} model of this config")
            model = cls._import_checkpoint(config, tensors)
        except AttnlabError as e:
            if str(weights_path) in str(e) or str(config_path) in str(e):
                raise
            raise AttnlabError(f"{config_path}: {e}") from None
        except (TypeError, KeyError, AttributeError, ValueError, IndexError, OverflowError) as e:
            raise AttnlabError(f"{config_path}: not a valid {cls.model_type} config ({type(e).__name__}: {e})") from None
        finally:
            _WEIGHTS_SOURCE.reset(tokens[0])
            _CONFIG_SOURCE.reset(tokens[1])
        return model.to(map_location).eval()


def _renamed(name: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if name.startswith(old):
            return new + name[len(old):]
    return name
