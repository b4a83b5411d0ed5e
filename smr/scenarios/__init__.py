"""Built-in scenario files shipped with the package, and finding a scenario by file or by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError


def builtin_scenarios() -> list[Path]:
    """Return the paths of the built-in scenario files, sorted by name."""
    root = resources.files(__name__)
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml"))


def builtin_scenario_names() -> list[str]:
    """The names the built-in scenarios are given by on the command line (``kv-leader-crash``), sorted."""
    return [path.stem for path in builtin_scenarios()]


def find_scenario(name_or_path: str | Path) -> tuple[Path, bool]:
    """The scenario file an argument names, and whether it is a built-in one.

    A path that exists is that file (even if a built-in has the same name);
    otherwise ``kv-leader-crash`` or ``kv-leader-crash.yaml`` names a built-in
    scenario.  Anything else is a ConfigError that lists the built-in names.
    """
    given = Path(name_or_path)
    if given.exists():
        return given, False
    by_name = {path.stem: path for path in builtin_scenarios()}
    stem = given.name[:-len(".yaml")] if given.name.endswith(".yaml") else given.name
    if str(given) in (stem, f"{stem}.yaml") and stem in by_name:
        return by_name[stem], True
    raise ConfigError(f"cannot read scenario: no such file, nor a built-in scenario of that name "
                      f"(built-in: {', '.join(by_name)})", file=str(name_or_path))
