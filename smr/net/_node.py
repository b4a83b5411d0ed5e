"""An embedded node: one replica of a TCP cluster running inside the caller's own trio program.

PySyncObj's shape on this project's contract::

    async with smr.net.open_node("cluster.yaml", "n1", app=Bank) as node:
        bank = node.client(Bank)
        await bank.deposit("alice", 10)

Each process of the cluster opens its own node (same cluster file, its own
id).  A call made through ``node.client(...)`` enters this replica's core
directly when it leads -- no frame, no hop, no encoding of the answer -- and
travels one hop to the leader when it does not, following redirects and
retrying with the same (client id, sequence number) as any TCP client does.
Everything else is the replica ``smr serve`` runs (it is a thin program over
this): the same durable storage and crash recovery, the same authenticated
peer connections, and the same port for remote clients and ``smr status``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast, overload

import attrs
import trio

from smr.apps import AppSpec, app_spec
from smr.client import AppClient, M, MembershipClient
from smr.commands import Command
from smr.driver import current_leader
from smr.errors import ConfigError
from smr.values import Value

from ._client import TcpClient, TcpCluster
from ._config import ClusterConfig, load_cluster
from ._messages import StatusReport
from ._server import NodeServer


class Node(MembershipClient):
    """A replica running in this process, with sessions that enter its core directly; see :func:`open_node`.

    It changes the cluster's membership as any client does (:meth:`add_node`,
    :meth:`remove_node`, :meth:`replace_node`, :meth:`membership`); once a
    committed configuration no longer names this node, :attr:`retired` is set
    and the replica stops serving (the block may go on as a client).
    """

    def __init__(self, server: NodeServer, cluster: TcpCluster, port: int) -> None:
        self.server = server
        self.cluster = cluster
        #: The TCP port this node listens on (peers and remote clients).
        self.port = port

    @property
    def id(self) -> str:
        """This node's id in the cluster file."""
        return self.server.id

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Every node of the cluster, in cluster-file order."""
        return self.server.config.node_ids

    @property
    def is_leader(self) -> bool:
        """True if this replica leads now (its sessions' calls then take no hop); never while its disk fails."""
        return self.server.disk_fault is None and self.server.core.status().is_leader

    @property
    def leader(self) -> str | None:
        """Who this replica believes leads (None: nobody it knows of, or its disk is failing)."""
        if self.server.disk_fault is not None:
            return None
        status = self.server.core.status()
        return self.id if status.is_leader else status.leader

    @property
    def retired(self) -> bool:
        """True once a committed configuration no longer names this node (it then stops serving)."""
        return self.server.retired.is_set()

    async def wait_retired(self) -> None:
        """Wait until this node has left the cluster and stopped serving."""
        await self.server.retired.wait()
        while not self.server.stopped:
            await trio.sleep(0.05)

    def status(self) -> StatusReport:
        """This node's status and counters (what ``smr status`` shows for it)."""
        return self.server.report()

    @overload
    def client(self) -> TcpClient: ...

    @overload
    def client(self, app: type[M]) -> AppClient[M]: ...

    def client(self, app: type[M] | None = None) -> TcpClient | AppClient[M]:
        """A new session (own client id and sequence numbers); given the app class, its typed proxy."""
        if app is None:
            return self.cluster.client()
        return self.cluster.client(app)

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 40) -> Value:
        """Run ``command`` through the replicated log once and return its result."""
        return await self.cluster.submit(command, timeout=timeout, attempts=attempts)

    async def wait_for_leader(self, *, timeout: float = 10.0) -> str:
        """Wait until some node of the cluster leads and return its id; TimeoutError after ``timeout`` s."""
        with trio.move_on_after(timeout):
            while True:
                leader = self.leader
                if leader is None:
                    leader = current_leader(r for r in (await self.cluster.statuses(timeout=0.5)).values()
                                            if r is not None)
                if leader is not None:
                    return leader
                await trio.sleep(0.02)
        raise TimeoutError(f"{self.id}: no leader within {timeout} s")


def default_data_dir(config: ClusterConfig, node_id: str) -> Path:
    """Where node ``node_id`` keeps its data unless told: ``data/<node>`` beside the cluster file."""
    source = Path(config.source) if config.source is not None else None
    if source is None or not source.is_file():
        raise ConfigError(f"{node_id}: no data directory given, and the cluster has no file to put one beside "
                          f"(pass data_dir=)", file=config.source)
    return source.resolve().parent / "data" / node_id


@asynccontextmanager
async def open_node(cluster: str | Path | ClusterConfig, node_id: str, *, app: AppSpec | None = None,
                    data_dir: str | Path | None = None, rejoin_empty: bool = False) -> AsyncIterator[Node]:
    """Run replica ``node_id`` of ``cluster`` inside this trio program until the block ends.

    Args:
        cluster: a cluster file (or a loaded :class:`ClusterConfig`).
        node_id: which of its nodes this process is.
        app: the state machine (a class, a built-in name or a spec); default: the cluster file's.
        data_dir: this node's durable storage; default ``data/<node_id>`` beside the cluster file.
        rejoin_empty: if the directory was emptied in an initialised cluster, have the cluster remove
            this id and add it again, and rejoin (``smr serve --rejoin-empty``), instead of staying out.

    Yields the :class:`Node` once it has recovered from disk and is listening
    (a leader may not be elected yet: calls wait for one, or use
    :meth:`Node.wait_for_leader`).  An exception raised in the block comes out
    as itself, not wrapped in an exception group.
    """
    config = cluster if isinstance(cluster, ClusterConfig) else load_cluster(cluster)
    if app is not None:  # the class itself: it need not be importable by the other processes' paths
        config = attrs.evolve(config, state_machine=app_spec(app, portable=False))
    config.address(node_id)  # a ConfigError naming the file if there is no such node
    directory = Path(data_dir) if data_dir is not None else default_data_dir(config, node_id)
    server = NodeServer(config, node_id, directory, rejoin_empty=rejoin_empty)
    raised: BaseException | None = None
    async with trio.open_nursery() as nursery:
        port = cast(int, await nursery.start(server.run))
        tcp = TcpCluster(config, nursery, prefix=f"node-{node_id}", local=server)
        try:
            yield Node(server, tcp, port)
        except BaseException as exc:  # re-raised below, once the node has stopped
            raised = exc
        finally:
            nursery.cancel_scope.cancel()
            await tcp.aclose()
    if raised is not None:
        raise raised
