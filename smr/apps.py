"""One way to name the state machine a cluster replicates, for every runtime and the CLI.

An *app* is given as any of:

* the class itself (a subclass of :class:`smr.StateMachine`);
* ``"module:Class"`` or ``"package.module:Class"`` -- imported;
* ``"path/to/file.py:Class"`` -- loaded from that file;
* a built-in name: ``kv``, ``counter``, ``write_once``, ``dict``,
  ``repl_counter``, ``locks``.

:func:`resolve_app` turns any of them into the class (checking it once:
it builds with no arguments and its snapshot round-trips), and
:func:`app_spec` turns a class into the string a server process can import.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Union

from .errors import ConfigError
from .machine import StateMachine, describe_exception
from .state_machines import STATE_MACHINES

#: What names an app: a StateMachine subclass or a spec string.
AppSpec = Union[str, type[StateMachine]]

_CHECKED: set[type[StateMachine]] = set()
_BY_SPEC: dict[str, type[StateMachine]] = {}


def _load_file(path: Path) -> Any:
    """Import a Python file as a module (once per path)."""
    name = f"smr_app_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"  # the same in every process
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_attribute(spec: str, what: str = "app") -> Any:
    """The object a ``module:attr`` or ``path/file.py:attr`` spec names (ConfigError says why not)."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise ConfigError(f"{what} {spec!r}: give 'module:attribute' or 'file.py:attribute'")
    added = os.getcwd() not in sys.path
    if added:  # like `python -m`: modules beside the caller import (for this import only)
        sys.path.insert(0, os.getcwd())
    try:
        if where.endswith(".py"):
            path = Path(where).resolve()
            if not path.is_file():
                raise ConfigError(f"{what} {spec!r}: no file {where}")
            module = _load_file(path)
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except BaseException as exc:  # SystemExit at import too: a bad module must not end the caller
        raise ConfigError(f"{what} {spec!r}: cannot import {where}: {type(exc).__name__}: "
                          f"{describe_exception(exc)}") from None
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())
    found = module
    for part in attr.split("."):  # a nested class: Outer.Inner
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"{what} {spec!r}: {where} has no attribute {attr!r}") from None
    return found


def _from_string(spec: str) -> Any:
    if spec in STATE_MACHINES:
        return STATE_MACHINES[spec]
    if spec in _BY_SPEC:
        return _BY_SPEC[spec]
    if ":" not in spec:
        raise ConfigError(f"app {spec!r}: give a built-in ({', '.join(sorted(STATE_MACHINES))}), "
                          f"'module:Class' or 'file.py:Class'")
    return import_attribute(spec)


def resolve_app(app: AppSpec) -> type[StateMachine]:
    """Return the state-machine class ``app`` names, checked once; ConfigError says what is wrong."""
    cls = _from_string(app) if isinstance(app, str) else app
    if not (isinstance(cls, type) and issubclass(cls, StateMachine)):
        raise ConfigError(f"app {app!r} is not a subclass of smr.StateMachine")
    if cls not in _CHECKED:
        try:
            machine = cls()
        except BaseException as exc:
            raise ConfigError(f"app {cls.__name__}: building it with no arguments failed: "
                              f"{type(exc).__name__}: {describe_exception(exc)}") from None
        try:
            data = machine.snapshot()
            cls().restore(data)
        except BaseException as exc:
            raise ConfigError(f"app {cls.__name__}: its snapshot does not round-trip: "
                              f"{type(exc).__name__}: {describe_exception(exc)}") from None
        _CHECKED.add(cls)
    return cls


def _importable_anywhere(module: Any) -> bool:
    """True if ``module`` imports by name from the working directory or an installed location."""
    path = getattr(module, "__file__", None)
    if path is None:
        return True  # a built-in or namespace module: its name is all there is
    top = module.__name__.split(".")[0]
    spec = importlib.util.find_spec(top)
    origin = Path(spec.origin if spec is not None and spec.origin else path).resolve()
    root = origin.parent.parent if origin.name == "__init__.py" else origin.parent  # the sys.path entry
    return root == Path.cwd().resolve() or any(p in ("site-packages", "dist-packages") for p in root.parts) \
        or any(Path(p).resolve() == root for p in _installed_paths())


def _installed_paths() -> list[str]:
    """Where installed packages live (stdlib and site directories)."""
    import sysconfig

    return [sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib") if sysconfig.get_path(k)]


def app_spec(app: AppSpec, *, portable: bool = True) -> str:
    """The string that names ``app`` (a built-in name, module:Class or file.py:Class).

    With ``portable`` (for another process) a class that only this process can
    see -- defined in a function or an interactive session -- is a ConfigError;
    without it such a class gets a name that resolves in this process only.
    """
    cls = resolve_app(app)
    if STATE_MACHINES.get(cls.name) is cls:
        return cls.name
    module = sys.modules.get(cls.__module__)
    qualname = cls.__qualname__
    path = getattr(module, "__file__", None)
    problem = None
    if "<locals>" in qualname:
        problem = f"app {qualname} is defined inside a function; another process cannot import it"
    elif cls.__module__ == "__main__" or cls.__module__.startswith("smr_app_") or not _importable_anywhere(module):
        if path is None:
            problem = f"app {qualname} lives in an interactive session; put it in a file"
        spec = f"{Path(path).resolve()}:{qualname}" if path is not None else ""
    else:
        spec = f"{cls.__module__}:{qualname}"
    if problem is not None:
        if portable:
            raise ConfigError(problem)
        spec = f"{cls.__module__}:{qualname}#{id(cls):x}"  # this process only
    _BY_SPEC[spec] = cls
    return spec
