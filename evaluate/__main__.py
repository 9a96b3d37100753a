"""``python -m evaluate``: see :mod:`evaluate.cli`."""

import sys

from .cli import main

sys.exit(main())
