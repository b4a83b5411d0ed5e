"""Where backends come from: a lazy table of built-ins, an entry-point group, and programmatic registration.

Three sources, looked up in this order by :func:`get_backend`:

* **registered** -- :class:`~smr.replica.Backend` objects handed to
  :func:`register_backend` by a program or a test (they win over the others);
* **built-in** -- :data:`BUILTIN_BACKENDS`, a table from name to
  ``"module:attribute"`` (pygments keeps its lexers the same way): a module is
  imported only when one of its backends is asked for, so ``import smr`` loads
  no protocol at all;
* **plugins** -- the ``smr.backends`` entry-point group (:data:`ENTRY_POINT_GROUP`),
  read with :mod:`importlib.metadata`, as pytest and Hypothesis find their
  plugins.  An installed package declares, in its ``pyproject.toml``::

      [project.entry-points."smr.backends"]
      my-backend = "my_package.backend:BACKEND"

  and ``smr backends``, ``smr sim --backend my-backend``, ``smr compare`` and
  ``smr conformance`` find it.  The attribute must be a ``Backend`` whose
  ``name`` is the entry point's name.  A plugin that fails to load raises
  :class:`BackendLoadError` naming it when it is asked for, and is left out
  (with a :class:`BackendLoadWarning`) when backends are filtered by a property;
  the other backends are never affected.

Listing names (:func:`backend_names`) imports nothing.  A property of a
backend (``replicated_log``, ``description``) lives on its ``Backend`` object
only, so asking for it loads that backend: the callers that filter on it
(compare, conformance, ``smr backends``) go on to run or describe every
backend they keep anyway, and one copy of the facts cannot drift.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from .errors import LocalProtocolError

if TYPE_CHECKING:
    from importlib import metadata

    from .replica import Backend

#: The entry-point group an outside package declares its backends in.
ENTRY_POINT_GROUP = "smr.backends"

#: Built-in backends: name -> "module:attribute" of its ``Backend``, imported on first use.
BUILTIN_BACKENDS: dict[str, str] = {
    "coordinator": "smr.backends.coordinator:BACKEND",
    "raft": "raft.backend:RAFT",
    "raft-pv-cq": "raft.backend:RAFT_PV_CQ",
    "multipaxos": "multipaxos.backend:BACKEND",
    "synod-coordinator": "synod.backends:COORDINATOR",
    "synod-majority": "synod.backends:MAJORITY",
    "synod-tiebreak": "synod.backends:TIEBREAK",
    "synod-paxos": "synod.backends:PAXOS",
    "bench-echo": "smr.bench:ECHO",
}

_REGISTERED: dict[str, Backend] = {}
_LOADED: dict[str, Backend] = {}  # built-ins and plugins already imported, by name


class BackendLoadError(LocalProtocolError):
    """A built-in or plugin backend could not be imported, or is not a proper ``Backend``."""


class BackendLoadWarning(UserWarning):
    """A plugin backend was left out of a listing because it failed to load."""


@attrs.frozen
class BackendSource:
    """Where backend ``name`` comes from: ``origin`` is "registered", "built-in", "plugin" or "shadowed".

    ``target`` is the ``"module:attribute"`` it loads from (empty when
    registered); ``distribution`` names the installed package that declared a
    plugin.
    """

    name: str
    origin: str
    target: str = ""
    distribution: str = ""

    def where(self) -> str:
        """A short human description of the source, e.g. "plugin (smr-echo-plugin 0.1)"."""
        if self.origin in ("plugin", "shadowed"):
            return f"{self.origin} ({self.distribution or self.target})"
        return self.origin


def register_backend(backend: Backend) -> Backend:
    """Make ``backend`` available by name to every runtime and command (it wins over a same-named one)."""
    _REGISTERED[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    """Return the backend called ``name``: registered, else built-in, else plugin (imported on first use)."""
    found = _REGISTERED.get(name) or _LOADED.get(name)
    if found is not None:
        return found
    source = _source_of(name)
    if source is None:
        raise LocalProtocolError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    backend = _load(source)
    _LOADED[name] = backend
    return backend


def backend_names(replicated_log_only: bool = False) -> list[str]:
    """Return every backend's name (only replicated logs if asked), sorted.

    Without the filter nothing is imported; with it every backend is loaded
    to read its ``replicated_log``, and a plugin that fails to load is left
    out with a :class:`BackendLoadWarning`.
    """
    names = sorted({*_REGISTERED, *BUILTIN_BACKENDS, *(ep.name for ep in _entry_points())})
    if not replicated_log_only:
        return names
    kept = []
    for name in names:
        try:
            backend = get_backend(name)
        except BackendLoadError as exc:
            if name in _REGISTERED or name in BUILTIN_BACKENDS:
                raise
            warnings.warn(f"{exc}; left out", BackendLoadWarning, stacklevel=2)
            continue
        if backend.replicated_log:
            kept.append(name)
    return kept


def backend_sources() -> list[BackendSource]:
    """Return where every backend name comes from, sorted by name (imports nothing).

    A plugin whose name a built-in or registered backend already takes is
    listed too, with origin "shadowed", so a user sees why it is not used.
    """
    sources = {name: BackendSource(name, "built-in", target) for name, target in BUILTIN_BACKENDS.items()}
    shadowed = []
    for ep in _entry_points():
        plugin = BackendSource(ep.name, "plugin", ep.value, _distribution(ep))
        if ep.name in sources or ep.name in _REGISTERED:
            if ep.value != BUILTIN_BACKENDS.get(ep.name):  # our own pyproject declares the built-ins
                shadowed.append(attrs.evolve(plugin, origin="shadowed"))
            continue
        sources[ep.name] = plugin
    for name in _REGISTERED:
        sources[name] = BackendSource(name, "registered")
    return sorted([*sources.values(), *shadowed], key=lambda s: (s.name, s.origin == "shadowed"))


def load_builtin_backends() -> list[Backend]:
    """Import every built-in backend (registering its wire messages) and return them in name order."""
    return [get_backend(name) for name in sorted(BUILTIN_BACKENDS)]


def forget_loaded() -> None:
    """Drop the cache of loaded built-ins and plugins, so the next lookup reads the entry points again."""
    _LOADED.clear()


# ------------------------------------------------------------------ helpers
def _entry_points() -> Iterable[metadata.EntryPoint]:
    from importlib import metadata  # imported here: reading installed packages is not free

    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ""


def _source_of(name: str) -> BackendSource | None:
    if name in BUILTIN_BACKENDS:
        return BackendSource(name, "built-in", BUILTIN_BACKENDS[name])
    plugins = [ep for ep in _entry_points() if ep.name == name]
    targets = sorted({ep.value for ep in plugins})
    if len(targets) > 1:
        dists = ", ".join(sorted(_distribution(ep) or ep.value for ep in plugins))
        raise BackendLoadError(f"backend {name!r} is declared by more than one entry point in group "
                               f"{ENTRY_POINT_GROUP!r} ({dists}); uninstall all but one")
    if not plugins:
        return None
    return BackendSource(name, "plugin", plugins[0].value, _distribution(plugins[0]))


def _load(source: BackendSource) -> Backend:
    from .replica import Backend

    what = (f"built-in backend {source.name!r} ({source.target})" if source.origin == "built-in" else
            f"plugin backend {source.name!r} (entry point {source.name} = {source.target} in group "
            f"{ENTRY_POINT_GROUP!r}" + (f", from {source.distribution})" if source.distribution else ")"))
    try:
        obj = _resolve(source.target)
    except Exception as exc:  # noqa: BLE001  (any import-time failure of a plugin is reported, naming it)
        raise BackendLoadError(f"{what} failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, Backend):
        raise BackendLoadError(f"{what} is {type(obj).__name__}, not an smr.replica.Backend")
    if obj.name != source.name:
        raise BackendLoadError(f"{what} is a Backend named {obj.name!r}; the names must match")
    return obj


def _resolve(target: str) -> Any:
    module_name, _, attribute = target.split("[")[0].partition(":")  # "mod:attr [extra]" too
    obj: Any = importlib.import_module(module_name.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        obj = getattr(obj, part)
    return obj
