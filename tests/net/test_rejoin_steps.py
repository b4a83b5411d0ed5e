"""The steps of ``--rejoin-empty`` (smr.net._rejoin.rejoin), against an in-memory cluster: remove first, add
only once the removal is committed, wait for an index past the re-adding, resume from any stage, wait out a
cluster without a quorum."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest
import trio

from smr.client import MembershipClient
from smr.commands import Command
from smr.membership import GET_MEMBERSHIP, Membership, MembershipError, changed
from smr.net._rejoin import ADD, ADDED, REMOVE, Rejoin, rejoin
from smr.values import Value


class LogCluster(MembershipClient):
    """A cluster reduced to its log of membership changes; ``down`` makes every call time out."""

    def __init__(self, voters: tuple[str, ...]) -> None:
        self.current = Membership.of(voters)
        self.log: list[Command] = []  # the changes committed, in order (index = position + 1)
        self.down = False

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 40) -> Value:
        """Commit ``command`` (a change, or the membership read) and answer as the cluster would."""
        await trio.sleep(timeout if self.down else 0.01)
        if self.down:
            raise TimeoutError("no quorum")
        if command == GET_MEMBERSHIP:
            return self.current.as_value()
        self.log.append(command)
        try:
            self.current = changed(self.current, command, joint_consensus=True)
        except MembershipError as exc:
            raise exc from None  # an error outcome, as a client sees it
        return self.current.as_value()

    async def point_past(self) -> tuple[int, int]:
        """The commit index now, and the epoch (one per change: a stand-in that only grows)."""
        return len(self.log), 10 + len(self.log)


async def _run(cluster: LogCluster, state: Rejoin) -> tuple[Rejoin, list[Rejoin]]:
    """Run the rejoin of n2 from ``state``; its final state and every state it saved."""
    saved: list[Rejoin] = []

    async def save(new: Rejoin) -> Rejoin:
        saved.append(new)
        return new

    final = await rejoin("n2", "127.0.0.1:7002", state, cluster, cluster.point_past, save)
    return final, saved


def _kinds(cluster: LogCluster) -> list[tuple[Any, ...]]:
    return [(command.key, *command.args) for command in cluster.log]


def _added_at(cluster: LogCluster) -> int:
    """The index of the last change that added n2."""
    return max(i for i, kind in enumerate(_kinds(cluster), start=1) if kind[:2] == ("add", "n2"))


async def test_the_node_has_its_id_removed_and_only_then_added_again(autojump_clock: Any) -> None:
    """From the start: remove n2 (committed at index 1), then add it back (index 2), then note an index at or
    past that: its core will answer nothing before it has applied so far."""
    cluster = LogCluster(("n1", "n2", "n3"))
    final, saved = await _run(cluster, Rejoin(REMOVE, ("old",)))
    assert _kinds(cluster) == [("remove", "n2"), ("add", "n2", "127.0.0.1:7002")]
    assert saved == [Rejoin(ADD, ("old",)), Rejoin(ADDED, ("old",), after=2, epoch=12)] and final == saved[-1]
    assert cluster.current.learners == ("n2",) and dict(cluster.current.joining) == {"n2": ""}


@pytest.mark.parametrize("stage", [ADD, ADDED])
async def test_a_restarted_rejoin_carries_on_from_the_stage_it_recorded(stage: str, autojump_clock: Any) -> None:
    """Killed after the removal was recorded, it only adds itself; after the add, it asks for nothing."""
    cluster = LogCluster(("n1", "n3"))
    final, saved = await _run(cluster, Rejoin(stage, ("old",), after=0 if stage == ADD else 7,
                                              epoch=0 if stage == ADD else 3))
    assert _kinds(cluster) == ([("add", "n2", "127.0.0.1:7002")] if stage == ADD else [])
    assert final == Rejoin(ADDED, ("old",), after=1 if stage == ADD else 7, epoch=11 if stage == ADD else 3)


async def test_a_removal_made_before_a_restart_is_seen_and_its_retry_changes_nothing(autojump_clock: Any) -> None:
    """Killed after its removal was committed but before it recorded so: asked again, the removal is refused
    (n2 is no member: an error outcome that changes nothing), which the membership read shows done."""
    cluster = LogCluster(("n1", "n2", "n3"))
    await cluster.remove_node("n2")
    final, _ = await _run(cluster, Rejoin(REMOVE, ("old",)))
    assert _kinds(cluster) == [("remove", "n2"), ("remove", "n2"), ("add", "n2", "127.0.0.1:7002")]
    assert final.after >= _added_at(cluster) == 3 and "n2" in cluster.current.learners


async def test_without_a_quorum_it_waits_says_once_why_and_carries_on_once_there_is_one(
        autojump_clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    cluster = LogCluster(("n1", "n2", "n3"))
    cluster.down = True
    with caplog.at_level(logging.WARNING, logger="smr.net"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, cluster, Rejoin(REMOVE, ()))
            await trio.sleep(120)
            assert cluster.log == []
            cluster.down = False
    waits = [r.getMessage() for r in caplog.records if "rejoining: waiting" in r.getMessage()]
    assert len(waits) == 1 and "no quorum?" in waits[0], waits
    assert _kinds(cluster)[0] == ("remove", "n2")


async def test_a_replaced_incarnation_noted_while_a_step_runs_is_kept_by_the_next_save(autojump_clock: Any) -> None:
    """The save hands back what it recorded: incarnations noted meanwhile (another member dialled in during
    the removal) stay in the record the next stages build on, never overwritten by the older copy."""
    cluster = LogCluster(("n1", "n2", "n3"))
    record: list[Rejoin] = []

    async def save(new: Rejoin) -> Rejoin:  # as the server's: merged with what was noted since
        merged = attrs.evolve(new, replaces=tuple(dict.fromkeys((*new.replaces, "noted-meanwhile"))))
        record.append(merged)
        return merged

    final = await rejoin("n2", "127.0.0.1:7002", Rejoin(REMOVE, ("old",)), cluster, cluster.point_past, save)
    assert final.replaces == ("old", "noted-meanwhile") and all(r.replaces == final.replaces for r in record)


@pytest.mark.parametrize("text", ['{"stage": "added", "replaces": [], "after": 3, "epoch": -1}',
                                  '{"stage": "added", "replaces": [], "after": true}', '[1, 2]',
                                  '{"stage": "gone", "replaces": []}'])
def test_a_malformed_rejoin_record_is_refused(text: str) -> None:
    """A damaged or foreign record is a clear ValueError, never a rejoin from a wrong point."""
    with pytest.raises(ValueError, match="malformed"):
        Rejoin.from_meta({"rejoin": text})


def test_a_record_from_before_epochs_reads_as_epoch_0() -> None:
    """A rejoin recorded by an older version (no epoch) still resumes: with no floor, as it was written."""
    assert Rejoin.from_meta({"rejoin": '{"stage": "added", "replaces": ["a"], "after": 4}'}) == \
        Rejoin(ADDED, ("a",), after=4, epoch=0)
