"""`kvinit cluster-init` and graceful failover, with real server nodes under `kvinit node` on 127.0.0.1,
checked with the real redis-py cluster client. The tests marked `matrix` run against every server of the matrix.

Debian's python3-redis 4.3.4 RedisCluster does not recover after a failover (its bug, fixed in 4.4.0): the tests
build a new client after a connection error.
"""

import os
import re
import signal
import subprocess
import time

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from conftest import LONG, SHORT, KVINIT_BIN, wait_until
from cluster_writer import Writer
from nodes import PASSWORD, client, free_port, make_start_node, node_env, secret_file


GRACEFUL_GAP_LIMIT = 0.64  # seconds: 10x the README's 64 ms write gap of a graceful master stop


@pytest.fixture
def start_node(launch, workdir):
    return make_start_node(launch, workdir)


@pytest.fixture
def start_nodes(start_node):
    def _start(count, **extra):
        return [start_node(**extra) for _ in range(count)]

    return _start


def nodes_list(nodes, sep=","):
    return sep.join(f"127.0.0.1:{n.port}" for n in nodes)


def init_env(workdir, nodes, **extra):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("KVINIT_", "REDIS_")) and key not in ("KVINIT_BIN", "KVINIT_PROBE"):
            del env[key]
    env.update({
        "REDIS_PASSWORD_FILE": str(secret_file(workdir, name="init_password")),
        "REDIS_NODES": nodes_list(nodes) if not isinstance(nodes, str) else nodes,
        "KVINIT_INIT_TIMEOUT": "60s",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cluster_init(workdir, nodes, timeout=LONG + 30, **extra):
    return subprocess.run([str(KVINIT_BIN), "cluster-init"], env=init_env(workdir, nodes, **extra),
                          capture_output=True, text=True, timeout=timeout)


def start_init(workdir, nodes, **extra):
    return subprocess.Popen([str(KVINIT_BIN), "cluster-init"], env=init_env(workdir, nodes, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def shape(port):
    """{node address: (role, master address or None, number of slots)} as one node sees it."""
    out = {}
    for addr, info in client(port).execute_command("CLUSTER NODES").items():
        slots = sum(int(b) - int(a) + 1 for a, b in (
            (r[0], r[-1]) if len(r) > 1 else (r[0], r[0]) for r in info["slots"])) if info["slots"] else 0
        master = None
        if "slave" in info["flags"]:
            master = info["master_id"]
        out[addr] = ("master" if "master" in info["flags"] else "replica", master, slots, info["node_id"])
    return out


def roles(port, replicas=None, nodes=None):
    """{address: (role, master address, slots)} as node `port` sees it. With `replicas` and `nodes`, first waits
    until that many replicas are known to every node: who replicates whom travels by gossip for a second or two
    after cluster-init (each node's own word is immediate, and that is what cluster-init prints)."""
    if replicas is not None:
        def converged():
            return all(sum(v[0] == "replica" for v in shape(n.port).values()) == replicas for n in nodes)

        wait_until(converged, LONG, f"every node to know the {replicas} replicas")
    s = shape(port)
    ids = {v[3]: k for k, v in s.items()}
    return {addr: (role, ids.get(master), slots) for addr, (role, master, slots, _) in s.items()}


def settled(nodes):
    """Waits until every node knows the 3 replicas and every replica's link to its master is up: right after
    cluster-init the masters may not know yet who replicates whom, and would not vote for a replica's takeover."""
    roles(nodes[0].port, 3, nodes)

    def links_up():
        infos = [client(n.port).info("replication") for n in nodes]
        return all(i["master_link_status"] == "up" for i in infos if i["role"] == "slave")

    wait_until(links_up, LONG, "every replica's master link to be up")


def all_ok(nodes):
    return all(client(n.port).execute_command("CLUSTER INFO").get("cluster_state") == "ok" for n in nodes)


def cluster_client(nodes, timeout=2):
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in nodes], password=PASSWORD,
                        socket_timeout=timeout, socket_connect_timeout=2)


def print_formation(r, nodes):
    """The time cluster-init says it took ("cluster ok (N ms)"), for the matrix table."""
    took = re.findall(r"cluster ok \((\d+) ms\)", r.stderr)
    print(f"\nformation of {len(nodes)} nodes: cluster-init said cluster ok after {took[-1] if took else '?'} ms")


def write_read_10000(nodes):
    rc = cluster_client(nodes)
    pipe = rc.pipeline()
    for i in range(10000):
        pipe.set(f"key:{i}", i)
    assert all(pipe.execute())
    pipe = rc.pipeline()
    for i in range(10000):
        pipe.get(f"key:{i}")
    assert [int(v) for v in pipe.execute()] == list(range(10000))
    rc.close()


# --------------------------------------------------------------------------- forming


@pytest.mark.matrix
def test_six_nodes_form_3_masters_3_replicas(start_nodes, workdir):
    nodes = start_nodes(6)
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    print_formation(r, nodes)
    assert all_ok(nodes)
    view = roles(nodes[0].port, 3, nodes)
    masters = sorted(a for a, v in view.items() if v[0] == "master")
    replicas = {a: v[1] for a, v in view.items() if v[0] == "replica"}
    assert masters == sorted(f"127.0.0.1:{n.port}" for n in nodes[:3]), view
    assert sorted(view[m][2] for m in masters) == [5461, 5461, 5462]
    assert sorted(replicas.values()) == masters, view  # one replica each
    # the printed shape names every node, in REDIS_NODES order
    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == ["node", "role", "slots", "master"]
    assert [l.split()[0] for l in lines[1:]] == [f"127.0.0.1:{n.port}" for n in nodes]
    assert lines[1].split()[1:3] == ["master", "0-5460"]
    write_read_10000(nodes)
    # the formation timeout was put back: nodes run with the configured cluster-node-timeout
    for n in nodes:
        assert client(n.port).config_get("cluster-node-timeout")["cluster-node-timeout"] == "5000"


@pytest.mark.matrix
def test_four_nodes_form_2_plus_2_with_a_warning(start_nodes, workdir):
    nodes = start_nodes(4)
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    print_formation(r, nodes)
    assert "2 masters: Redis Cluster needs a majority of 3 or more masters" in r.stderr
    view = roles(nodes[0].port, 2, nodes)
    assert sorted(v[0] for v in view.values()) == ["master", "master", "replica", "replica"]
    write_read_10000(nodes)


def test_nine_nodes_with_two_replicas_each(start_nodes, workdir):
    nodes = start_nodes(9)
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=2)
    assert r.returncode == 0, r.stdout + r.stderr
    view = roles(nodes[0].port, 6, nodes)
    masters = [a for a, v in view.items() if v[0] == "master"]
    assert len(masters) == 3
    for m in masters:
        assert sum(1 for v in view.values() if v[1] == m) == 2, view


def test_rerun_changes_nothing(start_nodes, workdir):
    nodes = start_nodes(6)
    assert cluster_init(workdir, nodes).returncode == 0
    roles(nodes[0].port, 3, nodes)
    before = shape(nodes[0].port)
    epochs = [client(n.port).execute_command("CLUSTER INFO")["cluster_current_epoch"] for n in nodes]
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to do" in r.stderr
    assert shape(nodes[0].port) == before
    assert [client(n.port).execute_command("CLUSTER INFO")["cluster_current_epoch"] for n in nodes] == epochs


def test_init_waits_for_nodes_that_start_later(start_node, workdir):
    ports = [free_port() for _ in range(6)]
    init = start_init(workdir, ",".join(f"127.0.0.1:{p}" for p in ports))
    try:
        time.sleep(4)  # long enough for a progress line naming the missing nodes
        assert init.poll() is None, init.communicate()
        nodes = [start_node(port=p) for p in ports]
        out, err = init.communicate(timeout=LONG + 30)
    finally:
        if init.poll() is None:
            init.kill()
            init.wait()
    assert init.returncode == 0, out + err
    assert "waiting for 6 of 6 nodes" in err and "Connection refused" in err, err
    assert all_ok(nodes)


def test_two_inits_at_once_make_one_cluster(start_nodes, workdir):
    nodes = start_nodes(6)
    a, b = start_init(workdir, nodes), start_init(workdir, nodes)
    out_a, err_a = a.communicate(timeout=LONG + 30)
    out_b, err_b = b.communicate(timeout=LONG + 30)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    assert all_ok(nodes)
    view = roles(nodes[0].port, 3, nodes)
    assert sum(v[0] == "master" for v in view.values()) == 3
    assert sum(v[2] for v in view.values()) == 16384
    write_read_10000(nodes)


def test_two_empty_nodes_join_a_formed_cluster(start_nodes, start_node, workdir):
    nodes = start_nodes(6)
    assert cluster_init(workdir, nodes).returncode == 0
    roles(nodes[0].port, 3, nodes)
    new = [start_node(), start_node()]
    # 8 nodes with 1 replica each would want a fourth master (issue 13, test_reshape.py); with 2 they want only 2,
    # and the 3 masters stay: the new nodes join as replicas
    r = cluster_init(workdir, nodes + new, REDIS_CLUSTER_REPLICAS="2")
    assert r.returncode == 0, r.stdout + r.stderr
    view = roles(nodes[0].port, 5, nodes + new)
    assert len(view) == 8
    masters = [a for a, v in view.items() if v[0] == "master"]
    assert len(masters) == 3, view
    new_masters = [view[f"127.0.0.1:{n.port}"][1] for n in new]
    assert all(view[f"127.0.0.1:{n.port}"][0] == "replica" for n in new)
    assert len(set(new_masters)) == 2, "the two new replicas go to two different masters"
    write_read_10000(nodes + new)


def test_node_with_data_outside_a_cluster_is_refused(start_nodes, start_node, workdir):
    nodes = start_nodes(5)
    port = free_port()
    standalone = start_node(port=port, REDIS_CLUSTER_ENABLED="no")
    client(port).set("precious", "data")
    standalone.send(signal.SIGTERM)
    assert standalone.wait(SHORT) == 0
    holder = start_node(port=port)  # same data dir, now a cluster node with a key and no slots
    r = cluster_init(workdir, nodes + [holder])
    assert r.returncode == 1, r.stdout + r.stderr  # README: 1 when it could not make the cluster ok
    assert f"127.0.0.1:{port} holds keys but is in no cluster" in r.stderr, r.stderr
    assert all(int(client(n.port).execute_command("CLUSTER INFO")["cluster_known_nodes"]) == 1 for n in nodes), \
        "nothing may be changed when the init refuses"


def test_wrong_password_is_a_clear_error(start_nodes, workdir):
    nodes = start_nodes(3)
    env_file = secret_file(workdir, value="not-the-password", name="wrong")
    r = cluster_init(workdir, nodes, REDIS_PASSWORD_FILE=env_file, KVINIT_INIT_TIMEOUT="3s",
                     REDIS_CLUSTER_REPLICAS=0)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "gave up waiting for 3 of 3 nodes" in r.stderr, r.stderr
    assert "AUTH refused by 127.0.0.1:" in r.stderr and "WRONGPASS" in r.stderr, r.stderr


def test_bad_nodes_list_is_refused(workdir):
    r = cluster_init(workdir, "127.0.0.1:6379,host:65536")
    assert r.returncode == 100
    assert "REDIS_NODES: entry 'host:65536': port must be a whole number from 1 to 65535" in r.stderr, r.stderr


def test_cluster_creator_forms_the_cluster_from_a_node(start_node, workdir):
    ports = [free_port() for _ in range(6)]
    listed = ",".join(f"127.0.0.1:{p}" for p in ports)
    nodes = [start_node(port=p) for p in ports[1:]]
    creator = start_node(port=ports[0], REDIS_CLUSTER_CREATOR="yes", REDIS_NODES=listed)
    nodes.insert(0, creator)
    wait_until(lambda: "cluster-init (REDIS_CLUSTER_CREATOR) done" in creator.stderr, LONG, "the creator's cluster-init",
               launched=creator)
    assert all_ok(nodes)
    assert creator.poll() is None


@pytest.mark.matrix
def test_cluster_heals_when_every_node_moved(start_node, workdir):
    """All six nodes come back at new addresses (127.0.0.2 instead of 127.0.0.1, the old one no longer bound):
    each fixes its own nodes.conf line and meets its peers by the names in REDIS_NODES; no cluster-init runs."""
    ports = [free_port() for _ in range(6)]
    # POD_IP, as Kubernetes' downward API gives it: the node announces its own address, which is when it heals
    old = {"REDIS_BIND": "127.0.0.1", "REDIS_CLUSTER_ANNOUNCE_IP": None, "POD_IP": "127.0.0.1",
           "REDIS_NODES": ",".join(f"127.0.0.1:{p}" for p in ports)}
    nodes = [start_node(port=p, **old) for p in ports]
    assert cluster_init(workdir, nodes).returncode == 0
    roles(nodes[0].port, 3, nodes)
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", ports[0])], password=PASSWORD)
    for i in range(1000):
        rc.set(f"moved:{i}", i)
    rc.close()
    # replicas first, so no master waits for a handover to a replica that is stopping too
    replicas = [n for n in nodes if client(n.port).info("replication")["role"] == "slave"]
    for n in replicas + [n for n in nodes if n not in replicas]:
        n.send(signal.SIGTERM)
        assert n.wait(SHORT) == 0, n.describe()

    new = {"REDIS_BIND": "127.0.0.2", "REDIS_CLUSTER_ANNOUNCE_IP": None, "POD_IP": "127.0.0.2",
           "REDIS_NODES": ",".join(f"127.0.0.2:{p}" for p in ports)}
    t0 = time.monotonic()
    moved = [start_node(port=p, wait=False, **new) for p in ports]

    def ok_everywhere():
        try:
            return all(redis.Redis(host="127.0.0.2", port=p, password=PASSWORD, socket_timeout=1)
                       .execute_command("CLUSTER INFO").get("cluster_state") == "ok" for p in ports)
        except redis.exceptions.RedisError:
            return False

    wait_until(ok_everywhere, LONG, "the moved cluster to be ok again")
    print(f"\nall 6 nodes moved to new addresses: cluster ok {time.monotonic() - t0:.1f} s after they started")
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.2", ports[0])], password=PASSWORD)
    assert [rc.get(f"moved:{i}") for i in range(1000)] == [str(i).encode() for i in range(1000)]
    rc.close()
    assert any("heal: every node of REDIS_NODES is known at its current address again" in n.stderr for n in moved), \
        moved[0].stderr


# --------------------------------------------------------------------------- graceful failover on stop


def stop_while_writing(writer, master):
    """Starts the writer, stops `master` with SIGTERM (it must exit 0), and stops the writer a second later."""
    writer.start()
    wait_until(lambda: len(writer.acked) > 50, SHORT, "the writer to get going")
    master.send(signal.SIGTERM)
    assert master.wait(SHORT) == 0, master.describe()
    time.sleep(1)
    writer.stop.set()
    writer.join(SHORT)


@pytest.mark.matrix
def test_sigterm_of_a_master_hands_its_slots_over(start_nodes, workdir):
    nodes = start_nodes(6)
    assert cluster_init(workdir, nodes).returncode == 0
    settled(nodes)  # as tests/bench/formation measures it: every node knows the replicas, every link is up
    writer = Writer([("127.0.0.1", n.port) for n in nodes], lambda host, port: client(port))
    owner_port = writer.owner()[1]
    owner = next(n for n in nodes if n.port == owner_port)
    stop_while_writing(writer, owner)
    gap = writer.gap()
    print(f"\nwrite gap during a graceful stop of a master: {gap * 1000:.0f} ms; {writer.summary()}")
    took = re.search(r"took over in (\d+) ms", owner.stderr)
    assert took, owner.stderr
    assert int(took.group(1)) / 1000 < GRACEFUL_GAP_LIMIT, owner.stderr
    # README: 64 ms here (tests/bench/formation), goal < 0.5 s; a plain SIGTERM with no handover takes seconds
    assert gap < GRACEFUL_GAP_LIMIT, f"write gap {gap:.2f}s; {writer.summary()}"
    assert "CLUSTERDOWN" not in writer.error_counts(), f"the cluster went down during the handover: {writer.summary()}"
    new_owner = writer.owner()[1]
    assert new_owner != owner_port
    missing = writer.lost(lambda: client(new_owner))
    assert not missing, f"acknowledged writes lost: {missing[:10]}"
