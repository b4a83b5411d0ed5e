"""The built-in backends; importing this package registers every one of them."""

from __future__ import annotations

from . import coordinator as coordinator  # noqa: F401  (registers "coordinator")

import raft as _raft  # noqa: E402,F401  (registers Raft backends, when present)
import multipaxos as _multipaxos  # noqa: E402,F401  (registers multi-Paxos, when present)
