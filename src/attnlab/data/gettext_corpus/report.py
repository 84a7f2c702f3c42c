"""The cleaning report: what each step did to the catalog entries of one language."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CleaningReport:
    """What happened to the catalog entries of one language, step by step."""

    language: str = ""
    catalogs: int = 0
    entries: int = 0
    removed: dict[str, int] = dataclasses.field(default_factory=dict)
    added: dict[str, int] = dataclasses.field(default_factory=dict)
    changed: dict[str, int] = dataclasses.field(default_factory=dict)
    kept: dict[str, int] = dataclasses.field(default_factory=dict)
    unreadable: list[str] = dataclasses.field(default_factory=list)
    near_copies: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # split -> (near, of)

    def remove(self, step: str, n: int = 1) -> None:
        self.removed[step] = self.removed.get(step, 0) + n

    def add(self, step: str, n: int = 1) -> None:
        self.added[step] = self.added.get(step, 0) + n

    def change(self, step: str, n: int = 1) -> None:
        self.changed[step] = self.changed.get(step, 0) + n

    def lines(self) -> list[str]:
        """The report as aligned text lines, in the order the steps ran."""
        rows = [(f"{self.entries} entries in {self.catalogs} catalogs ({self.language})", "")]
        rows += [(f"  + {step}", f"+{n}") for step, n in self.added.items()]
        rows += [(f"  - {step}", f"-{n}") for step, n in self.removed.items()]
        rows += [(f"  ~ {step} (kept)", f"{n}") for step, n in self.changed.items()]
        rows += [(f"  = {split}", f"{n}") for split, n in self.kept.items()]
        rows += [(f"  ! unreadable: {u}", "") for u in self.unreadable]
        rows += [(f"  {split} messages with a near-copy in train (char 2-4-gram cosine >= 0.9)", f"{n} of {total}")
                 for split, (n, total) in self.near_copies.items()]
        width = max(len(r[0]) for r in rows)
        return [f"{label:<{width}}  {count:>7}".rstrip() for label, count in rows]
