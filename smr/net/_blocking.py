"""A blocking client of a TCP cluster, for programs that are not written with trio.

::

    with smr.connect("cluster.yaml", Bank) as bank:
        bank.deposit("alice", 100)          # returns when the command is applied
        print(bank.balance("alice"))

The client runs :func:`~smr.net.open_tcp_client` in a background thread with
its own trio loop; each call hands one request to that loop and waits for the
answer.  Calls from several threads at once are safe: each borrows an idle
session from the connection's pool, so no two share a sequence number.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Generic, cast

import trio

from smr.apps import AppSpec, resolve_app
from smr.client import M, _lookup
from smr.commands import Command
from smr.errors import ConfigError, LocalProtocolError
from smr.machine import StateMachine
from smr.values import Value

from ._client import TcpCluster, open_tcp_client
from ._config import ClusterConfig, load_cluster

START_TIMEOUT_S = 10.0


class BlockingClient(Generic[M]):
    """A connection to a cluster whose app's methods are plain (blocking) calls; see the module docstring."""

    def __init__(self, cluster: str | Path | ClusterConfig, app: AppSpec | None = None, *,
                 timeout: float = 1.0, attempts: int = 40) -> None:
        self.config = cluster if isinstance(cluster, ClusterConfig) else load_cluster(cluster)
        runs = resolve_app(self.config.state_machine)
        self.app = cast("type[M]", resolve_app(app) if app is not None else runs)
        if self.app.name != runs.name:
            raise ConfigError(f"this cluster runs {runs.name}, not {self.app.name}", file=self.config.source,
                              field="state_machine")
        self._timeout, self._attempts = timeout, attempts
        self._cluster: TcpCluster | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def open(self) -> "BlockingClient[M]":
        """Start the background loop and connect; raise what went wrong if it cannot start."""
        if self._thread is not None:
            raise LocalProtocolError("this client is already open")
        self._thread = threading.Thread(target=self._run, name="smr-blocking-client", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError(f"the client loop did not start within {START_TIMEOUT_S} s")
        if self._failure is not None:
            raise self._failure
        return self

    def close(self) -> None:
        """Stop the background loop and close every connection."""
        if self._thread is None:
            return
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass  # the loop already ended (it failed): nothing left to stop
        self._thread.join()
        self._thread = None

    def __enter__(self) -> "BlockingClient[M]":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to open() or to the next call
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        async with open_tcp_client(self.config, prefix="blocking") as cluster:
            self._cluster = cluster
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()

    # ----------------------------------------------------------------- calls
    def submit(self, command: Command) -> Value:
        """Run ``command`` through the replicated log once; block until it is applied."""
        cluster, token = self._cluster, self._token
        if cluster is None or token is None or self._thread is None:
            raise LocalProtocolError("the client is not open (use it in a `with` block)")
        return trio.from_thread.run(
            lambda: cluster.submit(command, timeout=self._timeout, attempts=self._attempts), trio_token=token)

    def __getattr__(self, name: str) -> Callable[..., Value]:
        if name.startswith("_"):
            raise AttributeError(name)
        spec = _lookup(self.app, name)
        owner = self.app.__name__

        def call(*args: Any, **kwargs: Any) -> Value:
            return self.submit(spec.build(args, kwargs, owner))

        call.__name__ = name
        call.__doc__ = spec.function.__doc__
        return call


def connect(cluster: str | Path | ClusterConfig, app: type[StateMachine] | str | None = None, *,
            timeout: float = 1.0, attempts: int = 40) -> BlockingClient[Any]:
    """A blocking client of ``cluster`` (use it in ``with``): ``app``'s methods become plain calls."""
    return BlockingClient(cluster, app, timeout=timeout, attempts=attempts)
