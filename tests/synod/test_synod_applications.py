"""The essay's applications on any WriteOnce: user of the day and order cancellation."""

from __future__ import annotations

import random
import threading

import pytest

from synod import CoreCluster, LocalWriteOnce, Order, OrderState, user_of_the_day

USERS = [f"user{i}" for i in range(50)]


def test_local_write_once_first_initialization_wins() -> None:
    variable: LocalWriteOnce[str] = LocalWriteOnce()
    with pytest.raises(TimeoutError):
        variable.final_value(timeout=0.01)
    variable.try_initialize("a")
    variable.try_initialize("b")
    assert variable.final_value() == "a"


def test_every_thread_gets_the_same_user_of_the_day() -> None:
    variable: LocalWriteOnce[str] = LocalWriteOnce()
    results: list[str] = []
    lock = threading.Lock()

    def reader(i: int) -> None:
        user = user_of_the_day(variable, USERS, random.Random(i))
        with lock:
            results.append(user)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and len(set(results)) == 1 and results[0] in USERS


@pytest.mark.parametrize("algorithm", ["coordinator", "majority", "tiebreak", "paxos"])
def test_every_node_gets_the_same_user_of_the_day(algorithm: str) -> None:
    for seed in range(3):
        cluster = CoreCluster(algorithm, nodes=5, seed=seed)
        rng = random.Random(seed)
        handles = [cluster.handle(n) for n in cluster.node_ids]
        for handle in handles:  # everyone proposes at the same instant ...
            handle.try_initialize(rng.choice(USERS))
        users = []
        for handle in handles:  # ... and reads
            try:
                users.append(handle.final_value(timeout=2_000))
            except TimeoutError:
                assert algorithm == "majority", "only majority voting may split the vote for ever"
        assert len(set(users)) <= 1, (algorithm, seed, users)
        if not users:
            continue
        # A late caller with the application function gets the same answer.
        assert user_of_the_day(handles[2], USERS, rng) == users[0]


def test_user_of_the_day_with_paxos_survives_a_crash() -> None:
    cluster = CoreCluster("paxos", nodes=5, seed=7)
    cluster.crash("n5")
    handles = [cluster.handle(n) for n in cluster.node_ids[:4]]
    users = [user_of_the_day(h, USERS, random.Random(i)) for i, h in enumerate(handles)]
    assert len(set(users)) == 1


def test_local_order_is_never_both_shipped_and_cancelled() -> None:
    for i in range(20):
        order = Order(LocalWriteOnce())
        assert order.state() == OrderState.PENDING
        workers = [threading.Thread(target=order.try_ship), threading.Thread(target=order.try_cancel)]
        if i % 2:
            workers.reverse()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert order.state() in (OrderState.SHIPPED, OrderState.CANCELLED)


@pytest.mark.parametrize("algorithm", ["coordinator", "majority", "tiebreak", "paxos"])
def test_simulated_order_is_never_both_shipped_and_cancelled(algorithm: str) -> None:
    for seed in range(4):
        cluster = CoreCluster(algorithm, nodes=5, seed=seed)
        warehouse = Order(cluster.handle("n1"))
        customer = Order(cluster.handle("n2"))
        assert warehouse.state() == OrderState.PENDING
        warehouse.try_ship()
        customer.try_cancel()
        seen: set[str] = set()
        for _ in range(50):  # watch every node's view while the race resolves
            cluster.run_until(lambda: False, 1.0)
            seen |= {cluster.decided(n) for n in cluster.node_ids} - {None}
        states = {Order(cluster.handle(n)).state(timeout=5_000) for n in cluster.node_ids}
        assert len(states) == 1 and states <= {OrderState.SHIPPED, OrderState.CANCELLED}
        assert seen <= states, "some node saw shipped while another saw cancelled"
