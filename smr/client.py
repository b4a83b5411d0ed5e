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

import random
from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar

from .commands import Command
from .errors import LocalProtocolError
from .machine import CommandError, OpSpec, SessionExpired, StateMachine
from .membership import GET_MEMBERSHIP, Membership, MembershipError, is_membership, membership_command
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
    Neither does a membership command's: a backend may write a change as an
    entry of no session (Raft does), and answer ``get`` as a query.
    """
    if is_membership(command):
        return False
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


#: Error kinds a membership change is retried on (with back-off, until its deadline): the leader refused it
#: while another change is in progress, or it did not fit the configuration it was applied to.
RETRIED_KINDS = frozenset({"ChangeInProgress", "MembershipError"})
#: Back-off between attempts at a refused change, and between reads while waiting for one to take effect.
CHANGE_PAUSE_MIN_S, CHANGE_PAUSE_MAX_S = 0.05, 1.0
#: How long a membership call waits by default for its change to take effect.
CHANGE_TIMEOUT_S = 60.0


class MembershipClient:
    """The membership calls every cluster client has: ``membership()``, ``add_node``, ``remove_node``,
    ``replace_node``.

    A client class gets them by inheriting this and having ``submit``.  A
    change is a client request carrying :func:`smr.membership.membership_command`;
    a change the leader refuses because another is in progress
    (``ChangeInProgress``, ``MembershipError``) is retried with back-off until
    the call's deadline.  Each call is idempotent by its outcome: asking again
    for a change that has been made (an earlier attempt whose answer was
    lost) waits for it instead of failing.  A call that cannot finish by its
    deadline raises ``TimeoutError`` (the change may still happen).
    """

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 40) -> Value:
        """Run ``command`` through the replicated log once and return its result (the client's own)."""
        raise NotImplementedError

    async def membership(self, *, timeout: float = 1.0, attempts: int = 40) -> Membership:
        """The configuration the cluster has applied: voters, learners, nodes joining and their addresses.

        Raises CommandError (kind ``MembershipError``) on a backend without membership.
        """
        found = Membership.from_value(await self.submit(GET_MEMBERSHIP, timeout=timeout, attempts=attempts))
        self._saw_membership(found)
        return found

    def _saw_membership(self, membership: Membership) -> None:
        """Hook: a client that dials nodes learns the addresses of those added at run time."""

    async def add_node(self, node: str, address: str = "", *, timeout: float = CHANGE_TIMEOUT_S) -> Membership:
        """Add ``node`` (listening at ``address``, "host:port") and return once it is a voter.

        It joins as a learner; the leader promotes it once it has caught up.
        Args:
            node: the new node's id (never a current member's).
            address: where it listens, for runtimes that dial their peers (the TCP runtime); "" for none.
            timeout: seconds until TimeoutError.
        """
        return await self._change(membership_command("add", node, address),
                                  lambda m: node in m.voters and not m.joint,
                                  lambda m: node in m.members, f"add {node}", timeout)

    async def start_adding_node(self, node: str, address: str = "", *,
                                timeout: float = CHANGE_TIMEOUT_S) -> Membership:
        """Add ``node`` as :meth:`add_node` does, but return once the change is committed: it is then a learner,
        which the leader promotes once it has caught up (a node that must join before it can catch up)."""
        return await self._change(membership_command("add", node, address), lambda m: node in m.members,
                                  lambda m: node in m.members, f"add {node}", timeout)

    async def remove_node(self, node: str, *, timeout: float = CHANGE_TIMEOUT_S) -> Membership:
        """Remove ``node`` (a voter or a learner) and return once the change is committed.

        Removing the leader is allowed: it steps down once the change commits.
        """
        return await self._change(membership_command("remove", node),
                                  lambda m: node not in m.members and not m.joint,
                                  lambda m: node not in m.members, f"remove {node}", timeout)

    async def replace_node(self, old: str, new: str, address: str = "", *,
                           timeout: float = CHANGE_TIMEOUT_S) -> Membership:
        """Replace voter ``old`` by ``new`` (listening at ``address``); return once ``new`` votes and ``old`` does not.

        ``new`` joins as a learner and takes ``old``'s place in one change once it has caught up.
        """
        return await self._change(membership_command("replace", old, new, address),
                                  lambda m: new in m.voters and old not in m.members and not m.joint,
                                  lambda m: new in m.members, f"replace {old} by {new}", timeout)

    async def _change(self, command: Command, done: Callable[[Membership], bool],
                      made: Callable[[Membership], bool], what: str, timeout: float) -> Membership:
        """Ask for ``command`` until the cluster takes it (``made``), then wait until ``done``; the membership."""
        import trio  # the client runtimes' loop; not imported with smr

        deadline = trio.current_time() + timeout
        pause = CHANGE_PAUSE_MIN_S
        settled = 0  # refusals in a row with no change in progress: the change does not fit
        current: Membership | None = None
        while True:
            try:
                answer = await self._bounded(command, deadline)
                try:  # applied, so committed; the answer is the configuration it made
                    current = Membership.from_value(answer)
                    self._saw_membership(current)
                except (ValueError, TypeError):
                    current = await self._read(deadline, what)
                break
            except CommandError as exc:
                if exc.kind not in RETRIED_KINDS:
                    raise
                refusal: Exception = exc
            except TimeoutError as exc:  # no answer: maybe applied, maybe not; the configuration says
                refusal = exc
            current = await self._read(deadline, what)
            if made(current):
                break  # an earlier attempt of ours (or someone else's) made it
            busy = current.joint or bool(current.joining)
            settled = settled + 1 if getattr(refusal, "kind", None) == "MembershipError" and not busy else 0
            if settled >= 2:  # refused twice with nothing in progress: it can never fit
                raise refusal
            if trio.current_time() + pause > deadline:
                raise TimeoutError(f"{what}: not taken within {timeout:g} s (last refusal: {refusal})") from refusal
            await trio.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, CHANGE_PAUSE_MAX_S)
        pause = CHANGE_PAUSE_MIN_S
        while not done(current):
            if not made(current):
                raise MembershipError(f"{what}: undone by another change before it took effect "
                                      f"(voters {', '.join(current.voters)})")
            if trio.current_time() + pause > deadline:
                raise TimeoutError(f"{what}: taken but not in effect within {timeout:g} s (voters "
                                   f"{', '.join(current.voters)}, learners {', '.join(current.learners) or 'none'})")
            await trio.sleep(pause)
            pause = min(pause * 2, CHANGE_PAUSE_MAX_S / 4)
            current = await self._read(deadline, what)
        return current

    async def _bounded(self, command: Command, deadline: float) -> Value:
        """``submit`` with attempts of at most 1 s, as many as fit before ``deadline`` (at least one)."""
        import trio

        left = deadline - trio.current_time()
        return await self.submit(command, timeout=max(0.05, min(1.0, left)), attempts=max(1, int(left)))

    async def _read(self, deadline: float, what: str) -> Membership:
        """The applied membership, read before ``deadline`` (TimeoutError naming ``what`` if it cannot be)."""
        try:
            found = Membership.from_value(await self._bounded(GET_MEMBERSHIP, deadline))
        except TimeoutError:
            raise TimeoutError(f"{what}: the cluster did not answer a membership read in time") from None
        self._saw_membership(found)
        return found
