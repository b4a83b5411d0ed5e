"""Majority-quorum arithmetic (smr.quorum): the counting every core relies on.

Each property is checked against a brute-force answer over small clusters,
the way etcd checks ``quorum/majority.go`` against a naive implementation.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smr.quorum import VoteResult, committed_index, has_majority, majority, vote_result
from smr.replica import ReplicaConfig
from smr.state_machines import KVStore

VOTERS = st.integers(min_value=1, max_value=9)


@pytest.mark.parametrize(("voters", "size"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)])
def test_a_majority_is_more_than_half(voters: int, size: int) -> None:
    assert majority(voters) == size
    assert has_majority(size, voters) and not has_majority(size - 1, voters)


def test_a_cluster_needs_a_voter() -> None:
    with pytest.raises(ValueError, match="at least one voter"):
        majority(0)


@given(VOTERS)
def test_majority_is_the_smallest_count_above_half(voters: int) -> None:
    assert majority(voters) == min(k for k in range(1, voters + 1) if 2 * k > voters)


@given(VOTERS)
def test_the_config_quorum_is_the_majority(voters: int) -> None:
    peers = tuple(f"n{i}" for i in range(2, voters + 1))
    config = ReplicaConfig("n1", peers, random.Random(0), KVStore)
    assert config.quorum == majority(voters)


@given(VOTERS)
def test_any_two_majorities_intersect(voters: int) -> None:
    """The reason a majority decision sticks: every majority shares a node with every other."""
    nodes = range(voters)
    majorities = [set(c) for k in range(1, voters + 1) if has_majority(k, voters)
                  for c in itertools.combinations(nodes, k)]
    assert all(a & b for a in majorities for b in majorities)


@given(VOTERS)
def test_two_disjoint_sets_are_never_both_majorities(voters: int) -> None:
    for k in range(voters + 1):
        assert not (has_majority(k, voters) and has_majority(voters - k, voters))


@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=9))
def test_the_committed_index_is_the_highest_index_a_majority_holds(matches: list[int]) -> None:
    brute = max(i for i in range(0, max(matches) + 1)
                if has_majority(sum(m >= i for m in matches), len(matches)))
    assert committed_index(matches) == brute


@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=9), st.randoms())
def test_the_committed_index_ignores_the_order_of_voters(matches: list[int], rnd: random.Random) -> None:
    shuffled = list(matches)
    rnd.shuffle(shuffled)
    assert committed_index(shuffled) == committed_index(matches)


def test_a_cluster_of_one_commits_what_it_holds() -> None:
    assert committed_index([7]) == 7
    assert committed_index([5, 3, 9]) == 5
    assert committed_index([5, 3, 9, 9, 1]) == 5


@st.composite
def elections(draw: st.DrawFn) -> tuple[int, dict[str, bool]]:
    voters = draw(VOTERS)
    answered = draw(st.integers(min_value=0, max_value=voters))
    votes = {f"n{i}": draw(st.booleans()) for i in range(answered)}
    return voters, votes


@given(elections())
def test_an_election_is_won_or_lost_only_by_a_majority(election: tuple[int, dict[str, bool]]) -> None:
    voters, votes = election
    granted = sum(votes.values())
    refused = len(votes) - granted
    result = vote_result(votes, voters)
    if has_majority(granted, voters):
        assert result is VoteResult.WON
    elif has_majority(refused, voters):
        assert result is VoteResult.LOST
    else:
        assert result is VoteResult.PENDING


@given(elections())
def test_a_decided_election_stays_decided_as_more_votes_arrive(election: tuple[int, dict[str, bool]]) -> None:
    """Won and lost are final: every way the missing votes can go keeps the outcome."""
    voters, votes = election
    result = vote_result(votes, voters)
    missing = [f"n{i}" for i in range(len(votes), voters)]
    for answers in itertools.product((True, False), repeat=len(missing)):
        final = vote_result({**votes, **dict(zip(missing, answers))}, voters)
        if result is not VoteResult.PENDING:
            assert final is result
        else:
            assert final is not VoteResult.PENDING or voters % 2 == 0  # a tie: even clusters only


def test_a_lone_candidate_wins_a_cluster_of_one_only() -> None:
    assert vote_result({"n1": True}, 1) is VoteResult.WON
    assert vote_result({"n1": True}, 3) is VoteResult.PENDING
    assert vote_result({"n1": True, "n2": False, "n3": False}, 3) is VoteResult.LOST
