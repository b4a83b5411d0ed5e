"""The typed client proxy: call a state machine's methods on a cluster as if it were local.

::

    bank = cluster.client(Bank)            # any runtime: local, TCP
    await bank.deposit("alice", 10)        # a command: through the log, exactly once
    await bank.balance("alice")            # a query

The proxy checks each call against the method's signature and every argument
against the data model (:mod:`smr.values`) before anything is sent: a call
that does not fit is a ``TypeError`` at the call site, the same in every
runtime.  A method that raised on the replicas raises
:class:`~smr.machine.CommandError` here.  :func:`commands_for` builds the same
:class:`~smr.commands.Command` values without sending them (for simulator
workloads and tests).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar

from .commands import Command
from .errors import LocalProtocolError
from .machine import CommandError, OpSpec, SessionExpired, StateMachine
from .replica import ClientRequest, ReplyStatus
from .values import Value

M = TypeVar("M", bound=StateMachine)


class Session(Protocol):
    """What every runtime's client session offers: one command at a time, exactly once."""

    async def submit(self, command: Command, *, timeout: float = ..., attempts: int = ...) -> Value:
        """Run ``command`` through the replicated log once and return its result."""
        ...


def opens_session(app: type[StateMachine] | None, command: Command) -> bool:
    """True if an answer to ``command`` proves the replicas hold a session for its client.

    A query may be answered without the log (Raft's ReadIndex), so no session
    is made for it; only a command's answer lets a client claim it was answered.
    """
    if app is None:
        return True
    spec = app.operations.get(command.op)
    return spec is None or not spec.read_only


class SessionState:
    """A client's side of its exactly-once session: id, sequence numbers, what it has had answered.

    Every runtime's client keeps one: :meth:`request` makes the next
    ClientRequest, :meth:`answered` turns an ``ok``/``error`` reply into the
    result or the CommandError to raise.  After ``SessionExpired`` the replicas
    hold no session for this id, so the client carries on under a new one.

    A client of a real cluster has its session assigned by the cluster
    (``client_id`` None: open one through the log with
    :data:`~smr.commands.REGISTER_SESSION` and pass the answer to
    :meth:`opened`); other runtimes name their own (``client_id`` given;
    sequence numbers then run on across renewals, so a late answer can
    never match a new request).
    """

    def __init__(self, client_id: str | None, app: type[StateMachine] | None = None) -> None:
        self.base_id = client_id
        self.client_id = client_id
        self.app = app
        self.seq = 0
        #: The highest seq whose command was answered (sent with each request: see smr.sessions).
        self.acked = 0
        self.renewals = 0

    def opened(self, client_id: str) -> None:
        """Carry on under ``client_id``, a session the cluster just assigned."""
        self.client_id, self.seq, self.acked = client_id, 0, 0

    def request(self, command: Command) -> ClientRequest:
        """The next request: a new sequence number, the same client id."""
        if self.client_id is None:
            raise LocalProtocolError("this client has no session yet: open one first")
        self.seq += 1
        return ClientRequest(self.client_id, self.seq, command, self.acked)

    def answered(self, command: Command, status: str, result: Value) -> Value:
        """Record the answer to the current request; return its result, or raise its CommandError."""
        if opens_session(self.app, command):
            self.acked = self.seq
        if status != ReplyStatus.ERROR:
            return result
        error = CommandError.from_result(result)
        if isinstance(error, SessionExpired):
            self.renewals += 1
            if self.base_id is None:
                self.client_id = None  # the next call opens a new session first
            else:
                self.client_id, self.acked = f"{self.base_id}.{self.renewals}", 0
        raise error


def _lookup(app: type[StateMachine], name: str) -> OpSpec:
    spec = app.operations.get(name)
    if spec is None:
        raise AttributeError(f"{app.__name__} has no command or query {name!r} "
                             f"(it has: {', '.join(sorted(app.operations)) or 'none'})")
    return spec


class CommandBuilder(Generic[M]):
    """``commands_for(App).method(args)`` returns the Command a call would send."""

    def __init__(self, app: type[M]) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Callable[..., Command]:
        spec = _lookup(self.app, name)
        owner = self.app.__name__

        def build(*args: Any, **kwargs: Any) -> Command:
            return spec.build(args, kwargs, owner)

        build.__name__ = name
        build.__doc__ = spec.function.__doc__
        return build


def commands_for(app: type[M]) -> CommandBuilder[M]:
    """Return a builder of ``app``'s Commands (checked like a proxy call, nothing sent)."""
    return CommandBuilder(app)


class AppClient(Generic[M]):
    """A client session of a cluster that runs ``app``, with its methods as coroutines."""

    def __init__(self, app: type[M], session: Session, *, timeout: float | None = None,
                 attempts: int | None = None) -> None:
        self.app = app
        self.session = session
        self._options: dict[str, Any] = {k: v for k, v in (("timeout", timeout), ("attempts", attempts))
                                         if v is not None}

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Value]]:
        if name.startswith("__"):
            raise AttributeError(name)
        spec = _lookup(self.app, name)
        owner, session, options = self.app.__name__, self.session, self._options

        async def call(*args: Any, **kwargs: Any) -> Value:
            return await session.submit(spec.build(args, kwargs, owner), **options)

        call.__name__ = name
        call.__doc__ = spec.function.__doc__
        return call

    async def submit(self, command: Command, **options: Any) -> Value:
        """Send a ready-made Command through this proxy's session."""
        return await self.session.submit(command, **{**self._options, **options})

    def __repr__(self) -> str:
        return f"<{self.app.__name__} client {getattr(self.session, 'client_id', '')}>"
