"""Typed dataclass configs: presets, JSON round trip, and clear errors on bad fields."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar

from attnlab.errors import AttnlabError
from attnlab.validation import check_config

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], data: dict[str, Any], names: dict[str, str] | None = None) -> C:
    """Build ``cls`` from a dict, naming any field the dataclass does not have and any value
    of the wrong type or out of range (:func:`attnlab.validation.check_config`; ``names``:
    field -> the key the file uses, for the messages)."""
    if not isinstance(data, dict):
        raise AttnlabError(f"{cls.__name__}: expected a JSON object of fields, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise AttnlabError(f"unknown field(s) {unknown}; expected some of {sorted(fields)}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in data]
    if required:
        raise AttnlabError(f"missing field(s) {[(names or {}).get(n, n) for n in required]}")
    check_config(cls, data, names)
    try:
        return cls(**data)
    except AttnlabError as e:  # the config's own checks: name the fields as the file does
        message = re.sub(rf"\b{cls.__name__}\.", "", str(e))
        for field, key in (names or {}).items():
            message = re.sub(rf"\b{field}\b", key, message)
        raise AttnlabError(message) from None


def preset(presets: dict[str, C], name: str, **overrides: Any) -> C:
    """Look up a named preset and apply overrides: ``preset(PRESETS, "small", dropout=0.0)``."""
    if name not in presets:
        raise AttnlabError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    return dataclasses.replace(presets[name], **overrides)
