"""Issue 13, "agreement before ok": when `kvinit cluster-init` exits 0, every node's CLUSTER NODES already agrees on
the same masters with the same slots and the same replica-of links, with no handshake/noaddr/fail?/fail flag. The
views are read from every node the moment cluster-init has exited, with no waiting (before the change, a fresh
6-node cluster still had nodes that saw a replica as a master, and the 9-node test of test_cluster.py had to wait
for gossip)."""

import time

import pytest
import redis

from nodes import PASSWORD, make_start_node
from test_cluster import cluster_init

UNSETTLED = {"handshake", "noaddr", "fail?", "fail"}


@pytest.fixture
def start_node(launch, workdir):
    return make_start_node(launch, workdir)


def raw_nodes(port):
    """CLUSTER NODES as the server wrote it."""
    c = redis.Connection(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=2)
    try:
        c.send_command("CLUSTER", "NODES")
        text = c.read_response()
    finally:
        c.disconnect()
    return text.decode() if isinstance(text, bytes) else text


def view(text):
    """{id: (role, master id or '-', slots)} and the unsettled flags, from one node's CLUSTER NODES."""
    out, bad = {}, []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        flags = set(f[2].split(","))
        bad += [(f[1], flag) for flag in sorted(flags & UNSETTLED)]
        # an import or migration in progress ("[N->-id]") is no slot served
        slots = tuple(s for s in f[8:] if not s.startswith("["))
        out[f[0]] = ("master" if "master" in flags else "replica", f[3], slots)
    return out, bad


def disagreement(nodes):
    """None when every node's view is the same; else the first difference in words."""
    views = {}
    for n in nodes:  # read all of them first: no time for gossip between two reads beyond the reads themselves
        views[n.port] = raw_nodes(n.port)
    first, first_port = None, None
    for port, text in views.items():
        v, bad = view(text)
        if bad:
            return f"node {port} flags {bad}"
        if len(v) != len(nodes):
            return f"node {port} knows {len(v)} nodes, not {len(nodes)}"
        if first is None:
            first, first_port = v, port
            continue
        for node_id, entry in v.items():
            if first.get(node_id) != entry:
                return f"node {port} sees {node_id[:8]} as {entry}, node {first_port} as {first.get(node_id)}"
    return None


def form_and_check(start_node, workdir, count, replicas):
    nodes = [start_node() for _ in range(count)]
    t0 = time.monotonic()
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=replicas)
    took = time.monotonic() - t0
    why = disagreement(nodes)  # at once: cluster-init said the nodes agree
    assert r.returncode == 0, r.stdout + r.stderr
    assert why is None, f"right after cluster-init exited 0: {why}\n{r.stderr}"
    roles = [e[0] for e in view(raw_nodes(nodes[0].port))[0].values()]
    assert roles.count("master") == count // (replicas + 1)
    print(f"\n{count} nodes, replicas {replicas}: cluster-init exited 0 after {took * 1000:.0f} ms, "
          f"every node agreeing")
    return nodes


@pytest.mark.matrix
def test_six_nodes_agree_when_init_exits(start_node, workdir):
    form_and_check(start_node, workdir, 6, 1)


def test_twelve_nodes_with_two_replicas_agree_when_init_exits(start_node, workdir):
    form_and_check(start_node, workdir, 12, 2)


def test_new_replicas_are_known_everywhere_when_init_exits(start_node, workdir):
    nodes = form_and_check(start_node, workdir, 6, 1)
    new = [start_node(), start_node()]
    r = cluster_init(workdir, nodes + new)
    why = disagreement(nodes + new)
    assert r.returncode == 0, r.stdout + r.stderr
    assert why is None, f"right after cluster-init added 2 replicas: {why}\n{r.stderr}"
