"""What every attnlab model shares: a typed config and a checkpoint directory.

A checkpoint is a folder with ``config.json`` and ``model.safetensors``, both written
atomically. Models whose folder format is HuggingFace's (GPT, BERT, ViT) override
``_export_checkpoint`` / ``_import_checkpoint`` to rename tensors and config fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from attnlab.config import config_from_dict, config_to_dict
from attnlab.errors import AttnlabError
from attnlab.io import read_json, read_safetensors, write_json, write_safetensors

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if not model._is_tied(k)]
        if missing or unexpected:
            raise AttnlabError(f"checkpoint weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    def _is_tied(self, name: str) -> bool:
        """Parameters that are tied to another and may be absent from a checkpoint."""
        return False

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        config, tensors = self._export_checkpoint()
        write_safetensors(directory / WEIGHTS_FILE, tensors, metadata={"format": "pt"})
        write_json(directory / CONFIG_FILE, config)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        directory = Path(directory)
        if not directory.is_dir():
            raise AttnlabError(f"{directory}: checkpoint folder not found")
        config = read_json(directory / CONFIG_FILE)
        tensors = read_safetensors(directory / WEIGHTS_FILE)
        model = cls._import_checkpoint(config, tensors)
        return model.to(map_location).eval()
