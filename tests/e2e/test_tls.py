"""`make up TLS=1` on the main layout (README.md, "TLS with compose"), end to end: host clients that speak TLS and
follow redirects (the host's redis-cli -c, ioredis, redis-py), the exporter scraping over TLS, `make rotate-certs`
under a TLS client load with 0 failed requests, `make rotate` + `make rotate-finish` on the TLS stack, and last
`make scale NODES=8` then `NODES=6` under a TLS client load (the e2e test of `make scale`: why it runs on TLS is in
its docstring).

One stack for the whole module (the `stack` fixture with "main+tls"). The host clients present the certificate of
redis-node-0 as theirs (what the README shows), copied before anything rotates: `make rotate-certs` renames a new key
and then a new certificate over the files, and a client that read them between the two would have a pair that does
not match (its own mistake, not the server's). Redirects name the nodes (redis-node-N), which the certificates name
too: redis-py resolves them through the hosts line that conftest emulates, the host's redis-cli through a hosts file
of its own in a private mount namespace (unshare -m; /etc/hosts stays as it is), ioredis through its natMap.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest
import redis
from redis.cluster import RedisCluster

from cluster_load import ClusterLoad, check_all, expected_after, fill
from conftest import COMPOSE_DIR, MAIN_PORTS, REPO, SECRET, STACK, _host_map, compose, password, sh, wait_until
from ioredis import IoredisLoad, ioredis_modules

pytestmark = pytest.mark.parametrize("stack", ["main+tls"], indirect=True)

TLS_DIR = COMPOSE_DIR / "secrets" / "tls"
NEXT = SECRET.with_name("redis_password_next")
PREVIOUS = SECRET.with_name("redis_password_previous")
NODES = sorted(MAIN_PORTS.items(), key=lambda n: n[1])
SERVE_GOAL, SERVE_LIMIT = 2.0, 5.0  # seconds from a node's new files to it serving the new certificate
TIMEOUT = 3


@pytest.fixture(scope="module")
def client_files(tmp_path_factory):
    """The CA and redis-node-0's certificate and key, copied: {"ca": ..., "cert": ..., "key": ...}."""
    d = tmp_path_factory.mktemp("tls-client")
    files = {}
    for name, src in (("ca", TLS_DIR / "ca.crt"), ("cert", TLS_DIR / "redis-node-0" / "tls.crt"),
                      ("key", TLS_DIR / "redis-node-0" / "tls.key")):
        files[name] = d / src.name
        shutil.copyfile(src, files[name])
    return files


def ssl_kwargs(files):
    return dict(ssl=True, ssl_ca_certs=str(files["ca"]), ssl_certfile=str(files["cert"]),
                ssl_keyfile=str(files["key"]), ssl_cert_reqs="required", ssl_check_hostname=True)


def node_client(files, name, port, secret=None):
    return redis.Redis(host=name, port=port, password=password() if secret is None else secret,
                       socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, **ssl_kwargs(files))


def cluster_client(files):
    return RedisCluster(host="redis-node-0", port=MAIN_PORTS["redis-node-0"], password=password(),
                        socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, **ssl_kwargs(files))


def keys_on_every_master(rc, prefix, per_master=1):
    """{master name: [keys]}: per_master keys whose slots each of the three masters owns."""
    found = {}
    i = 0
    while len(found) < 3 or min(map(len, found.values())) < per_master:
        key = f"{prefix}:{i}"
        found.setdefault(rc.get_node_from_key(key).name, []).append(key)
        i += 1
        assert i < 10000, found
    return {name: keys[:per_master] for name, keys in found.items()}


def served_certificate(context, port):
    """The certificate (DER) the node on this port serves, from a real handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        with context.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def file_certificate(name):
    return ssl.PEM_cert_to_DER_cert((TLS_DIR / name / "tls.crt").read_text())


def handshake_context(files):
    context = ssl.create_default_context(cafile=str(files["ca"]))
    context.load_cert_chain(str(files["cert"]), str(files["key"]))
    return context


def test_plain_text_client_is_refused(stack, client_files):
    for name, port in NODES:
        plain = redis.Redis(host="127.0.0.1", port=port, password=password(), socket_timeout=TIMEOUT,
                            socket_connect_timeout=TIMEOUT)
        with pytest.raises(redis.exceptions.ConnectionError):
            plain.ping()
        assert node_client(client_files, "127.0.0.1", port).ping(), name


def test_host_redis_cli_follows_redirects_over_tls(stack, client_files, hosts_line, tmp_path):
    if not shutil.which("redis-cli") or not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs the host's redis-cli, and unshare as root for a hosts file of its own")
    rc = cluster_client(client_files)
    keys = keys_on_every_master(rc, "cli")
    assert len(keys) == 3
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost " + sh(STACK, "hosts").stdout.split(None, 1)[1])
    ordered = [k for ks in keys.values() for k in ks]
    commands = "".join(f"SET {k} v-{k}\n" for k in ordered) + "".join(f"GET {k}\n" for k in ordered)
    r = subprocess.run(["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
                        str(hosts), "redis-cli", "--tls", "--cacert", str(client_files["ca"]), "--cert",
                        str(client_files["cert"]), "--key", str(client_files["key"]), "-c", "-h", "redis-node-0",
                        "-p", str(MAIN_PORTS["redis-node-0"])], input=commands, capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, REDISCLI_AUTH=password()))
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    redirects = [line for line in lines if line.startswith("-> Redirected to slot")]
    assert [line for line in lines if line not in redirects] == ["OK"] * 3 + [f"v-{k}" for k in ordered], r
    assert len(redirects) >= 2, r  # it went to the other two masters at least once
    seed = f"redis-node-0:{MAIN_PORTS['redis-node-0']}"
    assert sum(1 for name in keys if name != seed) == 2, f"two of the keys redirect away from the seed: {keys}"
    for k in ordered:  # really on their masters, seen by another client
        assert rc.get(k) == f"v-{k}".encode()
    print(f"\nredis-cli --tls -c: 3 keys on the 3 masters {sorted(keys)}, set and read back through "
          f"{len(redirects)} redirects")


IOREDIS_SCRIPT = r"""
"use strict";
const fs = require("fs");
const Redis = require("ioredis");
const ports = JSON.parse(process.env.PORTS);
const natMap = {};
for (const [name, port] of Object.entries(ports)) natMap[`${name}:${port}`] = { host: "127.0.0.1", port };
const tls = { ca: fs.readFileSync(process.env.CA), cert: fs.readFileSync(process.env.CERT),
              key: fs.readFileSync(process.env.KEY) };
const cluster = new Redis.Cluster([{ host: "127.0.0.1", port: ports["redis-node-0"] }], {
  natMap, redisOptions: { password: process.env.PASSWORD, tls }, maxRedirections: 16,
});
const count = Number(process.env.COUNT);
(async () => {
  let written = 0, read = 0;
  const failures = [];
  for (let i = 0; i < count; i++) {
    try { await cluster.set(`io-tls:${i}`, `v${i}`); written++; } catch (e) { failures.push(String(e)); }
  }
  for (let i = 0; i < count; i++) {
    try {
      const v = await cluster.get(`io-tls:${i}`);
      if (v === `v${i}`) read++; else failures.push(`io-tls:${i} = ${v}`);
    } catch (e) { failures.push(String(e)); }
  }
  const masters = cluster.nodes("master").length;
  process.stdout.write(JSON.stringify({ written, read, masters, failures: failures.slice(0, 10) }) + "\n");
  cluster.disconnect();
})().catch((e) => { console.error(e); process.exit(1); });
"""




def test_ioredis_cluster_over_tls(stack, client_files, hosts_line):
    modules = ioredis_modules()
    if modules is None:
        pytest.skip("no node/npm, or npm could not install ioredis@5")
    count = 300
    env = dict(os.environ, NODE_PATH=str(modules), PORTS=json.dumps(MAIN_PORTS), PASSWORD=password(),
               CA=str(client_files["ca"]), CERT=str(client_files["cert"]), KEY=str(client_files["key"]),
               COUNT=str(count))
    r = subprocess.run(["node", "-e", IOREDIS_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip(), r
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\nioredis Cluster over TLS: {result}")
    assert result == {"written": count, "read": count, "masters": 3, "failures": []}, result
    rc = cluster_client(client_files)
    owners = {rc.get_node_from_key(f"io-tls:{i}").name for i in range(count)}
    assert len(owners) == 3, owners


def metrics():
    with urllib.request.urlopen("http://127.0.0.1:9121/metrics", timeout=3) as r:
        return r.read().decode()


def test_exporter_scrapes_over_tls(stack):
    env = sh("docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "redis-exporter").stdout
    assert "REDIS_ADDR=rediss://" in env, env
    text = wait_until(lambda: "redis_up 1" in metrics() and metrics(), 60, "redis_up 1 on /metrics")
    assert "redis_up 1" in text
    assert "redis_cluster_messages_sent_total" in text  # CLUSTER INFO of the node, read over TLS


class Load(threading.Thread):
    """TLS requests until stopped: SETs through a RedisCluster (long-lived connections, redirects followed) and a
    PING on a fresh TLS connection to each node in turn (every one a new handshake). Every request that raised is a
    failure; 4.3.4's RedisCluster is built again after one (conftest's note)."""

    def __init__(self, files, fresh):
        super().__init__(daemon=True)
        self.files, self.fresh = files, fresh
        self.stop, self.requests, self.failures = threading.Event(), 0, []

    def run(self):
        rc, i = None, 0
        while not self.stop.is_set():
            try:
                if self.fresh:
                    name, port = NODES[i % len(NODES)]
                    c = node_client(self.files, name, port)
                    try:
                        assert c.ping()
                    finally:
                        c.close()
                else:
                    rc = rc or cluster_client(self.files)
                    assert rc.set(f"tls-load:{i}", i)
                self.requests += 1
            except Exception as e:  # noqa: BLE001 (every failure counts, whatever it is)
                self.failures.append((time.time(), type(e).__name__, str(e)))
                rc = None
                time.sleep(0.05)
            i += 1


class ServeWatch(threading.Thread):
    """Handshakes with every node in turn until stopped; notes when each first serves a certificate other than the
    one it served at the start."""

    def __init__(self, files):
        super().__init__(daemon=True)
        self.context = handshake_context(files)
        self.before = {name: served_certificate(self.context, port) for name, port in NODES}
        self.changed, self.errors = {}, []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and len(self.changed) < len(NODES):
            for name, port in NODES:
                if name in self.changed:
                    continue
                try:
                    der = served_certificate(self.context, port)
                except OSError as e:
                    self.errors.append((name, str(e)))
                    continue
                if der != self.before[name]:
                    self.changed[name] = (time.time(), der)
            time.sleep(0.01)


def test_rotate_certs_under_tls_load(stack, client_files, hosts_line):
    watch = ServeWatch(client_files)
    loads = [Load(client_files, fresh=False), Load(client_files, fresh=True)]
    for t in (watch, *loads):
        t.start()
    try:
        time.sleep(1.5)  # the load at its pace before anything changes
        t_start = time.time()
        r = sh(STACK, "rotate-certs", env={"LAYOUT": "main"}, timeout=60)
        t_written = time.time()
        print(f"\n{r.stdout}{r.stderr}", end="")
        wait_until(lambda: len(watch.changed) == len(NODES), SERVE_LIMIT, "every node serving a new certificate")
        time.sleep(1.5)  # the load goes on with the new certificates
    finally:
        watch.stop.set()
        for t in loads:
            t.stop.set()
        for t in (watch, *loads):
            t.join(10)
    seconds = {}
    for name, _ in NODES:
        t_served, der = watch.changed[name]
        assert der == file_certificate(name), f"{name} serves a certificate that is not its new file's"
        seconds[name] = t_served - (TLS_DIR / name / "tls.crt").stat().st_mtime
    requests = sum(t.requests for t in loads)
    failures = [f for t in loads for f in t.failures]
    print(f"make rotate-certs: {(t_written - t_start) * 1000:.0f} ms to issue and write 8 certificates; every node "
          f"served its new one {(max(t for t, _ in watch.changed.values()) - t_start) * 1000:.0f} ms after the "
          f"command started, {(max(t for t, _ in watch.changed.values()) - t_written) * 1000:.0f} ms after it "
          f"returned; per node, ms from its files to its new certificate served: "
          + ", ".join(f"{n} {s * 1000:.0f}" for n, s in seconds.items())
          + f"; the TLS load: {requests} requests "
          f"({loads[0].requests} cluster SETs, {loads[1].requests} fresh-connection PINGs), {len(failures)} failed")
    assert not failures, failures[:10]
    assert max(seconds.values()) <= SERVE_LIMIT, seconds
    # the exporter's new client certificate works too (it reads it at each new connection)
    wait_until(lambda: "redis_up 1" in metrics(), 30, "redis_up 1 on /metrics after rotate-certs")


def test_rotate_and_rotate_finish_on_tls(stack, client_files):
    assert PREVIOUS.stat().st_size == 0 and NEXT.stat().st_size == 0, "the rotation files must start empty"
    old = password()
    env = {"LAYOUT": "main", "ROTATE_TIMEOUT": "30"}
    t0 = time.monotonic()
    try:
        r = sh(STACK, "rotate", env=env, timeout=120)
        print(f"\n{r.stdout}{r.stderr}", end="")
        new = password()
        assert new != old
        for name, port in NODES:  # both accepted between the two steps
            assert node_client(client_files, "127.0.0.1", port, secret=new).ping(), name
            assert node_client(client_files, "127.0.0.1", port, secret=old).ping(), name
        t1 = time.monotonic()
        r = sh(STACK, "rotate-finish", env=env, timeout=120)
        print(f"{r.stdout}{r.stderr}", end="")
        t2 = time.monotonic()
    finally:
        for path in (NEXT, PREVIOUS):  # a failed run must not leave a rotation half done for the next `up`
            with open(path, "r+") as f:
                f.truncate(0)
    for name, port in NODES:
        assert node_client(client_files, "127.0.0.1", port, secret=new).ping(), name
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGPASS"):
            node_client(client_files, "127.0.0.1", port, secret=old).ping()
    print(f"make rotate on TLS: {t1 - t0:.1f} s, make rotate-finish: {t2 - t1:.1f} s")
    wait_until(lambda: "redis_up 1" in metrics(), 60, "redis_up 1 on /metrics after the rotation")


# --------------------------------------------------------------------------- make scale on the TLS stack

SCALE_KEYS = 20_000
SCALE_NAMES = [f"redis-node-{i}" for i in range(8)]
SCALE_PORTS = {name: 6379 + i for i, name in enumerate(SCALE_NAMES)}
ADDED = SCALE_NAMES[6:]
SCALE_FILE = COMPOSE_DIR / "docker-compose.scale.yml"
MARKER = COMPOSE_DIR / ".scaled-out"


def scale_cluster_client(files):
    return RedisCluster(host="redis-node-0", port=SCALE_PORTS["redis-node-0"], password=password(), socket_timeout=5,
                        socket_connect_timeout=5, **ssl_kwargs(files))


def scale_node_client(files, name):
    c = redis.Redis(host="127.0.0.1", port=SCALE_PORTS[name], password=password(), socket_timeout=5,
                    socket_connect_timeout=5, **ssl_kwargs(files))
    c.set_response_callback("CLUSTER NODES", lambda r, **kw: r.decode() if isinstance(r, bytes) else r)
    return c


def view(files, name):
    """A node's CLUSTER NODES: {hostname: (flags, hostname of its master or '-', slots it owns)}."""
    out = {}
    ids = {}
    lines = [line.split() for line in scale_node_client(files, name).execute_command("CLUSTER NODES").splitlines()
             if line]
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


def agreed(files, names, masters):
    """Every node of `names` sees exactly `names`, none flagged, `masters` masters with 16384 slots between them
    (each within 1 slot of an even share), the same masters and replica links in every view; the view, or None."""
    share = 16384 / masters
    first = None
    for name in names:
        v = view(files, name)
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


def ioredis_load(modules, files):
    """ioredis's Cluster (tests/integration/ioredis_load.js) from the host, over TLS with the client's files: its
    natMap is the hosts line."""
    nat = {f"{name}:{port}": {"host": "127.0.0.1", "port": port} for name, port in SCALE_PORTS.items()}
    return IoredisLoad(modules, [f"127.0.0.1:{SCALE_PORTS[n]}" for n in SCALE_NAMES[:6]], password(), SCALE_KEYS,
                       NAT_MAP=json.dumps(nat), TLS_CA=str(files["ca"]), TLS_CERT=str(files["cert"]),
                       TLS_KEY=str(files["key"]))


def diagnose(files):
    """What each node says when something failed: its cluster_state, and its log's lines about the cluster's state
    and failure reports."""
    for name in SCALE_NAMES:
        try:
            state = scale_node_client(files, name).execute_command("CLUSTER INFO")["cluster_state"]
        except (redis.exceptions.RedisError, OSError) as e:
            state = f"no answer ({e})"
        logs = sh("docker", "logs", "--timestamps", name, check=False)
        lines = [line for line in (logs.stdout + logs.stderr).splitlines()
                 if any(w in line for w in ("state changed", "FAIL", "failing", "epoch", "failover", "Failover"))]
        print(f"{name}: cluster_state {state}\n  " + "\n  ".join(lines[-15:]))


def make_scale(files, nodes):
    t0 = time.monotonic()
    r = sh("make", "-s", "-C", REPO, "scale", f"NODES={nodes}", check=False, timeout=600)
    took = time.monotonic() - t0
    print(f"\n--- make scale NODES={nodes}: exit {r.returncode} in {took:.1f} s\n{r.stdout[-4000:]}{r.stderr[-3000:]}")
    if r.returncode != 0:
        diagnose(files)
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


def test_scale_to_eight_and_back_to_six_under_load(stack, client_files, hosts_line):
    """`make scale NODES=8` then `make scale NODES=6` on the TLS stack, under load (issue 13, "Using it"); the last
    test of the module: the stack has six nodes again after it.

    It runs here, on the module's TLS stack, and not on a plain stack of its own: one stack fewer in CI, whose
    budget is at its limit, and the TLS run covers more (the two new nodes' certificates from the layout's CA, the
    TLS override for eight, cluster-init over TLS, `make rotate-certs` reaching the two while scaled out). The
    plain-text path of the same reshape is tests/integration/test_reshape.py (cluster-init over 6 -> 8 -> 6 under a
    redis-py and an ioredis load) and the plain layout's `make scale` has no code of its own that TLS skips.

    20k keys loaded, then cluster clients on the host, with the certificate of redis-node-0 as theirs, reaching the
    nodes as the README says a user does (the published ports and the hosts line, with redis-node-6 and -7 in it):
    redis-py's RedisCluster (ssl=True) writing new keys and reading the loaded ones (tests/pylib/cluster_load.py,
    the client built again after a connection error: 4.3.4 never recovers from one, conftest), and ioredis's Cluster
    with `tls` doing the same when node and npm are there (tests/integration/ioredis_load.js). All along, `make
    scale NODES=8` (compose/scale.sh, run as a user runs it) adds redis-node-6 and -7, `make rotate-certs` gives all
    eight new certificates, and `make scale NODES=6` drains and removes the two. No request may fail after the
    clients' own MOVED/ASK handling (redis-py's own ASK AttributeError is counted apart, cluster_load); every key is
    there and right at the end."""
    t_test = time.monotonic()
    _host_map.update({name: "127.0.0.1" for name in ADDED})  # the hosts line with the two new names in it
    t0 = time.monotonic()
    fill(scale_cluster_client(client_files), SCALE_KEYS)
    print(f"\n{SCALE_KEYS} keys loaded in {time.monotonic() - t0:.1f} s")

    load = ClusterLoad(lambda: scale_cluster_client(client_files), SCALE_KEYS, rebuild=True)
    load.start()
    modules = ioredis_modules()
    io = ioredis_load(modules, client_files) if modules else None
    io_result = None
    context = handshake_context(client_files)
    try:
        wait_until(lambda: load.requests > 100, 30, "the redis-py load to get going")

        out, out_took = make_scale(client_files, 8)
        assert "cluster ok" in out, out[-2000:]
        t0 = time.monotonic()
        links = wait_until(lambda: agreed(client_files, SCALE_NAMES, 4), 30,
                           "4 masters with 4096 slots each in the views of all 8 nodes")
        agree_8 = time.monotonic() - t0
        assert MARKER.exists(), "make scale NODES=8 must leave compose/.scaled-out (make up keeps the two nodes)"
        masters = sorted(n for n, (is_master, _, _) in links.items() if is_master)
        assert len([n for n in ADDED if links[n][0]]) == 1, links  # one new master, the other its replica
        assert links[ADDED[1]][1] == ADDED[0] or links[ADDED[0]][1] == ADDED[1], links
        assert set(sh(STACK, "hosts").stdout.split()[1:]) == set(SCALE_NAMES), "make hosts must list the 8 nodes"
        exporter = (COMPOSE_DIR / "secrets" / "redis_exporter_password").read_text().strip("\n")
        for name in ADDED:  # the ACL users from the secret on the new nodes too ("ACL users")
            assert redis.Redis(host="127.0.0.1", port=SCALE_PORTS[name], username="exporter", password=exporter,
                               socket_timeout=5, **ssl_kwargs(client_files)).info()["cluster_enabled"] == 1, name
        # the two new nodes' certificates: made by make scale from the layout's CA, and rotated by make rotate-certs
        for name in ADDED:
            assert served_certificate(context, SCALE_PORTS[name]) == file_certificate(name), name
        t0 = time.monotonic()
        r = sh(STACK, "rotate-certs", env={"LAYOUT": "main"}, timeout=60)
        assert all(f"{name}: certificate serial" in r.stdout for name in SCALE_NAMES), r.stdout
        wait_until(lambda: all(served_certificate(context, port) == file_certificate(name)
                               for name, port in SCALE_PORTS.items()), 30,
                   "all 8 nodes serving the certificates of make rotate-certs")
        rotate_8 = time.monotonic() - t0
        n8 = load.requests
        wait_until(lambda: load.requests > n8 + 200, 30, "the load going on over 8 nodes")

        out, in_took = make_scale(client_files, 6)
        t0 = time.monotonic()
        links = wait_until(lambda: agreed(client_files, SCALE_NAMES[:6], 3), 30,
                           "3 masters in the views of the 6 nodes, without 6 and 7")
        agree_6 = time.monotonic() - t0
        assert len([n for n, (is_master, _, _) in links.items() if is_master]) == 3, links
        containers, volumes = added_leftovers()
        assert not containers, f"make scale NODES=6 left the containers of {ADDED}: {containers}"
        assert not volumes, f"make scale NODES=6 left the volumes {volumes}"
        assert not MARKER.exists(), "make scale NODES=6 must remove compose/.scaled-out"
        override = (TLS_DIR / "docker-compose.tls.yml").read_text()
        assert not any(f"  {name}:" in override for name in ADDED), "the TLS override must name the six only again"
        n6 = load.requests
        wait_until(lambda: load.requests > n6 + 200, 30, "the load going on over 6 nodes")
    finally:
        load.finish()
        if io:
            io_result = io.finish()
        print(f"\nredis-py: {load.requests} requests, {len(load.failures)} failed (first: {load.failures[:3]}), "
              f"{load.client_bug} sent again after its ASK bug, {load.rebuilt} client rebuilds; ioredis: "
              + (f"{io_result['requests']} requests, {io_result['failures']} failed (first: {io_result['first'][:3]}), "
                 f"{io_result['closed_resent']} sent again after ioredis closed its own connections"
                 if io_result else "not installed"))
    print(f"make scale NODES=8: {out_took:.1f} s (every view agreed {agree_8:.1f} s after it; masters {masters}); "
          f"make rotate-certs on 8: {rotate_8:.1f} s to every new certificate served; "
          f"NODES=6: {in_took:.1f} s (agreed {agree_6:.1f} s after)")
    if load.failures:
        diagnose(client_files)
    expected = expected_after(load, io_result, SCALE_KEYS)
    t0 = time.monotonic()
    check_all(scale_cluster_client(client_files), expected)
    print(f"{len(expected)} keys checked in {time.monotonic() - t0:.1f} s; the test took "
          f"{time.monotonic() - t_test:.1f} s after the stack was up")
