"""cluster-init reshapes a formed cluster to REDIS_NODES (issue 13), with real server nodes under `kvinit node` on
127.0.0.1: new masters get an even share of the slots, removed nodes are drained, forgotten and reset, and a
cluster client (redis-py's RedisCluster, which follows MOVED and ASK itself) writing and reading all along sees no
failed request. The tests that move slots need the slot mover (node/cluster/migrate.c) and are skipped without it.
"""

import time
from pathlib import Path

import pytest

from nodes import PASSWORD, client
from test_cluster import cluster_client, cluster_init, roles, start_node, start_nodes  # noqa: F401 (fixtures)
from cluster_load import ClusterLoad, check_all, expected_after, fill
from ioredis import IoredisLoad, ioredis_modules

REPO = Path(__file__).resolve().parents[2]
needs_mover = pytest.mark.skipif(not (REPO / "node/cluster/migrate.c").exists(),
                                 reason="the slot mover (node/cluster/migrate.c) is not in this tree")

KEYS = 100_000


def addr(n):
    return f"127.0.0.1:{n.port}"


def masters_of(view):
    return {a: v[2] for a, v in view.items() if v[0] == "master"}


def known_nodes(n):
    return int(client(n.port).execute_command("CLUSTER INFO")["cluster_known_nodes"])


def knows(n, other):
    return addr(other) in client(n.port).execute_command("CLUSTER NODES")


@pytest.mark.matrix
@needs_mover
def test_six_to_eight_to_six_under_load(start_nodes, start_node, workdir):
    nodes = start_nodes(6)
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    roles(nodes[0].port, 3, nodes)
    fill(cluster_client(nodes), KEYS)
    # redis-py's ASK bug counted apart (cluster_load). A request may wait while slots change hands (Valkey 9's
    # atomic migration pauses writes on the source until the target has taken the slots over, longer on a loaded
    # host): a 10 s socket timeout, where redis-py's own default is none; the longest request is printed.
    load = ClusterLoad(lambda: cluster_client(nodes, timeout=10), KEYS)
    load.start()
    modules = ioredis_modules()
    io = IoredisLoad(modules, [addr(n) for n in nodes], PASSWORD, KEYS) if modules else None
    try:
        new = [start_node(), start_node()]
        t0 = time.monotonic()
        r = cluster_init(workdir, nodes + new)
        out_took = time.monotonic() - t0
        print("\n" + r.stderr)
        assert r.returncode == 0, r.stdout + r.stderr
        view = roles(nodes[0].port, 4, nodes + new)
        shares = masters_of(view)
        assert len(shares) == 4, view
        assert sorted(shares.values()) == [4096] * 4, shares
        assert view[addr(new[0])][0] == "master", view
        assert view[addr(new[1])][:2] == ("replica", addr(new[0])), view

        t0 = time.monotonic()
        r = cluster_init(workdir, nodes, REDIS_CLUSTER_ALLOW_REMOVE="yes")
        in_took = time.monotonic() - t0
        print(r.stderr)
        assert r.returncode == 0, r.stdout + r.stderr
        view = roles(nodes[0].port, 3, nodes)
        shares = masters_of(view)
        assert sorted(shares.values()) == [5461, 5461, 5462], shares
        assert len(view) == 6, view
        for n in nodes:
            assert not any(knows(n, gone) for gone in new), f"{addr(n)} still knows a removed node"
        for gone in new:
            assert known_nodes(gone) == 1, f"{addr(gone)} was not reset"
    finally:
        load.finish()
        io_result = io.finish() if io else None
    print(f"\n6 -> 8 nodes in {out_took:.1f} s, 8 -> 6 in {in_took:.1f} s, {KEYS} keys; redis-py: "
          f"{load.requests} requests under load, {len(load.failures)} failed "
          f"({load.client_bug} sent again after redis-py's ASK bug), the longest {load.longest[0] * 1000:.0f} ms "
          f"at {load.longest[1]}; ioredis: "
          + (f"{io_result['requests']} requests, {io_result['failures']} failed ({io_result['closed_resent']} sent "
             f"again after ioredis closed its own connections on a removed node's empty slot map)"
             if io_result else "not installed"))
    check_all(cluster_client(nodes), expected_after(load, io_result, KEYS))


@pytest.mark.matrix
def test_removal_refused_without_the_option(start_nodes, workdir):
    nodes = start_nodes(6)
    assert cluster_init(workdir, nodes).returncode == 0
    view = roles(nodes[0].port, 3, nodes)
    gone = next(n for n in nodes if view[addr(n)][0] == "master")
    kept = [n for n in nodes if n is not gone]
    r = cluster_init(workdir, kept)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if "REDIS_CLUSTER_ALLOW_REMOVE" in line]
    assert len(lines) == 1, r.stderr
    assert f"'{addr(gone)}' (master, {view[addr(gone)][2]} slots)" in lines[0], lines[0]
    assert all(known_nodes(n) == 6 for n in nodes), "nothing may change when cluster-init refuses"


@pytest.mark.matrix
def test_replicas_removed_without_moving_slots(start_nodes, start_node, workdir):
    """Two replicas left out of REDIS_NODES go: forgotten by every other node, reset; no slot moves."""
    nodes = start_nodes(6)
    assert cluster_init(workdir, nodes).returncode == 0
    extra = [start_node(), start_node()]
    assert cluster_init(workdir, nodes + extra, REDIS_CLUSTER_REPLICAS="2").returncode == 0
    roles(nodes[0].port, 5, nodes + extra)
    before = masters_of(roles(nodes[0].port))
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_ALLOW_REMOVE="yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 nodes to remove" in r.stderr, r.stderr
    view = roles(nodes[0].port, 3, nodes)
    assert masters_of(view) == before
    for n in nodes:
        assert not any(knows(n, gone) for gone in extra), f"{addr(n)} still knows a removed node"
    for gone in extra:
        assert known_nodes(gone) == 1, f"{addr(gone)} was not reset"
    # forgotten for good: a minute of gossip would bring them back otherwise (FORGET's ban is 60 s)
    assert cluster_init(workdir, nodes).returncode == 0


@pytest.mark.matrix
@needs_mover
def test_rebalance_only_when_asked(start_nodes, workdir):
    """A cluster whose masters hold uneven shares stays so by default (a line says how to even it), and is evened
    out with REDIS_CLUSTER_REBALANCE=yes."""
    nodes = start_nodes(3)
    assert cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=0).returncode == 0
    # move 1000 slots from the first master to the second by hand (empty slots: SETSLOT NODE on every node)
    nodes_by_slot = sorted(nodes, key=lambda n: min(int(s[0]) for s in next(
        info for info in client(n.port).execute_command("CLUSTER NODES").values() if "myself" in info["flags"]
    )["slots"]))
    first, second = nodes_by_slot[0], nodes_by_slot[1]
    second_id = client(second.port).execute_command("CLUSTER MYID")
    second_id = second_id.decode() if isinstance(second_id, bytes) else second_id
    for slot in range(4461, 5461):
        for n in nodes:
            client(n.port).execute_command("CLUSTER SETSLOT", slot, "NODE", second_id)
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=0)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "REDIS_CLUSTER_REBALANCE=yes" in r.stderr, r.stderr
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=0, REDIS_CLUSTER_REBALANCE="yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(masters_of(roles(first.port)).values()) == [5461, 5461, 5462]
