"""Built-in scenario files shipped with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_scenarios() -> list[Path]:
    """Return the paths of the built-in scenario files, sorted by name."""
    root = resources.files(__name__)
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml"))
