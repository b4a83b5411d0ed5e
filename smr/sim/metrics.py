"""Counters a simulated run keeps: messages and bytes by type and by node."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs


@attrs.define
class Counters:
    """Message, byte, storage and error counts of one run."""

    sent: Counter[str] = attrs.field(factory=Counter)
    delivered: Counter[str] = attrs.field(factory=Counter)
    dropped: Counter[str] = attrs.field(factory=Counter)
    duplicated: Counter[str] = attrs.field(factory=Counter)
    bytes_sent: Counter[str] = attrs.field(factory=Counter)
    sent_by_node: Counter[str] = attrs.field(factory=Counter)
    received_by_node: Counter[str] = attrs.field(factory=Counter)
    writes: int = 0
    syncs: int = 0
    lost_writes: int = 0
    remote_errors: int = 0
    events: int = 0

    @property
    def deliveries(self) -> int:
        """Messages delivered to a live endpoint (peers and clients)."""
        return sum(self.delivered.values())

    def to_json(self) -> dict[str, Any]:
        """Return every counter as plain JSON data (sorted keys)."""
        return {
            "sent": dict(sorted(self.sent.items())),
            "delivered": dict(sorted(self.delivered.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "duplicated": dict(sorted(self.duplicated.items())),
            "bytes_sent": dict(sorted(self.bytes_sent.items())),
            "sent_by_node": dict(sorted(self.sent_by_node.items())),
            "received_by_node": dict(sorted(self.received_by_node.items())),
            "writes": self.writes, "syncs": self.syncs, "lost_writes": self.lost_writes,
            "remote_errors": self.remote_errors, "events": self.events,
            "deliveries": self.deliveries,
        }
