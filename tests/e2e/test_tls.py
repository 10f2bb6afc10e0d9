"""`make up TLS=1` on the main layout (README.md, "TLS with compose"), end to end: host clients that speak TLS and
follow redirects (the host's redis-cli -c, ioredis, redis-py), the exporter scraping over TLS, `make rotate-certs`
under a TLS client load with 0 failed requests, and `make rotate` + `make rotate-finish` on the TLS stack.

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

from conftest import COMPOSE_DIR, MAIN_PORTS, SECRET, STACK, password, sh, wait_until
from ioredis import ioredis_modules

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
