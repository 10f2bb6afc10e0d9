"""`make scale NODES=8` then `make scale NODES=6` on the main layout, under load (issue 13, "Using it").

One stack (the main layout on kvinit:redis-8.0), 20k keys loaded, then cluster clients on the host, reaching the
nodes as the README says a user does (the published ports and the hosts line, with redis-node-6 and -7 in it):
redis-py's RedisCluster writing new keys and reading the loaded ones, and ioredis's Cluster doing the same when
node and npm are there (tests/integration/ioredis_load.js, ioredis 5 installed into build/npm once). All along,
`make scale NODES=8` (compose/scale.sh, run as a user runs it) adds redis-node-6 and -7, and `make scale NODES=6`
drains and removes them. No request may fail after the clients' own MOVED/ASK handling; every key is there and
right at the end.

Debian's python3-redis 4.3.4 follows an ASK to a node it has not loaded yet into its own AttributeError (the
request never reached a server): such a request is counted apart, the client's topology loaded again, and the
request sent again, as in tests/integration/test_reshape.py. After a connection error 4.3.4 never recovers
(conftest): the client is built again, and the error counted as a failed request.
"""

import json
import os
import random
import subprocess
import threading
import time

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from conftest import COMPOSE_DIR, REPO, STACK, _host_map, compose, password, sh, wait_until
from ioredis import ioredis_modules

KEYS = 20_000
NAMES = [f"redis-node-{i}" for i in range(8)]
PORTS = {name: 6379 + i for i, name in enumerate(NAMES)}
ADDED = NAMES[6:]
SCALE_FILE = COMPOSE_DIR / "docker-compose.scale.yml"
MARKER = COMPOSE_DIR / ".scaled-out"
IOREDIS_LOAD = REPO / "tests" / "integration" / "ioredis_load.js"
CLIENT_BUG = ("server_type", "redis_connection")  # redis-py's own AttributeError on a node it has not loaded




def cluster_client():
    return RedisCluster(startup_nodes=[ClusterNode("redis-node-0", 6379)], password=password(), socket_timeout=5,
                        socket_connect_timeout=5)


def node_client(name):
    c = redis.Redis(host="127.0.0.1", port=PORTS[name], password=password(), socket_timeout=5,
                    socket_connect_timeout=5)
    c.set_response_callback("CLUSTER NODES", lambda r, **kw: r.decode() if isinstance(r, bytes) else r)
    return c


def view(name):
    """A node's CLUSTER NODES: {hostname: (flags, hostname of its master or '-', slots it owns)}."""
    out = {}
    ids = {}
    lines = [line.split() for line in node_client(name).execute_command("CLUSTER NODES").splitlines() if line]
    for f in lines:
        ids[f[0]] = f[1].partition(",")[2] or f[1]
    for f in lines:
        slots = 0
        for r in f[8:]:
            if r.startswith("["):
                continue  # a slot being migrated or imported: counted where it is owned
            a, _, b = r.partition("-")
            slots += int(b or a) - int(a) + 1
        out[ids[f[0]]] = (set(f[2].split(",")), ids.get(f[3], f[3]), slots)
    return out


def agreed(names, masters):
    """Every node of `names` sees exactly `names`, none flagged, `masters` masters with 16384 slots between them
    (each within 1 slot of an even share), the same masters and replica links in every view; the view, or None."""
    share = 16384 / masters
    first = None
    for name in names:
        v = view(name)
        if set(v) != set(names):
            return None
        if any(flags & {"handshake", "fail", "fail?", "noaddr"} for flags, _, _ in v.values()):
            return None
        owners = {n: s for n, (flags, _, s) in v.items() if "master" in flags}
        if len(owners) != masters or sum(owners.values()) != 16384 or \
                any(abs(s - share) > 1 for s in owners.values()):
            return None
        links = {n: (bool("master" in flags), master, s) for n, (flags, master, s) in v.items()}
        if first is None:
            first = links
        elif links != first:
            return None
    return first


class Load(threading.Thread):
    """redis-py's RedisCluster: SET load:<i> then GET of a loaded k:<n>, one after the other, as fast as it goes.
    Every request that raises (after the client's own MOVED/ASK handling) or reads a wrong value is a failure."""

    def __init__(self):
        super().__init__(daemon=True)
        self.rc = cluster_client()
        self.written = {}
        self.failures = []
        self.client_bug = 0
        self.rebuilt = 0
        self.requests = 0
        self.stop = threading.Event()

    def request(self, fn, *args):
        for _ in range(10):
            try:
                return fn(*args)
            except AttributeError as e:
                if not any(word in str(e) for word in CLIENT_BUG):
                    raise
                self.client_bug += 1
                time.sleep(0.05)
                self.rc.nodes_manager.initialize()
        return fn(*args)

    def run(self):
        rnd = random.Random(13)
        i = 0
        while not self.stop.is_set():
            key = f"load:{i}"
            try:
                self.request(lambda k, v: self.rc.set(k, v), key, f"w{i}")
                self.written[key] = f"w{i}"
                i += 1
                probe = f"k:{rnd.randrange(KEYS)}"
                value = self.request(lambda k: self.rc.get(k), probe)
                if value is None or value.decode() != "v" + probe[2:]:
                    self.failures.append((time.strftime('%H:%M:%S', time.gmtime()), "wrong value", probe, value))
                self.requests += 2
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                self.failures.append((time.strftime('%H:%M:%S', time.gmtime()), type(e).__name__, key, str(e)))
                time.sleep(0.05)
                try:  # 4.3.4 never recovers after a connection error (conftest): a new client
                    self.rc.close()
                    self.rc = cluster_client()
                    self.rebuilt += 1
                except (redis.exceptions.RedisError, OSError):
                    pass
            except Exception as e:  # noqa: BLE001: every failure is counted, none ends the load
                self.failures.append((time.strftime('%H:%M:%S', time.gmtime()), type(e).__name__, key, str(e)))
                time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.join(30)
        self.rc.close()


class IoredisLoad:
    """ioredis's Cluster (tests/integration/ioredis_load.js) from the host: its natMap is the hosts line."""

    def __init__(self, modules):
        nat = {f"{name}:{port}": {"host": "127.0.0.1", "port": port} for name, port in PORTS.items()}
        env = dict(os.environ, NODE_PATH=str(modules), PASSWORD=password(), KEYS=str(KEYS), NAT_MAP=json.dumps(nat),
                   SEEDS=",".join(f"127.0.0.1:{PORTS[n]}" for n in NAMES[:6]))
        self.proc = subprocess.Popen(["node", str(IOREDIS_LOAD)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self):
        out, err = self.proc.communicate(input="", timeout=60)
        assert self.proc.returncode == 0 and out.strip(), f"ioredis load: {self.proc.returncode}\n{out}\n{err}"
        return json.loads(out.strip().splitlines()[-1])


def fill():
    rc = cluster_client()
    for start in range(0, KEYS, 10_000):
        pipe = rc.pipeline()
        for i in range(start, min(start + 10_000, KEYS)):
            pipe.set(f"k:{i}", f"v{i}")
        assert all(pipe.execute())
    rc.close()


def check_all(expected):
    rc = cluster_client()
    keys = list(expected)
    for start in range(0, len(keys), 10_000):
        chunk = keys[start:start + 10_000]
        pipe = rc.pipeline()
        for k in chunk:
            pipe.get(k)
        got = pipe.execute()
        wrong = [(k, v) for k, v in zip(chunk, got) if v is None or v.decode() != expected[k]]
        assert not wrong, f"{len(wrong)} of {len(keys)} keys missing or wrong, first: {wrong[:5]}"
    rc.close()


def diagnose():
    """What each node says when something failed: its cluster_state, and its log's lines about the cluster's state
    and failure reports."""
    for name in NAMES:
        try:
            state = node_client(name).execute_command("CLUSTER INFO")["cluster_state"]
        except (redis.exceptions.RedisError, OSError) as e:
            state = f"no answer ({e})"
        logs = sh("docker", "logs", "--timestamps", name, check=False)
        lines = [line for line in (logs.stdout + logs.stderr).splitlines()
                 if any(w in line for w in ("state changed", "FAIL", "failing", "epoch", "failover", "Failover"))]
        print(f"{name}: cluster_state {state}\n  " + "\n  ".join(lines[-15:]))


def make_scale(nodes):
    t0 = time.monotonic()
    r = sh("make", "-s", "-C", REPO, "scale", f"NODES={nodes}", check=False, timeout=600)
    took = time.monotonic() - t0
    print(f"\n--- make scale NODES={nodes}: exit {r.returncode} in {took:.1f} s\n{r.stdout[-4000:]}{r.stderr[-3000:]}")
    if r.returncode != 0:
        diagnose()
    assert r.returncode == 0, f"make scale NODES={nodes} -> {r.returncode}"
    return r.stdout + r.stderr, took


def added_leftovers():
    containers = sh("docker", "ps", "-aq", *[a for n in ADDED for a in ("--filter", f"name=^{n}$")]).stdout.split()
    volumes = [v for v in sh("docker", "volume", "ls", "-q").stdout.split()
               if v in ("kvinit_redis-data-6", "kvinit_redis-data-7")]
    return containers, volumes


def remove_added():
    """What `make scale NODES=6` leaves: neither the two nodes nor their volumes nor the marker."""
    containers, volumes = added_leftovers()
    if containers:
        sh("docker", "rm", "-f", *containers, check=False)
    if volumes:
        sh("docker", "volume", "rm", *volumes, check=False)
    MARKER.unlink(missing_ok=True)


@pytest.fixture(scope="module", autouse=True)
def nothing_scaled(engine):
    """Before the stack (autouse: first): no node or volume or marker of an earlier run that failed half way, which
    `make up` would take in. After: the same, whatever the test left (the stack's down does not know the two)."""
    remove_added()
    yield
    compose("main", "rm", "-s", "-f", *ADDED, overrides=[SCALE_FILE], check=False)
    remove_added()


@pytest.mark.parametrize("stack", ["main"], indirect=True)
def test_scale_to_eight_and_back_to_six_under_load(stack, hosts_line):
    t_test = time.monotonic()
    _host_map.update({name: "127.0.0.1" for name in ADDED})  # the hosts line with the two new names in it
    t0 = time.monotonic()
    fill()
    print(f"\n{KEYS} keys loaded in {time.monotonic() - t0:.1f} s")

    load = Load()
    load.start()
    modules = ioredis_modules()
    io = IoredisLoad(modules) if modules else None
    io_result = None
    try:
        wait_until(lambda: load.requests > 100, 30, "the redis-py load to get going")

        out, out_took = make_scale(8)
        assert "cluster ok" in out, out[-2000:]
        t0 = time.monotonic()
        links = wait_until(lambda: agreed(NAMES, 4), 30, "4 masters with 4096 slots each in the views of all 8 nodes")
        agree_8 = time.monotonic() - t0
        assert MARKER.exists(), "make scale NODES=8 must leave compose/.scaled-out (make up keeps the two nodes)"
        masters = sorted(n for n, (is_master, _, _) in links.items() if is_master)
        assert len([n for n in ADDED if links[n][0]]) == 1, links  # one new master, the other its replica
        assert links[ADDED[1]][1] == ADDED[0] or links[ADDED[0]][1] == ADDED[1], links
        assert set(sh(STACK, "hosts").stdout.split()[1:]) == set(NAMES), "make hosts must list the 8 nodes"
        exporter = (COMPOSE_DIR / "secrets" / "redis_exporter_password").read_text().strip("\n")
        for name in ADDED:  # the ACL users from the secret on the new nodes too ("ACL users")
            assert redis.Redis(host="127.0.0.1", port=PORTS[name], username="exporter", password=exporter,
                               socket_timeout=5).info()["cluster_enabled"] == 1, name
        n8 = load.requests
        wait_until(lambda: load.requests > n8 + 200, 30, "the load going on over 8 nodes")

        out, in_took = make_scale(6)
        t0 = time.monotonic()
        links = wait_until(lambda: agreed(NAMES[:6], 3), 30, "3 masters in the views of the 6 nodes, without 6 and 7")
        agree_6 = time.monotonic() - t0
        assert len([n for n, (is_master, _, _) in links.items() if is_master]) == 3, links
        containers, volumes = added_leftovers()
        assert not containers, f"make scale NODES=6 left the containers of {ADDED}: {containers}"
        assert not volumes, f"make scale NODES=6 left the volumes {volumes}"
        assert not MARKER.exists(), "make scale NODES=6 must remove compose/.scaled-out"
        n6 = load.requests
        wait_until(lambda: load.requests > n6 + 200, 30, "the load going on over 6 nodes")
    finally:
        load.finish()
        if io:
            io_result = io.finish()
        print(f"\nredis-py: {load.requests} requests, {len(load.failures)} failed (first: {load.failures[:3]}), "
              f"{load.client_bug} sent again after its ASK bug, {load.rebuilt} client rebuilds; ioredis: "
              + (f"{io_result['requests']} requests, {io_result['failures']} failed (first: {io_result['first'][:3]})"
                 if io_result else "not installed"))
    print(f"make scale NODES=8: {out_took:.1f} s (every view agreed {agree_8:.1f} s after it; masters {masters}); "
          f"NODES=6: {in_took:.1f} s (agreed {agree_6:.1f} s after)")
    if load.failures:
        diagnose()
    assert not load.failures, load.failures[:10]
    expected = {f"k:{i}": f"v{i}" for i in range(KEYS)}
    expected.update(load.written)
    if io_result:
        assert io_result["failures"] == 0, io_result["first"]
        expected.update({f"io:{i}": f"x{i}" for i in range(io_result["written"])})
    t0 = time.monotonic()
    check_all(expected)
    print(f"{len(expected)} keys checked in {time.monotonic() - t0:.1f} s; the test took "
          f"{time.monotonic() - t_test:.1f} s after the stack was up")
