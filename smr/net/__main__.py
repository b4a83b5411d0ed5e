"""``python -m smr.net``: the TCP runtime's commands without the rest of ``smr``."""

import sys

from .cli import main

sys.exit(main())
