"""``python -m attnlab.data.gettext_corpus zh_CN [CATALOGS...]``: the cleaning report and
which catalogs were held out, without training anything."""

from __future__ import annotations

import sys

from attnlab.data.gettext_corpus import load_gettext


def main() -> None:
    splits = load_gettext(sys.argv[1] if len(sys.argv) > 1 else "zh_CN", sys.argv[2:])
    print("\n".join(splits.report.lines()))
    for name in ("valid", "test"):
        print(f"{name} catalogs: {', '.join(splits.catalogs[name])}")


if __name__ == "__main__":
    main()
