"""``python -m attnlab.data.gettext_corpus zh_CN [CATALOGS...]``: the cleaning report and
which catalogs were held out, without training anything; ``--list``: every language the
gettext catalogs of this machine hold, with its number of catalogs."""

from __future__ import annotations

import sys

from attnlab.data.gettext_corpus import available_languages, load_gettext
from attnlab.data.gettext_corpus.near_copies import count_near_copies


def main() -> None:
    if sys.argv[1:2] == ["--list"]:
        languages = available_languages()
        for name, count in sorted(languages.items(), key=lambda item: (-item[1], item[0])):
            print(f"{name}\t{count} catalogs")
        print(f"{len(languages)} languages; train on one with: attnlab train translate --data gettext:LANG")
        return
    splits = load_gettext(sys.argv[1] if len(sys.argv) > 1 else "zh_CN", sys.argv[2:])
    count_near_copies(splits, splits.report)
    print("\n".join(splits.report.lines()))
    for name in ("valid", "test"):
        print(f"{name} catalogs: {', '.join(splits.catalogs[name])}")


if __name__ == "__main__":
    main()
