"""The membership plumbing of the TCP runtime and the clients, each piece on its own.

The cluster file's ``added``/``removed`` lists, address parsing, the admission
of a node added at run time (smr.net._identity), a server routing to and
accepting nodes its configuration names, the command line's arguments, and
the client API (:class:`smr.client.MembershipClient`) against a fake cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from smr.client import MembershipClient
from smr.commands import Command
from smr.errors import ConfigError
from smr.machine import CommandError
from smr.membership import GET_MEMBERSHIP, Membership, changed
from smr.net import NodeAddress, dump_cluster, format_address, parse_address, parse_cluster, update_cluster_file
from smr.net._identity import JOIN, STAY_OUT, WAIT, MAX_REMEMBERED, Identity, admission
from smr.net._identity import Membership as Incarnations
from smr.net._launcher import client_file, write_cluster_file
from smr.net._server import NodeServer
from smr.net.cli import build_parser, main
from smr.values import Value

BASE = """\
secret: "0123456789abcdef0123"
nodes:
  - {id: n1, host: 127.0.0.1, port: 7001}
  - {id: n2, host: 127.0.0.1, port: 7002}
  - {id: n3, host: 127.0.0.1, port: 7003}
"""


# ------------------------------------------------------------ cluster file
def test_the_cluster_file_keeps_the_original_voters_apart_from_nodes_added_and_removed_later() -> None:
    config = parse_cluster(BASE + "added:\n  - {id: n4, host: 127.0.0.1, port: 7004}\nremoved: [n1]\n")
    assert config.initial_voters == ("n1", "n2", "n3")  # every replica's first configuration, n1 included
    assert config.node_ids == ("n2", "n3", "n4")  # whom clients dial now
    assert config.address("n4").port == 7004 and config.field_of("n4") == "added[0]"
    again = parse_cluster(dump_cluster(config))
    assert (again.nodes, again.added, again.removed) == (config.nodes, config.added, config.removed)


def test_adding_and_removing_edits_only_added_and_removed() -> None:
    config = parse_cluster(BASE)
    grown = config.with_added(NodeAddress("n4", "127.0.0.1", 7004))
    assert grown.nodes == config.nodes and grown.node_ids == ("n1", "n2", "n3", "n4")
    with pytest.raises(ConfigError, match="never reused"):
        grown.with_added(NodeAddress("n2", "127.0.0.1", 7999))
    with pytest.raises(ConfigError, match="already n4's address"):
        grown.with_added(NodeAddress("n5", "127.0.0.1", 7004))
    assert grown.with_removed("n4").added == ()  # an added node leaves the file
    shrunk = grown.with_removed("n1")  # an original voter stays in nodes, listed as removed
    assert shrunk.nodes == config.nodes and shrunk.removed == ("n1",) and shrunk.initial_voters[0] == "n1"


@pytest.mark.parametrize("extra, field, words", [
    ("added:\n  - {id: n2, host: 127.0.0.1, port: 7009}\n", "added[0].id", "duplicate node id 'n2'"),
    ("added:\n  - {id: n4, host: 127.0.0.1, port: 7001}\n", "added[0].port", "also used by nodes[0]"),
    ("removed: [n9]\n", "removed[0]", "in neither nodes nor added"),
    ("removed: [n1, n2, n3]\n", "removed", "every node is removed"),
    (f"added:\n  - {{id: {'x' * 65}, host: h, port: 1}}\n", "added[0].id", "1 to 64"),
])
def test_a_bad_added_or_removed_entry_is_refused_naming_its_field(extra: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_cluster(BASE + extra, "c.yaml")
    assert field in str(caught.value) and words in str(caught.value)


def test_update_cluster_file_rewrites_both_files_privately_and_validates_first(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write_cluster_file(path, nodes=3)
    config = update_cluster_file(path, lambda c: c.with_added(NodeAddress("n4", "127.0.0.1", 1)))
    assert config.added[0].id == "n4"
    clients = parse_cluster(client_file(path).read_text())
    assert clients.added == config.added and clients.secret is None  # the clients' copy: no secret
    assert {oct(os.stat(p).st_mode & 0o777) for p in (path, client_file(path))} == {"0o600"}
    with pytest.raises(ConfigError):  # a change that breaks the file never replaces it
        update_cluster_file(path, lambda c: c.with_added(NodeAddress("bad id!", "127.0.0.1", 2)))
    assert parse_cluster(path.read_text()).added == config.added
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("text, expected", [("127.0.0.1:7004", ("127.0.0.1", 7004)), ("[::1]:80", ("::1", 80)),
                                            ("node-4.example:65535", ("node-4.example", 65535))])
def test_addresses_parse_and_format_back(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
    assert format_address(NodeAddress("n", *expected)) == text


@pytest.mark.parametrize("text", ["", "7004", "host:", ":7004", "host:0", "host:65536", "host:x", "h:" + "9" * 300])
def test_a_malformed_address_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


# ---------------------------------------------------------------- identity
def _fresh(node: str) -> Incarnations:
    return Incarnations.load(node, {}, has_data=False)[0]


def test_a_node_added_at_run_time_joins_when_a_member_dials_it_and_never_waits_for_a_new_cluster() -> None:
    me = _fresh("n4")
    assert admission(me, ("n1", "n2", "n3"), {}, added=True)[0] == WAIT
    assert admission(me, ("n1", "n2", "n3"), {"n1": Identity("n1", "a", False)}, added=True)[0] == WAIT
    adder = Identity("n1", "a", True, {"n2": "b", "n3": "c"})  # a member with no record of n4
    assert admission(me, ("n1", "n2", "n3"), {"n1": adder}, added=True)[0] == JOIN


def test_an_emptied_node_added_at_run_time_stays_out() -> None:
    me = _fresh("n4")
    remembers = Identity("n1", "a", True, {"n4": "its-old-directory"})
    verdict, why = admission(me, ("n1", "n2", "n3"), {"n1": remembers}, added=True)
    assert verdict == STAY_OUT and "--rejoin-empty" in why  # how to bring it back
    itself = Identity("n1", "a", True, {"n4": me.incarnation})  # admitted before, restarted before it wrote so
    assert admission(me, ("n1", "n2", "n3"), {"n1": itself}, added=True)[0] == JOIN


def test_joined_nodes_learn_the_incarnations_their_peers_remember_without_replacing_any() -> None:
    joined = Incarnations("n1", "a", True, {"n2": "b"})
    assert joined.learn(Identity("n2", "b", True, {"n1": "a", "n4": "d", "n2": "forged"}))
    assert joined.members == {"n2": "b", "n4": "d"}  # n4 learned; its own record and n2's unchanged
    assert joined.refuses(Identity("n4", "d-emptied", False)) is not None
    assert not joined.learn(Identity("n3", "c", False, {"n5": "e"}))  # nothing from a node that has not joined
    assert not joined.learn(Identity("n2", "b", True, {f"x{i}": "i" for i in range(MAX_REMEMBERED + 1)}))
    joined.learn(Identity("n2", "b", True, {f"x{i}": "i" for i in range(MAX_REMEMBERED)}))
    assert len(joined.members) == MAX_REMEMBERED  # bounded
    fresh = Incarnations("n1", "a", True, {})
    fresh.learn(Identity("n2", "b", True, {"": "z", "n9": "y" * 65}))  # records of no sane shape: skipped
    assert fresh.members == {"n2": "b"}


# ------------------------------------------------------------------ server
def _server(tmp_path: Path, node: str = "n1", extra: str = "") -> NodeServer:
    return NodeServer(parse_cluster(BASE + extra), node, tmp_path / node)


def _with_membership(server: NodeServer, membership: Membership) -> None:
    server.driver = SimpleNamespace(core=SimpleNamespace(membership=membership))  # type: ignore[assignment]


def test_the_server_routes_to_nodes_the_configuration_adds_and_accepts_them_as_peers(tmp_path: Path) -> None:
    server = _server(tmp_path)
    assert server.peers == ("n2", "n3") and not server.added
    assert server._peer_address("n4") is None and not server._may_peer("n4")
    grown = changed(Membership.of(("n1", "n2", "n3")), Command("smr.membership", "add", ("n4", "10.0.0.4:7004")),
                    joint_consensus=True)
    _with_membership(server, grown)
    assert server._peer_address("n4") == NodeAddress("n4", "10.0.0.4", 7004)
    assert server._may_peer("n4") and server._peer_wanted("n4")
    assert not server._may_peer("n1")  # never itself
    assert not server._may_peer("n9") and server._open_peer("n9") is None  # nobody says where n9 is
    unreachable = changed(grown, Command("smr.membership", "add", ("n5", "no port")), joint_consensus=True)
    _with_membership(server, unreachable)
    assert server._peer_address("n5") is None  # logged once, its messages counted as unroutable


def test_a_node_the_cluster_file_adds_is_a_joiner_and_dials_nobody_first(tmp_path: Path) -> None:
    server = _server(tmp_path, "n4", "added:\n  - {id: n4, host: 127.0.0.1, port: 7004}\n")
    assert server.added and server.peers == ("n1", "n2", "n3")
    assert server._peer_address("n1") == NodeAddress("n1", "127.0.0.1", 7001)


# ------------------------------------------------------------- command line
def test_the_cluster_commands_parse_their_arguments() -> None:
    parser = build_parser()
    args = parser.parse_args(["cluster", "add", "n4", "--address", "127.0.0.1:7004", "--cluster", "c.yaml",
                              "--no-start", "--timeout", "5"])
    assert (args.node, args.address, args.cluster, args.no_start, args.timeout) == (
        "n4", "127.0.0.1:7004", "c.yaml", True, 5.0)
    args = parser.parse_args(["cluster", "remove", "n2", "--cluster", "c.yaml"])
    assert args.node == "n2" and args.timeout == 60.0
    assert parser.parse_args(["cluster", "status", "--cluster", "c.yaml", "--json"]).json
    with pytest.raises(SystemExit):
        parser.parse_args(["cluster", "add", "n4", "--cluster", "c.yaml"])  # --address is required


def test_cluster_add_refuses_a_bad_address_or_a_taken_id_before_starting_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cluster.yaml"
    config = write_cluster_file(path, nodes=3)
    before = path.read_text()
    assert main(["cluster", "add", "n4", "--address", "nowhere", "--cluster", str(path)]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    taken = format_address(config.nodes[1])
    assert main(["cluster", "add", "n2", "--address", "127.0.0.1:1", "--cluster", str(path)]) == 2
    assert main(["cluster", "add", "n4", "--address", taken, "--cluster", str(path)]) == 2
    assert "already n2's address" in capsys.readouterr().err
    assert path.read_text() == before and not (tmp_path / "n4").exists() and not (tmp_path / "data").exists()


# -------------------------------------------------------------- client API
class FakeCluster(MembershipClient):
    """Applies membership commands to a Membership, refusing the first ``busy`` changes as in progress."""

    def __init__(self, busy: int = 0, catch_up_reads: int = 2) -> None:
        self.current = Membership.of(("n1", "n2", "n3"))
        self.busy = busy
        self.catch_up_reads = catch_up_reads  # reads until the leader promotes a joining learner
        self.sent: list[Command] = []
        self.lose_answer = False

    async def submit(self, command: Command, *, timeout: float = 1.0, attempts: int = 40) -> Value:
        """Answer as a leader would."""
        self.sent.append(command)
        if command == GET_MEMBERSHIP:
            if self.current.joining:
                self.catch_up_reads -= 1
                if self.catch_up_reads <= 0:
                    learner = self.current.joining[0][0]
                    self.current = changed(self.current, Command("smr.membership", "promote", (learner,)), False)
            return self.current.as_value()
        if self.busy:
            self.busy -= 1
            raise CommandError("ChangeInProgress", "the change at index 7 is not committed yet; retry")
        try:
            self.current = changed(self.current, command, False)
        except CommandError as exc:
            raise CommandError(exc.kind, exc.message) from None  # as a reply carries it
        if self.lose_answer:
            self.lose_answer = False
            await trio.sleep(timeout * 3)  # three attempts, no answer
            raise TimeoutError("no answer")
        return self.current.as_value()


def _run(fn: Any) -> Any:
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


def test_add_node_retries_a_change_in_progress_and_returns_once_the_node_votes() -> None:
    fake = FakeCluster(busy=3)

    async def go() -> Membership:
        return await fake.add_node("n4", "127.0.0.1:7004")

    membership = _run(go)
    assert "n4" in membership.voters and membership.address_of("n4") == "127.0.0.1:7004"
    changes = [c for c in fake.sent if c != GET_MEMBERSHIP]
    assert len(changes) == 4 and all(c.key == "add" for c in changes)


def test_a_change_whose_answer_was_lost_is_not_made_twice_and_still_waits_for_its_effect() -> None:
    fake = FakeCluster()
    fake.lose_answer = True

    async def go() -> tuple[Membership, Membership]:
        added = await fake.add_node("n4", "h:1")
        fake.lose_answer = True
        return added, await fake.remove_node("n2")

    added, removed = _run(go)
    assert "n4" in added.voters and removed.voters == ("n1", "n3", "n4")


def test_a_change_that_can_never_fit_raises_and_one_that_cannot_finish_times_out() -> None:
    async def remove_stranger() -> None:
        await FakeCluster().replace_node("n9", "n4", "h:1")

    with pytest.raises(CommandError, match="n9 is not a voter"):
        _run(remove_stranger)

    async def forever_busy() -> None:
        await FakeCluster(busy=10**6).add_node("n4", "h:1", timeout=5.0)

    with pytest.raises(TimeoutError, match="add n4: not taken within 5 s"):
        _run(forever_busy)

    async def never_caught_up() -> None:
        await FakeCluster(catch_up_reads=10**6).add_node("n4", "h:1", timeout=5.0)

    with pytest.raises(TimeoutError, match="taken but not in effect"):
        _run(never_caught_up)


def test_remove_of_a_node_already_gone_returns_and_replace_waits_for_the_new_voter() -> None:
    fake = FakeCluster()

    async def go() -> tuple[Membership, Membership]:
        replaced = await fake.replace_node("n1", "n4", "h:4")
        return replaced, await fake.remove_node("n1")

    replaced, removed = _run(go)
    assert replaced.voters == ("n2", "n3", "n4") and removed == replaced
