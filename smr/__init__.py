"""smr: one replicated-log contract, several consensus backends, one simulator to compare them.

The public surface:

* the contract -- :class:`ReplicaCore`, its inputs (:class:`Start`, :class:`Tick`,
  :class:`Receive`, :class:`ClientRequest`) and its output batch :class:`Ready`;
* your own state machine -- subclass :class:`StateMachine`, mark methods with
  :func:`command` / :func:`query`; name it by class or ``module:Class``
  (:func:`resolve_app`); call it through :class:`AppClient` (``cluster.client(App)``);
  failures come back as :class:`CommandError`;
* membership -- every cluster client is a :class:`MembershipClient` (``add_node``,
  ``remove_node``, ``replace_node``, ``membership()`` -> :class:`Membership`);
* ready-made state machines -- :class:`ReplDict`, :class:`ReplCounter`,
  :class:`ReplLockManager`, and the workloads' :class:`KVStore`, :class:`Counter`,
  :class:`WriteOnceMap`;
* the simulator -- :func:`simulate` and :class:`SimConfig` (in :mod:`smr.sim`);
* the in-process live cluster -- :func:`open_local_cluster`;
* histories -- :class:`Operation`, :class:`HistoryRecorder`;
* backends -- :func:`get_backend`, :func:`backend_names`, :func:`register_backend`
  (see :mod:`smr.registry` for the built-ins table and the ``smr.backends``
  entry-point group).

Importing :mod:`smr` stays light: the contract is imported at once, the
runtimes (the simulator, the live cluster, which pull in trio, YAML and
cattrs) on first use of their names (PEP 562), and no protocol package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import commands as commands
from .commands import Command as Command
from .errors import ConfigError as ConfigError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .history import HistoryRecorder as HistoryRecorder
from .history import Operation as Operation
from .history import Outcome as Outcome
from .replica import Backend as Backend
from .replica import ClientRequest as ClientRequest
from .replica import Synced as Synced
from .replica import Committed as Committed
from .replica import Ready as Ready
from .replica import Receive as Receive
from .replica import ReplicaConfig as ReplicaConfig
from .replica import ReplicaCore as ReplicaCore
from .replica import ReplicaStatus as ReplicaStatus
from .replica import Reply as Reply
from .replica import ReplyStatus as ReplyStatus
from .replica import Send as Send
from .replica import Start as Start
from .replica import Tick as Tick
from .replica import Write as Write
from .replica import backend_names as backend_names
from .replica import get_backend as get_backend
from .replica import register_backend as register_backend
from .apps import AppSpec as AppSpec
from .apps import app_spec as app_spec
from .apps import resolve_app as resolve_app
from .client import AppClient as AppClient
from .client import MembershipClient as MembershipClient
from .client import commands_for as commands_for
from .machine import CommandError as CommandError
from .machine import SessionExpired as SessionExpired
from .machine import StateMachine as StateMachine
from .machine import command as command
from .machine import query as query
from .membership import Membership as Membership
from .sessions import Applier as Applier
from .sessions import ExecutionWatch as ExecutionWatch
from .sessions import SessionLimits as SessionLimits
from .state_machines import Counter as Counter
from .state_machines import KVStore as KVStore
from .state_machines import ReplCounter as ReplCounter
from .state_machines import ReplDict as ReplDict
from .state_machines import ReplLockManager as ReplLockManager
from .state_machines import WriteOnceMap as WriteOnceMap
from .values import CorruptValue as CorruptValue
from .values import Value as Value

if TYPE_CHECKING:
    from .live import LocalCluster as LocalCluster
    from .net import connect as connect
    from .live import open_local_cluster as open_local_cluster
    from .sim import SimConfig as SimConfig
    from .sim import simulate as simulate

__version__ = "0.1.0"

#: The heavy re-exports, imported on first use: name -> the module that defines it.
_LAZY: dict[str, str] = {
    "LocalCluster": ".live",
    "connect": ".net",
    "open_local_cluster": ".live",
    "SimConfig": ".sim",
    "simulate": ".sim",
}


def __getattr__(name: str) -> Any:
    """Import a heavy re-export (the simulator, the live cluster) on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *_LAZY})
