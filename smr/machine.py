"""The state-machine API: a class whose methods are commands and queries.

Write a subclass of :class:`StateMachine`, mark the methods that change the
state with :func:`command` and the read-only ones with :func:`query`::

    class Bank(smr.StateMachine):
        def __init__(self) -> None:
            self.accounts: dict[str, int] = {}

        @smr.command
        def deposit(self, account: str, amount: int) -> int:
            self.accounts[account] = self.accounts.get(account, 0) + amount
            return self.accounts[account]

        @smr.query
        def balance(self, account: str) -> int:
            return self.accounts.get(account, 0)

Every replica calls the same methods in the same order, so a method must be
deterministic: no clock (use :attr:`StateMachine.log_time`), no randomness,
no I/O.  Arguments and results are :mod:`smr.values` (the JSON data model
plus bytes).  An exception a method raises is part of the replicated outcome:
every replica raises it at the same log index and the caller gets it as a
:class:`CommandError`; the state changes the method made before raising stay,
on every replica alike.

A method whose first parameter is called ``key`` is *keyed*: the key travels
in :attr:`smr.commands.Command.key`, so the linearizability checker can split
a history per key.  Snapshots are derived from the instance's attributes
(:func:`smr.values.to_json` with ``state=True``: plain data, tuples, dicts
with any plain keys); override :meth:`StateMachine.snapshot` and
:meth:`StateMachine.restore` for anything else.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, Callable, ClassVar, TypeVar

import attrs

from .commands import Command
from .errors import SMRError
from .values import CorruptValue, Value, canonical, from_json, to_json

F = TypeVar("F", bound=Callable[..., Any])

COMMAND, QUERY = "command", "query"
#: The operation every state machine answers with None: the no-op a new leader commits.
NOOP_OP = "noop"
#: Names the framework itself calls or reads on a state machine: no command or query may take them.
RESERVED = frozenset({NOOP_OP, "apply", "is_read_only", "snapshot", "restore", "log_time", "name", "operations"})


#: The longest error message an outcome carries (the rest is cut: replies stay small).
MAX_ERROR_CHARS = 2000


#: Memory addresses in default reprs (``<Foo object at 0x7f...>``) differ between replicas.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe_exception(exc: BaseException) -> str:
    """``str(exc)`` without memory addresses, cut to MAX_ERROR_CHARS -- or a stand-in if even that raises."""
    try:
        text = _ADDRESS.sub("", str(exc))
    except BaseException:  # an exception whose __str__ raises must not take the replica down
        return f"<unprintable {type(exc).__name__}>"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


class CommandError(SMRError):
    """A command was applied, and raised: ``kind`` is the exception's class name.

    Also raised for an unknown method (``UnknownCommand``), arguments that do
    not fit it (``BadArguments``) and a result that is not a value
    (``BadResult``).  The same error reaches the caller in every runtime.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def to_result(self) -> dict[str, Value]:
        """The reply's ``result`` that carries this error."""
        return {"error": self.kind, "message": self.message}

    @staticmethod
    def from_result(result: Value) -> "CommandError":
        """Rebuild the error an ``error`` reply carries (the right subclass for known kinds)."""
        if isinstance(result, dict):
            kind, message = str(result.get("error", "Error")), str(result.get("message", ""))
        else:
            kind, message = "Error", repr(result)
        return SessionExpired(message) if kind == SessionExpired.KIND else CommandError(kind, message)


class SessionExpired(CommandError):
    """The client's session was dropped: this call did not run, an earlier attempt of it may have.

    The client carries on under a new session; retry if running the call twice is harmless.
    """

    KIND = "SessionExpired"

    def __init__(self, message: str) -> None:
        super().__init__(self.KIND, message)


@attrs.frozen
class OpSpec:
    """One command or query of a state-machine class: how to call it and check a call."""

    name: str
    kind: str
    function: Callable[..., Any]
    signature: inspect.Signature
    keyed: bool
    min_args: int
    max_args: int

    @property
    def read_only(self) -> bool:
        """True for a query: it never changes the state."""
        return self.kind == QUERY

    def build(self, args: tuple[Any, ...], kwargs: dict[str, Any], owner: str) -> Command:
        """Bind a call's arguments to this method and return its Command (TypeError if they do not fit)."""
        try:
            bound = self.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{owner}.{self.name}{_public(self.signature)}: {exc}") from None
        bound.apply_defaults()
        values = list(bound.arguments.values())[1:]
        names = list(self.signature.parameters)[1:]
        where = [f"argument {n!r} of {owner}.{self.name}" for n in names]
        carried = tuple(canonical(v, w) for v, w in zip(values, where))
        if self.keyed:
            key = carried[0]
            if not isinstance(key, str):
                raise TypeError(f"{where[0]}: a key must be a str, got {type(key).__name__}")
            return Command(self.name, key, carried[1:])
        return Command(self.name, "", carried)


def _public(signature: inspect.Signature) -> str:
    """The parameters as a caller sees them (without ``self``): ``(account, amount=1)``."""
    params = list(signature.parameters.values())[1:]
    return "(" + ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                           for p in params) + ")"


def _mark(kind: str, function: F) -> F:
    if not callable(function):
        raise TypeError(f"@smr.{kind} decorates a method, got {function!r}")
    function._smr_kind = kind  # type: ignore[attr-defined]
    return function


def command(function: F) -> F:
    """Mark a method as a command: replicated through the log, may change the state."""
    return _mark(COMMAND, function)


def query(function: F) -> F:
    """Mark a method as a query: read-only, answered linearizably."""
    return _mark(QUERY, function)


def _spec(cls_name: str, name: str, function: Callable[..., Any], kind: str) -> OpSpec:
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    if not params:
        raise TypeError(f"{cls_name}.{name} must take self")
    for p in params[1:]:
        if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            raise TypeError(f"{cls_name}.{name}: parameter {p.name!r} is {p.kind.description}; "
                            f"commands and queries take plain positional-or-keyword parameters")
    args = params[1:]
    keyed = bool(args) and args[0].name == "key"
    required = sum(1 for p in args if p.default is inspect.Parameter.empty)
    return OpSpec(name, kind, function, signature, keyed, required, len(args))


class StateMachine:
    """Subclass this; mark methods with :func:`command` and :func:`query` (see the module docstring)."""

    #: The name this machine goes by in reports and configuration (default: the class name).
    name: ClassVar[str] = "StateMachine"
    #: The commands and queries of the class by name (collected when the class is defined).
    operations: ClassVar[dict[str, OpSpec]] = {}
    #: Log time in milliseconds, stamped by the leader; set before each command (see :attr:`log_time`).
    _smr_time_ms: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        operations: dict[str, OpSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, function in vars(klass).items():
                kind = getattr(function, "_smr_kind", None)
                if kind is not None:
                    if attr in RESERVED or attr.startswith("_"):
                        raise TypeError(f"{cls.__name__}.{attr}: {attr!r} is reserved (the framework uses "
                                        f"{', '.join(sorted(RESERVED))} and _-names); rename the {kind}")
                    operations[attr] = _spec(cls.__name__, attr, function, kind)
                elif attr in operations:
                    del operations[attr]  # overridden by a plain attribute
        cls.operations = operations
        if not isinstance(cls.__dict__.get("name", cls.name), str):
            raise TypeError(f"{cls.__name__}.name must be a str (it names the app), got {cls.name!r}")

    # ---------------------------------------------------------------- applying
    @property
    def log_time(self) -> float:
        """Seconds of log time: the leader's clock stamped into the log, the same on every replica."""
        return self._smr_time_ms / 1000.0

    def refusal(self, command: Command) -> CommandError | None:
        """Why ``command`` cannot run here (an unknown method, arguments that do not fit), or None.

        A leader asks before it proposes a command, so a log never carries one
        that is bound to fail this way (applying it would give the same error).
        """
        spec = self.operations.get(command.op)
        if spec is None:
            if command.op == NOOP_OP:
                return None
            return CommandError("UnknownCommand", f"{self.name} has no command or query {command.op!r} "
                                                  f"(it has: {', '.join(sorted(self.operations)) or 'none'})")
        if command.key and not spec.keyed:
            return CommandError("BadArguments", f"{self.name}.{command.op} takes no key, got {command.key!r}")
        count = len(command.args) + (1 if spec.keyed else 0)
        if not spec.min_args <= count <= spec.max_args:
            return CommandError("BadArguments", f"{self.name}.{command.op}{_public(spec.signature)} "
                                                f"got {count} argument(s)")
        return None

    def apply(self, command: Command) -> Value:
        """Run ``command``'s method and return its result; CommandError if the call does not fit."""
        spec = self.operations.get(command.op)
        if spec is None or (command.key and not spec.keyed):
            refused = self.refusal(command)
            if refused is None:
                return None  # the no-op
            raise refused
        args = (command.key, *command.args) if spec.keyed else command.args
        if not spec.min_args <= len(args) <= spec.max_args:
            raise CommandError("BadArguments", f"{self.name}.{command.op}{_public(spec.signature)} "
                                               f"got {len(args)} argument(s)")
        for a in args:
            if type(a) is list or type(a) is dict:
                # Fresh copies of lists and dicts: the arguments also live in the log, and a method
                # that keeps one must not change what a lagging replica will later be sent.
                args = tuple(canonical(x) if type(x) is list or type(x) is dict else x for x in args)
                break
        return spec.function(self, *args)

    def is_read_only(self, command: Command) -> bool:
        """True if ``command`` is a query (or the no-op): it never changes the state."""
        spec = self.operations.get(command.op)
        return spec.read_only if spec is not None else command.op == NOOP_OP

    # --------------------------------------------------------------- snapshots
    def snapshot(self) -> bytes:
        """Return the whole state as bytes (default: the instance attributes as tagged JSON)."""
        state = {k: v for k, v in vars(self).items() if not k.startswith("_smr_")}
        try:
            body = to_json(state, state=True, where=f"{self.name} state")
        except TypeError as exc:
            raise TypeError(f"{exc} -- override {type(self).__name__}.snapshot and .restore "
                            f"to keep state that is not plain data") from None
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one ``data`` was taken from (default: set the attributes)."""
        try:
            state = from_json(json.loads(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptValue(f"{self.name} snapshot is not JSON: {exc}") from None
        if not isinstance(state, dict):
            raise CorruptValue(f"{self.name} snapshot holds {type(state).__name__}, not the attributes")
        keep = {k: v for k, v in vars(self).items() if k.startswith("_smr_")}
        vars(self).clear()
        vars(self).update(state)
        vars(self).update(keep)
