"""Exactly-once application of client commands (client sessions).

Every backend applies committed log entries through an :class:`Applier`.  It
remembers, per client, the last sequence number applied and its result, so a
retried request (same client id and sequence number) that was committed twice
is applied once and answered with the first result.  Clients keep one request
outstanding at a time, so one slot per client is enough (as in the Raft
thesis, section 6.3).
"""

from __future__ import annotations

import json
from typing import Callable

from .commands import NOOP, Scalar
from .replica import ClientRequest
from .state_machines import StateMachine

#: The log entry a leader commits to open its term or fill a gap.
NOOP_ENTRY = ClientRequest("", 0, NOOP)


class Applier:
    """A state machine plus the client session table that makes commands exactly-once."""

    def __init__(self, factory: Callable[[], StateMachine]) -> None:
        self.machine = factory()
        self.sessions: dict[str, tuple[int, Scalar]] = {}
        self.applied = 0

    def apply(self, entry: ClientRequest) -> Scalar:
        """Apply ``entry`` unless that (client, seq) was applied before; return its result."""
        self.applied += 1
        if not entry.client_id:
            return self.machine.apply(entry.command)
        last = self.sessions.get(entry.client_id)
        if last is not None and entry.seq <= last[0]:
            return last[1] if entry.seq == last[0] else None
        result = self.machine.apply(entry.command)
        self.sessions[entry.client_id] = (entry.seq, result)
        return result

    def lookup(self, client_id: str, seq: int) -> tuple[bool, Scalar]:
        """Return (True, result) if request (client_id, seq) was already applied."""
        last = self.sessions.get(client_id)
        if last is not None and last[0] == seq:
            return True, last[1]
        return False, None

    def is_stale(self, client_id: str, seq: int) -> bool:
        """Return True if the client has since moved past ``seq`` (its answer is gone)."""
        last = self.sessions.get(client_id)
        return last is not None and seq < last[0]

    def snapshot(self) -> bytes:
        """Return state machine and sessions as one canonical blob."""
        sessions = {k: [s, r] for k, (s, r) in self.sessions.items()}
        return json.dumps({"machine": self.machine.snapshot().decode(), "sessions": sessions,
                           "applied": self.applied}, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        """Replace state machine and sessions with those of a snapshot."""
        obj = json.loads(data)
        self.machine.restore(obj["machine"].encode())
        self.sessions = {k: (int(s), r) for k, (s, r) in obj["sessions"].items()}
        self.applied = int(obj["applied"])
