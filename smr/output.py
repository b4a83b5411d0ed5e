"""How every command prints its ``--json`` document."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(doc: Any) -> None:
    """Print ``doc`` as one indented JSON document with sorted keys (unknown types as strings)."""
    json.dump(doc, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
