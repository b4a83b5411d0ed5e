"""Raft's safety properties (Figure 3 of the paper), checked over live cores after every step.

:class:`RaftInvariants` is called with the live cores by node id and raises
``AssertionError`` naming the property that failed:

* **election safety** -- at most one leader per term (a term -> leader
  registry kept across calls, so a leader that crashed still counts);
* **leader append-only** -- while a server leads a term, its log only grows:
  it never truncates, and the entry it had last stays;
* **log matching** -- an (index, term) pair names one entry and one preceding
  term everywhere it appears; by induction two logs sharing an (index, term)
  are identical up to it.  Each entry is checked once against a registry; a
  log is re-checked only after it was rewritten (``RaftLog.generation``);
* **leader completeness** -- every entry seen committed in a term is in the
  log of every leader of a later term;
* **state machine safety** -- every server that commits an index commits the
  same entry there (the simulator checks applied entries as well); commit
  indices never go backwards or beyond the log.

The checker keeps memory across calls, so it belongs to one run.  The
simulator keeps one ``Backend.invariants`` callable per process, so an
instance notices a new run by the identity of the cores'
``config.state_machine`` factory (one per simulation) and starts afresh.
Tests build their own instance per cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._core import LEADER, RaftCore


@attrs.define
class _Watch:
    """What the checker remembers about one live core object."""

    core: Any  # kept so the id() of a dead core is never reused within a run
    generation: int
    checked_upto: int
    commit_seen: int = 0
    leader_term: int = -1
    leader_generation: int = 0
    leader_last: int = 0
    leader_last_term: int = 0
    verified: int = 0


class RaftInvariants:
    """A stateful checker of Raft's five safety properties over one run (see the module docstring)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new run starts)."""
        self.leaders: dict[int, str] = {}
        self.seen: dict[tuple[int, int], tuple[Any, int]] = {}
        self.committed: dict[int, tuple[int, int]] = {}
        self.committed_max = 0
        self._watches: dict[int, _Watch] = {}

    def __call__(self, cores: Mapping[str, RaftCore]) -> None:
        """Check every property over ``cores`` (the live ones, by node id)."""
        if not cores:
            return
        for node, core in cores.items():
            self._check_core(node, core)
        for node, core in cores.items():
            if core.role == LEADER:
                self._check_leader_completeness(node, core)

    # ------------------------------------------------------------------
    def _watch(self, core: RaftCore) -> _Watch:
        w = self._watches.get(id(core))
        if w is None or w.core is not core:
            w = _Watch(core, core.log.generation, core.log.snapshot_index)
            self._watches[id(core)] = w
        return w

    def _check_core(self, node: str, core: RaftCore) -> None:
        log = core.log
        w = self._watch(core)
        if core.role != LEADER and log.generation == w.generation and \
                log.last_index == w.checked_upto and core.commit_index == w.commit_seen:
            return  # nothing this check looks at changed since it last passed
        # commit indices
        if core.commit_index > log.last_index:
            raise AssertionError(f"state machine safety: {node} has commit index {core.commit_index} "
                                 f"beyond its last log index {log.last_index} (committed entries lost)")
        if core.commit_index < w.commit_seen:
            raise AssertionError(f"state machine safety: {node}'s commit index went back from "
                                 f"{w.commit_seen} to {core.commit_index}")
        # election safety
        if core.role == LEADER:
            other = self.leaders.setdefault(core.term, node)
            if other != node:
                raise AssertionError(f"election safety: {other} and {node} were both leaders of "
                                     f"term {core.term}")
            self._check_append_only(node, core, w)
        # log matching
        if log.generation != w.generation:
            w.generation = log.generation
            w.checked_upto = log.snapshot_index
        start = max(w.checked_upto, log.snapshot_index) + 1
        if start <= log.last_index:
            before = log.term_at(start - 1)
            assert before is not None, "start - 1 is the snapshot index or inside the log"
            prev_term = before
            seen = self.seen
            for index in range(start, log.last_index + 1):
                entry = log.entry(index)
                if entry.term < prev_term:
                    raise AssertionError(f"log matching: {node}'s log goes from term {prev_term} "
                                         f"down to {entry.term} at index {index}")
                if entry.term > core.term:
                    raise AssertionError(f"log matching: {node} holds entry {index} of term "
                                         f"{entry.term}, above its current term {core.term}")
                key = (index, entry.term)
                known = seen.get(key)
                if known is None:
                    seen[key] = (entry.request, prev_term)
                elif known != (entry.request, prev_term):
                    raise AssertionError(
                        f"log matching: {node} holds {entry.request} at index {index} term {entry.term} "
                        f"(after term {prev_term}), but {known[0]} (after term {known[1]}) was seen there")
                prev_term = entry.term
        w.checked_upto = log.last_index
        # committed entries: state machine safety
        if core.commit_index > w.commit_seen:
            for index in range(max(w.commit_seen, log.snapshot_index) + 1, core.commit_index + 1):
                term = log.term_at(index)
                assert term is not None
                known_c = self.committed.get(index)
                if known_c is None:
                    self.committed[index] = (term, core.term)
                elif known_c[0] != term:
                    raise AssertionError(f"state machine safety: {node} committed index {index} with "
                                         f"term {term}, but term {known_c[0]} was committed there")
            self.committed_max = max(self.committed_max, core.commit_index)
            w.commit_seen = core.commit_index

    def _check_append_only(self, node: str, core: RaftCore, w: _Watch) -> None:
        log = core.log
        if w.leader_term == core.term:
            last_term = log.term_at(w.leader_last)
            if log.generation != w.leader_generation or log.last_index < w.leader_last or \
                    (last_term is not None and last_term != w.leader_last_term):
                raise AssertionError(f"leader append-only: {node}, leader of term {core.term}, "
                                     f"rewrote its log (had entry {w.leader_last} of term "
                                     f"{w.leader_last_term}, now last index {log.last_index})")
        else:
            w.leader_term = core.term
            w.leader_generation = log.generation
            w.verified = 0
        w.leader_last = log.last_index
        w.leader_last_term = log.last_term

    def _check_leader_completeness(self, node: str, core: RaftCore) -> None:
        w = self._watch(core)
        log = core.log
        for index in range(w.verified + 1, self.committed_max + 1):
            known = self.committed.get(index)
            if known is None or known[1] >= core.term:
                continue  # not seen committed before this leader's term
            term = log.term_at(index)
            if term is None and index <= log.snapshot_index:
                continue  # compacted into the leader's snapshot
            if term != known[0]:
                raise AssertionError(
                    f"leader completeness: entry {index} (term {known[0]}) was committed in term "
                    f"{known[1]}, but {node}, leader of term {core.term}, "
                    + ("lacks it" if term is None else f"holds term {term} there"))
        w.verified = self.committed_max
