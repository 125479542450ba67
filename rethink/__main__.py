"""``python -m rethink``: the same command line as ``rethink``."""

import sys

from .cli import main

sys.exit(main())
