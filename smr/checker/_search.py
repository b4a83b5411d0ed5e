"""The Wing–Gong / Lowe search for a linearization of one independent sub-history.

This module holds the whole search and nothing else.  It follows Lowe's
"just-in-time linearization" (Lowe 2017, as in Porcupine and Knossos' WGL):

* every invocation and completion is an entry in one doubly linked list
  sorted by time (invocations before completions at equal times, so
  touching intervals count as concurrent);
* the operations that may be linearized next (the *minimal* ones) are
  exactly the invocations met before the first completion in the list; each
  is tried through the model, and the search descends into a successful one
  by *lifting* its entries out of the list (dancing links);
* when no candidate leads anywhere, the operation of that first completion
  cannot be placed after the current prefix, and the search backtracks;
* a memo of explored (linearized operations as an int bitset, model state)
  pairs prunes every repeated configuration.

Operations with an unknown outcome have no completion entry: they may be
linearized at any point after their invocation, or never, and they never
force a backtrack.  The search succeeds once every ``ok`` operation is
linearized.  Failed operations must be removed by the caller.

Four reductions keep the search small without losing answers:

* *Earliest deadline first*: candidates are tried in order of completion
  (unknown operations last), the order a linearizable history most likely
  took.
* *State-preserving moves are forced*: if a minimal operation fits and
  can never change the state (``model.preserves_state``: a read, a failed
  cas), some linearization exists from this configuration iff one exists
  that places it right now -- moving it earlier breaks neither real-time
  order (it is minimal) nor any result (it changes no state wherever it
  goes) -- so it is the only move tried.
* *Identical unknown operations are interchangeable*: of several minimal
  unknown operations with equal commands only the earliest invoked is tried
  (a linearization using a later one can use the earlier one instead).
* *Fewer unknowns dominate*: configurations are memoised by (ok operations
  done, state) with the sets of unknown operations used; one that used a
  superset of an explored set's unknowns is pruned, since whatever it can
  still do, the explored one could do too by never using the extra ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import attrs

from smr.history import Operation, Outcome

from ._budget import Meter
from .models import UNKNOWN, Model


@attrs.frozen
class SearchResult:
    """What a search of one sub-history found.

    ``linearizable`` is True, False, or None when the budget ran out.  When
    True, ``order`` is a linearization (indices into the searched operations;
    unknown operations that never took effect are left out).  When False,
    ``order`` is the longest linearizable prefix found, ``blocked`` the index
    (-1 otherwise) of the operation whose completion that prefix could not get past and
    ``state`` the model state after the prefix.
    """

    linearizable: bool | None
    order: tuple[int, ...] = ()
    blocked: int = -1
    state: Hashable = None
    steps: int = 0


def search(model: Model, ops: Sequence[Operation], meter: Meter) -> SearchResult:
    """Decide whether ``ops`` (no failed ones) is linearizable under ``model``, spending from ``meter``."""
    n = len(ops)
    results: list[object] = [UNKNOWN if op.outcome is Outcome.UNKNOWN else op.result for op in ops]
    commands = [op.command for op in ops]
    is_ok = [op.outcome is Outcome.OK for op in ops]
    remaining = sum(is_ok)
    state: Hashable = model.init()
    if remaining == 0:
        return SearchResult(True, (), -1, state, 0)
    has_unknown = remaining < n
    # Ok operations and unknown operations get bits in two separate bitsets.
    bit = [0] * n
    n_ok = n_unknown = 0
    for i in range(n):
        if is_ok[i]:
            bit[i] = 1 << n_ok
            n_ok += 1
        else:
            bit[i] = 1 << n_unknown
            n_unknown += 1
    preserving = [model.preserves_state(commands[i], results[i]) for i in range(n)]
    class_ids: dict[tuple[object, ...], int] = {}
    unknown_class = [
        -1 if is_ok[i] else class_ids.setdefault(
            (c.op, c.key, tuple((a.__class__, a) for a in c.args)), len(class_ids))
        for i, c in enumerate(commands)
    ]
    rank = [0] * n
    for r, i in enumerate(sorted(range(n), key=lambda i: (ops[i].end, ops[i].invoke, i))):
        rank[i] = r

    # The entry list: node 0 is the head, nodes 1..m the sorted entries, m+1 the tail.
    # An unknown operation that cannot change the state is left out: it may never take effect.
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        if not is_ok[i] and preserving[i]:
            continue
        events.append((op.invoke, 0, i))
        if op.complete is not None:
            events.append((op.complete, 1, i))
    events.sort()
    m = len(events)
    tail = m + 1
    nxt = list(range(1, m + 2)) + [tail]
    prv = [0] + list(range(0, m + 1))
    node_op = [-1] * (m + 2)
    node_call = [False] * (m + 2)
    call_node = [0] * n
    ret_node = [-1] * n
    for node, (_, kind, i) in enumerate(events, 1):
        node_op[node] = i
        if kind == 0:
            node_call[node] = True
            call_node[i] = node
        else:
            ret_node[i] = node

    step = model.step
    rank_of = rank.__getitem__
    seen: set[tuple[int, Hashable]] = set()
    seen_unknown: dict[tuple[int, Hashable], list[int]] = {}
    steps = 0
    unmetered = 0
    allowance = meter.allowance()

    # One frame per depth: the moves found there, the next one to try, the blocking operation.
    frame_moves: list[list[tuple[int, Hashable]]] = []
    frame_next: list[int] = []
    frame_blocked: list[int] = []
    path: list[int] = []  # the operations linearized, in order
    path_states: list[Hashable] = []  # the state before each of them
    ok_bits = unknown_bits = 0
    best: tuple[int, ...] | None = None
    best_blocked = -1
    best_state: Hashable = None

    while True:
        # A new configuration: find its moves (candidates in deadline order).
        candidates = []
        e = nxt[0]
        while node_call[e]:
            candidates.append(node_op[e])
            e = nxt[e]
        candidates.sort(key=rank_of)
        moves: list[tuple[int, Hashable]] = []
        classes_tried: set[int] = set()
        for i in candidates:
            if not is_ok[i]:
                # Identical unknown operations are interchangeable: try only the earliest invoked.
                if unknown_class[i] in classes_tried:
                    continue
                classes_tried.add(unknown_class[i])
            if unmetered >= allowance:
                if not meter.spend(unmetered):
                    return SearchResult(None, tuple(path), -1, state, steps)
                unmetered = 0
                allowance = meter.allowance()
            steps += 1
            unmetered += 1
            new_state = step(state, commands[i], results[i])
            if new_state is None:
                continue
            if preserving[i] and new_state == state:
                moves = [(i, new_state)]
                break
            moves.append((i, new_state))
        frame_moves.append(moves)
        frame_next.append(0)
        frame_blocked.append(node_op[e])

        # Descend into the next unexplored move, backtracking out of dead ends.
        while True:
            depth = len(frame_moves) - 1
            k = frame_next[depth]
            moves = frame_moves[depth]
            if k < len(moves):
                frame_next[depth] = k + 1
                i, new_state = moves[k]
                if is_ok[i]:
                    new_ok, new_unknown = ok_bits | bit[i], unknown_bits
                else:
                    new_ok, new_unknown = ok_bits, unknown_bits | bit[i]
                key = (new_ok, new_state)
                if has_unknown:
                    used = seen_unknown.get(key)
                    if used is None:
                        seen_unknown[key] = [new_unknown]
                    elif any(u & ~new_unknown == 0 for u in used):
                        continue
                    else:
                        used.append(new_unknown)
                elif key in seen:
                    continue
                else:
                    seen.add(key)
                path.append(i)
                path_states.append(state)
                state = new_state
                ok_bits, unknown_bits = new_ok, new_unknown
                # Lift the operation's entries out of the list.
                c = call_node[i]
                p, q = prv[c], nxt[c]
                nxt[p] = q
                prv[q] = p
                r = ret_node[i]
                if r >= 0:
                    p, q = prv[r], nxt[r]
                    nxt[p] = q
                    prv[q] = p
                    remaining -= 1
                    if remaining == 0:
                        meter.spend(unmetered)
                        return SearchResult(True, tuple(path), -1, state, steps)
                break
            # Dead end: the blocking operation cannot follow this prefix.
            if best is None or depth > len(best):
                best = tuple(path)
                best_blocked = frame_blocked[depth]
                best_state = state
            frame_moves.pop()
            frame_next.pop()
            frame_blocked.pop()
            if not path:
                meter.spend(unmetered)
                return SearchResult(False, best, best_blocked, best_state, steps)
            i = path.pop()
            state = path_states.pop()
            if is_ok[i]:
                ok_bits ^= bit[i]
            else:
                unknown_bits ^= bit[i]
            # Put the entries back in the reverse order of lifting.
            r = ret_node[i]
            if r >= 0:
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                remaining += 1
            c = call_node[i]
            nxt[prv[c]] = c
            prv[nxt[c]] = c
