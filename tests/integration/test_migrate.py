"""Moving slots online (node/cluster/migrate.c, driven by build/tests/move_slots until cluster-init plans moves):
keys with their TTLs and a 50 MB hash move while a cluster client writes and reads, a key already on the target is
refused by name, and a move killed half way is finished by cluster_fix_open_slots with no key lost. Atomic slot
migration on Valkey >= 9.0, MIGRATE elsewhere."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from conftest import LONG, PROBE_BIN, wait_until
from nodes import PASSWORD, answers, client, cluster_ok, make_start_node, secret_file, server_pid
from test_cluster import cluster_init, nodes_list

# beside the probe: the helpers of the build under test (build-sanitize/ under `make SANITIZE=... check`)
MOVE_SLOTS = os.environ.get("KVINIT_MOVE_SLOTS", str(Path(PROBE_BIN).with_name("move_slots")))

# A quarter of the slots for the new master: the last 1365 or 1366 slots of each of the three.
QUARTER_MOVES = ["4096-5460:0:3", "9557-10922:1:3", "15018-16383:2:3"]


@pytest.fixture
def four_masters(launch, workdir):
    """Three masters formed by cluster-init (no replicas) and a fourth, empty master met by hand."""
    start = make_start_node(launch, workdir)
    nodes = [start() for _ in range(4)]
    r = cluster_init(workdir, nodes[:3], REDIS_CLUSTER_REPLICAS=0)
    assert r.returncode == 0, r.stderr
    client(nodes[0].port).execute_command("CLUSTER MEET", "127.0.0.1", nodes[3].port)
    wait_until(lambda: all(len(client(n.port).execute_command("CLUSTER NODES")) == 4 for n in nodes), LONG,
               "every node to know the fourth master")
    # a node met into a cluster says CLUSTERDOWN (to MIGRATE too) until its rejoin delay is over: up to the node
    # timeout, 5 s; cluster-init's reshape waits for the same before it moves slots
    wait_until(lambda: all(cluster_ok(client(n.port)) for n in nodes), LONG, "every node's cluster_state:ok")
    return nodes


def move_slots(workdir, nodes, *args, timeout=LONG * 4):
    env = dict(os.environ, REDIS_PASSWORD_FILE=str(secret_file(workdir, name="mover_password")))
    env.pop("REDIS_PASSWORD", None)
    return subprocess.run([MOVE_SLOTS, nodes_list(nodes), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def start_move_slots(workdir, nodes, *args):
    env = dict(os.environ, REDIS_PASSWORD_FILE=str(secret_file(workdir, name="mover_password")))
    return subprocess.Popen([MOVE_SLOTS, nodes_list(nodes), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def cluster_client(nodes):
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in nodes], password=PASSWORD,
                        socket_timeout=10, socket_connect_timeout=2)


def atomic(nodes):
    try:
        client(nodes[0].port).execute_command("CLUSTER GETSLOTMIGRATIONS")
        return True
    except redis.exceptions.ResponseError:
        return False


def owners(port):
    """{slot: owner address} as one node sees it (CLUSTER SLOTS)."""
    out = {}
    for start, end, master, *_ in client(port).execute_command("CLUSTER SLOTS"):
        host = master[0].decode() if isinstance(master[0], bytes) else master[0]
        for s in range(start, end + 1):
            out[s] = f"{host}:{master[1]}"
    return out


def agreed(nodes, expect_slots=None):
    views = [owners(n.port) for n in nodes]
    if any(v != views[0] for v in views) or len(views[0]) != 16384:
        return False
    if expect_slots:
        counts = {}
        for addr in views[0].values():
            counts[addr] = counts.get(addr, 0) + 1
        return sorted(counts.values()) == sorted(expect_slots)
    return True


def open_slots(nodes):
    """The nodes' own CLUSTER NODES lines that show a slot importing or migrating."""
    return [line for n in nodes for line in raw_nodes(n.port).splitlines() if "myself" in line and "[" in line]


def raw_nodes(port):
    c = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=5, decode_responses=True)
    c.set_response_callback("CLUSTER NODES", lambda r, **kw: r)
    return c.execute_command("CLUSTER NODES")


def fill(rc, count, prefix="k", ttl_every=3):
    """count keys of 100 bytes; every ttl_every-th one with a TTL of 1000 s."""
    pipe = rc.pipeline(transaction=False)
    for i in range(count):
        value = f"{i:08d}" + "x" * 92
        if i % ttl_every == 0:
            pipe.set(f"{prefix}:{i}", value, ex=1000)
        else:
            pipe.set(f"{prefix}:{i}", value)
        if i % 5000 == 4999:
            pipe.execute()
            pipe = rc.pipeline(transaction=False)
    pipe.execute()


def check_keys(rc, count, prefix="k", ttl_every=3):
    pipe = rc.pipeline(transaction=False)
    for i in range(count):
        pipe.get(f"{prefix}:{i}")
        pipe.ttl(f"{prefix}:{i}")
    got = pipe.execute()
    bad = []
    for i in range(count):
        value, ttl = got[2 * i], got[2 * i + 1]
        if value != (f"{i:08d}" + "x" * 92).encode():
            bad.append((i, "value", value))
        elif i % ttl_every == 0 and not 0 < ttl <= 1000:
            bad.append((i, "ttl", ttl))
        elif i % ttl_every and ttl != -1:
            bad.append((i, "ttl", ttl))
    assert not bad, f"{len(bad)} keys wrong, first {bad[:5]}"


def key_in_slots(first, last, prefix):
    for i in range(100000):
        name = f"{prefix}{i}"
        if first <= redis.crc.key_slot(name.encode()) <= last:
            return name
    raise AssertionError("no key name found")


def know_every_master(rc, nodes):
    """redis-py 4.3.4 learns the nodes from CLUSTER SLOTS only, so an ASK to a master that has no slot yet (the new
    one) finds no node, and the client raises AttributeError ('NoneType' ... 'server_type') instead of following it:
    it is told about every node up front, as a client that reads CLUSTER NODES knows them."""
    for n in nodes:
        name = f"127.0.0.1:{n.port}"
        if name not in rc.nodes_manager.nodes_cache:
            rc.nodes_manager.nodes_cache[name] = ClusterNode("127.0.0.1", n.port, server_type="primary")
    rc.nodes_manager.create_redis_connections(list(rc.nodes_manager.nodes_cache.values()))


class Traffic(threading.Thread):
    """A cluster client (redis-py's RedisCluster, which follows MOVED and ASK) that writes and reads its own keys
    while slots move; every failed request is kept."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.rc = cluster_client(nodes)
        know_every_master(self.rc, nodes)
        self.stop = threading.Event()
        self.done = 0
        self.failed = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            key = f"traffic:{i % 5000}"
            try:
                self.rc.set(key, i)
                if int(self.rc.get(key)) != i:
                    self.failed.append((key, "read back another value"))
                self.done += 1
            except Exception as e:  # noqa: BLE001 - a thread that dies says nothing
                self.failed.append((key, repr(e)))
            i += 1


def fixed_with_every_key(workdir, nodes, count):
    """`move_slots fix` after a move cut short: it succeeds, leaves no slot open, every node agrees on the owners,
    and the `count` keys fill() wrote (ttl_every=7) are all there, each once."""
    r = move_slots(workdir, nodes, "fix")
    print(r.stderr)
    assert r.returncode == 0, r.stderr
    assert not open_slots(nodes)
    wait_until(lambda: agreed(nodes), LONG, "every node to agree on one owner of every slot")
    check_keys(cluster_client(nodes), count, ttl_every=7)
    assert sum(client(n.port).dbsize() for n in nodes) == count


def big_hash(rc, name):
    """A hash of 50 MB: 50,000 fields of 1,000 bytes."""
    for start in range(0, 50000, 5000):
        rc.hset(name, mapping={f"f{j}": f"{j:08d}" + "v" * 992 for j in range(start, start + 5000)})


@pytest.mark.matrix
def test_slots_move_online_with_ttls_and_a_big_key(four_masters, workdir):
    nodes = four_masters
    rc = cluster_client(nodes)
    fill(rc, 30000)
    hash_name = key_in_slots(4096, 5460, "big:")
    big_hash(rc, hash_name)
    traffic = Traffic(nodes)
    traffic.start()
    time.sleep(0.3)
    try:
        r = move_slots(workdir, nodes, "move", *QUARTER_MOVES)
    finally:
        traffic.stop.set()
        traffic.join(timeout=30)
    print(r.stderr)
    assert r.returncode == 0, r.stderr
    assert "moved 4097 of 4097 slots" in r.stderr
    wait_until(lambda: agreed(nodes, [4095, 4096, 4096, 4097]), LONG, "every node to agree on a quarter each")
    assert traffic.done > 100
    assert not traffic.failed, f"{len(traffic.failed)} failed requests, first {traffic.failed[:3]}"
    rc = cluster_client(nodes)
    check_keys(rc, 30000)
    assert rc.hlen(hash_name) == 50000
    assert rc.hget(hash_name, "f49999") == ("00049999" + "v" * 992).encode()
    # the big hash lives on the new master now
    assert client(nodes[3].port).execute_command("CLUSTER COUNTKEYSINSLOT",
                                                 redis.crc.key_slot(hash_name.encode())) >= 1


@pytest.mark.matrix
def test_a_key_on_both_ends_is_refused_by_name(four_masters, workdir):
    nodes = four_masters
    if atomic(nodes):
        pytest.skip("atomic slot migration copies the slot whole: a key cannot be on the target beforehand")
    rc = cluster_client(nodes)
    key = key_in_slots(100, 100, "clash:")
    rc.set(key, "source value")
    source_id = client(nodes[0].port).execute_command("CLUSTER MYID")
    target = redis.Redis(host="127.0.0.1", port=nodes[3].port, password=PASSWORD, single_connection_client=True)
    target.execute_command("CLUSTER SETSLOT", 100, "IMPORTING", source_id)
    target.execute_command("ASKING")
    target.set(key, "target value")

    r = move_slots(workdir, nodes, "move", "100-100:0:3")
    assert r.returncode == 1
    assert f"key '{key}' (slot 100) exists on both" in r.stderr, r.stderr
    # nothing was overwritten
    assert client(nodes[0].port).get(key) == b"source value"
    target.execute_command("ASKING")
    assert target.get(key) == b"target value"


@pytest.mark.matrix
def test_a_move_killed_half_way_is_finished_by_fix(four_masters, workdir):
    nodes = four_masters
    rc = cluster_client(nodes)
    fill(rc, 120000, ttl_every=7)
    p = start_move_slots(workdir, nodes, "move", *QUARTER_MOVES)
    try:
        if not atomic(nodes):
            # a source migrating: keys are on both ends then
            wait_until(lambda: any("->-" in line for line in open_slots(nodes)) or p.poll() is not None, LONG,
                       "a slot to be migrating")
        assert p.poll() is None, "the move ended before it could be killed: " + p.communicate()[1]
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(timeout=LONG)
    left_open = open_slots(nodes)
    print(f"\nopen after kill -9: {len(left_open)} lines")
    fixed_with_every_key(workdir, nodes, 120000)


@pytest.mark.matrix
def test_a_target_restarted_half_way_and_the_move_finished_by_fix(four_masters, workdir):
    """The mover dies, then the target's server restarts (kvinit brings it back with its AOF and nodes.conf, the
    slot still importing there): fix finishes every slot once the restarted node is ok again."""
    nodes = four_masters
    fill(cluster_client(nodes), 120000, ttl_every=7)
    p = start_move_slots(workdir, nodes, "move", *QUARTER_MOVES)
    try:
        if not atomic(nodes):
            wait_until(lambda: open_slots(nodes) or p.poll() is not None, LONG, "a slot to be open")
        assert p.poll() is None, "the move ended before it could be killed: " + p.communicate()[1]
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(timeout=LONG)
    time.sleep(1.5)  # appendfsync everysec: what the servers did is on disk before the kill
    pid = server_pid(nodes[3])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: server_pid(nodes[3]) != pid and answers(nodes[3].port), LONG, "the target's server back")
    fixed_with_every_key(workdir, nodes, 120000)
