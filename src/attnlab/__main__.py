"""``python -m attnlab ...`` is the ``attnlab`` command (so ``torchrun -m attnlab train ...`` works)."""

import sys

from attnlab.cli.main import run

sys.exit(run())
