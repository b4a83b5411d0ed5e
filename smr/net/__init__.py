"""The TCP runtime: one replica per process, authenticated frames, durable SQLite storage.

The public surface:

* :func:`open_node` -> :class:`Node` -- run one replica inside this trio
  program, with sessions that enter its core directly (``smr serve`` is a
  thin program over it); :func:`serve` / :class:`NodeServer` underneath;
* :func:`open_tcp_client` -> :class:`TcpCluster` (``submit``, ``client()``,
  ``client(App)``, ``status``; membership: ``add_node``, ``remove_node``,
  ``replace_node``, ``membership()``) and its sessions :class:`TcpClient`;
* :func:`connect` -> :class:`BlockingClient` -- the same for code without trio
  (the app's methods as plain blocking calls);
* :func:`load_cluster` / :func:`parse_cluster` -> :class:`ClusterConfig`;
* :class:`Storage` / :func:`open_storage` -- a node's durable map on disk;
* :class:`LocalTcpCluster` / :func:`open_local_tcp_cluster` -- a whole
  cluster of subprocesses on 127.0.0.1 (``smr cluster up``); nodes added at
  run time go in the cluster file's ``added`` (:func:`update_cluster_file`,
  ``smr cluster add/remove/status``).
"""

from ._blocking import BlockingClient as BlockingClient
from ._blocking import connect as connect
from ._client import CommandRefused as CommandRefused
from ._client import TcpClient as TcpClient
from ._client import TcpCluster as TcpCluster
from ._client import open_tcp_client as open_tcp_client
from ._config import ClusterConfig as ClusterConfig
from ._config import NodeAddress as NodeAddress
from ._config import format_address as format_address
from ._config import parse_address as parse_address
from ._config import dump_cluster as dump_cluster
from ._config import load_cluster as load_cluster
from ._config import parse_cluster as parse_cluster
from ._frames import FrameError as FrameError
from ._launcher import LocalTcpCluster as LocalTcpCluster
from ._launcher import free_ports as free_ports
from ._launcher import open_local_tcp_cluster as open_local_tcp_cluster
from ._launcher import update_cluster_file as update_cluster_file
from ._launcher import write_cluster_file as write_cluster_file
from ._messages import StatusQuery as StatusQuery
from ._node import Node as Node
from ._node import open_node as open_node
from ._messages import StatusReport as StatusReport
from ._server import NodeServer as NodeServer
from ._server import serve as serve
from ._transport import AuthenticationError as AuthenticationError
from ._storage import Storage as Storage
from ._storage import open_storage as open_storage
from ._values import CorruptValue as CorruptValue
from smr.client import MembershipClient as MembershipClient
from smr.membership import Membership as Membership
