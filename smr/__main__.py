"""``python -m smr``: the same as the ``smr`` command."""

import sys

from .cli import main

sys.exit(main())
