"""Which catalog folders serve a requested language: ``zh_CN`` takes ``zh_CN`` (UTF-8
first), then ``zh_Hans``/``zh_SG``, then ``zh``; ``fr`` takes ``fr``, then ``fr_FR``, then
any ``fr_XX``; ``frp`` is another language.
"""

from __future__ import annotations

import dataclasses
import re

from attnlab.errors import AttnlabError

PREFIX = "gettext:"
_LOCALE = re.compile(r"^([a-z]{2,3})(?:_([A-Z]{2}|\d{3}|[A-Z][a-z]{3}))?(?:\.([\w-]+))?(?:@(\w+))?$")
_SCRIPTS = {"Hans": {"CN", "SG", "Hans"}, "Hant": {"TW", "HK", "MO", "Hant"}}  # zh: script -> territories


@dataclasses.dataclass(frozen=True)
class Locale:
    """``zh_CN.UTF-8@mod`` -> language ``zh``, territory ``CN``, codeset, modifier."""

    language: str
    territory: str | None = None
    codeset: str | None = None
    modifier: str | None = None

    @classmethod
    def parse(cls, name: str) -> Locale | None:
        m = _LOCALE.match(name)
        return None if m is None else cls(*m.groups())

    @property
    def name(self) -> str:
        return self.language + (f"_{self.territory}" if self.territory else "") + (f"@{self.modifier}" if self.modifier else "")

    def _script(self) -> str | None:
        return next((s for s, members in _SCRIPTS.items() if self.territory in members), None)

    def match(self, found: Locale) -> int:
        """How well a catalog folder ``found`` serves this request: 0 (not at all) to 32 (exact, UTF-8)."""
        if found.language != self.language or found.modifier != self.modifier:
            return 0
        wanted = self.territory or ("CN" if self.language == "zh" else None)
        if found.territory == wanted:
            score = 30
        elif self.language == "zh" and found.territory and Locale("zh", wanted)._script() == found._script():
            score = 20
        elif found.territory is None:
            score = 10 if self.language != "zh" or Locale("zh", wanted)._script() == "Hans" else 0
        else:  # another territory of the language (fr_FR first, then fr_CA) for fr, never for fr_FR
            score = 5 + (found.territory == self.language.upper()) if self.territory is None and self.language != "zh" else 0
        codeset = (found.codeset or "").lower().replace("-", "")
        return score + (2 if codeset == "utf8" else 1 if not codeset else 0) if score else 0


def parse_spec(spec: str) -> Locale:
    """``"gettext:zh_CN"`` or ``"zh_CN"`` -> the requested :class:`Locale`."""
    name = spec.removeprefix(PREFIX)
    locale = Locale.parse(name)
    if locale is None or locale.codeset:
        raise AttnlabError(f"--data {spec}: expected a language like gettext:zh_CN, gettext:fr or gettext:de")
    return locale


def is_gettext_spec(data: str | None) -> bool:
    return data is not None and data.startswith(PREFIX)
