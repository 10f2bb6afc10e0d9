"""TLS on kvinit's own links (issue 14): `kvinit health`, `kvinit cli` and `kvinit cluster-init` talk TLS to nodes
that serve TLS only, checking them against the CA and presenting the node's certificate (the nodes require client
certificates: tls-auth-clients yes); a 6-node cluster forms over TLS (cluster bus and replication in TLS), and a
plain-text client is refused. Certificates are made by the test with the openssl CLI (test_tls.Pki), each node its
own, with the SANs 127.0.0.1 and localhost, in the layout of a Kubernetes Secret volume."""

import os
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from cluster_writer import Writer
from conftest import LONG, SHORT, KVINIT_BIN, wait_until
from nodes import PASSWORD, REDIS_UID, answers, free_port, node_env, secret_file
from test_tls import Pki, plain_refused, secret_volume, tls_env


@pytest.fixture
def pki(workdir):
    return Pki(Path(workdir) / "pki")


def tls_client(port, files, **kw):
    """redis-py over TLS with the node's own certificate as client certificate."""
    return redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=2, socket_connect_timeout=2,
                       ssl=True, ssl_ca_certs=str(files["ca.crt"]), ssl_certfile=str(files["tls.crt"]),
                       ssl_keyfile=str(files["tls.key"]), **kw)


def tls_answers(port, files):
    try:
        return tls_client(port, files).ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
        return False


def served_serial(port, files):
    """The serial of the certificate the node at port serves now, from a handshake of our own (hex, as openssl
    prints it)."""
    ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
    ctx.load_cert_chain(str(files["tls.crt"]), str(files["tls.key"]))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert()["serialNumber"]


class TlsNode:
    """A node under `kvinit node` with TLS only (Bitnami's default: the TLS port is the port), its files in a
    Secret volume of its own."""

    def __init__(self, launch, workdir, pki, name, **extra):
        self.port = free_port()
        crt, key = pki.issue(name)
        self.volume = Path(workdir) / f"secret-{name}"
        self.files = secret_volume(self.volume, {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca})
        self.env = node_env(workdir, self.port, **tls_env(self.files, self.port, **extra))
        self.launched = launch([KVINIT_BIN, "node"], env=self.env)

    def wait(self):
        wait_until(lambda: tls_answers(self.port, self.files), LONG, f"TLS PING on {self.port}",
                   launched=self.launched)
        return self

    def client(self, **kw):
        return tls_client(self.port, self.files, **kw)

    @property
    def stderr(self):
        return self.launched.stderr


def kvinit(role, env, *args, timeout=LONG + 30):
    return subprocess.run([str(KVINIT_BIN), role, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_health_and_cli_over_tls(launch, workdir, pki):
    """kvinit health and kvinit cli reach a TLS-only node on its TLS port; a plain-text client is refused."""
    node = TlsNode(launch, workdir, pki, "node-0").wait()
    assert plain_refused(node.port)
    node.client().execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
    wait_until(lambda: node.client().execute_command("CLUSTER INFO")["cluster_state"] == "ok", LONG, "cluster ok")
    for probe in ("--live", "--ready"):
        r = kvinit("health", node.env, probe)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"127.0.0.1:{node.port}" in r.stdout, r.stdout
    r = kvinit("cli", node.env, "PING")
    assert r.returncode == 0 and r.stdout.strip() == "PONG", r.stdout + r.stderr

    # a CA the node's certificate does not chain to: health says why, in one line
    other = Pki(Path(workdir) / "other-pki")
    r = kvinit("health", {**node.env, "REDIS_TLS_CA_FILE": str(other.ca)}, "--live")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the server's certificate is refused" in r.stdout, r.stdout


def form(nodes, workdir, **extra):
    env = {**nodes[0].env, "REDIS_NODES": ",".join(f"127.0.0.1:{n.port}" for n in nodes), "KVINIT_INIT_TIMEOUT": "60s",
           "REDIS_PASSWORD_FILE": str(secret_file(workdir, name="init_password")), **extra}
    t0 = time.monotonic()
    r = kvinit("cluster-init", env)
    return r, time.monotonic() - t0


def said_ms(r):
    took = re.findall(r"cluster ok \((\d+) ms\)", r.stderr)
    return int(took[-1]) if took else None


@pytest.mark.matrix
def test_six_tls_nodes_form_a_cluster(launch, workdir, pki):
    """cluster-init forms 3 masters and 3 replicas over TLS (the bus and the replication links too); the redis-py
    cluster client writes and reads over TLS. The time is printed beside a plain cluster's, formed in the same run."""
    nodes = [TlsNode(launch, workdir, pki, f"node-{i}") for i in range(6)]
    for n in nodes:
        n.wait()
    r, took = form(nodes, workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    for n in nodes:
        assert n.client().execute_command("CLUSTER INFO")["cluster_state"] == "ok"
        conf = (Path(workdir) / f"run-{n.port}" / "redis.conf").read_text()
        assert "\ntls-cluster yes\n" in conf and "\ntls-replication yes\n" in conf

    def replicas_linked():
        infos = [n.client().info("replication") for n in nodes]
        return sum(i["role"] == "slave" and i["master_link_status"] == "up" for i in infos) == 3

    wait_until(replicas_linked, LONG, "3 replicas with their master link up (TLS replication)")
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", nodes[0].port)], password=PASSWORD, ssl=True,
                      ssl_ca_certs=str(pki.ca), ssl_certfile=str(nodes[0].files["tls.crt"]),
                      ssl_keyfile=str(nodes[0].files["tls.key"]), socket_timeout=2)
    for i in range(1000):
        rc.set(f"key:{i}", i)
    assert [int(rc.get(f"key:{i}")) for i in range(1000)] == list(range(1000))
    rc.close()
    for n in nodes:
        assert plain_refused(n.port)

    # the same formation without TLS, same run, for the cost of TLS
    plain = []
    for _ in range(6):
        port = free_port()
        p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port))
        p.port = port
        plain.append(p)
    for p in plain:
        wait_until(lambda: answers(p.port), LONG, f"node on {p.port}", launched=p)
    env = {**{k: v for k, v in nodes[0].env.items() if not k.startswith("REDIS_TLS_")},
           "REDIS_PORT_NUMBER": str(plain[0].port)}
    rp, took_plain = form([type("N", (), {"port": p.port, "env": env})() for p in plain], workdir)
    assert rp.returncode == 0, rp.stdout + rp.stderr
    print(f"\nformation of 6 nodes: TLS {took * 1000:.0f} ms (cluster-init said {said_ms(r)} ms), "
          f"plain {took_plain * 1000:.0f} ms (said {said_ms(rp)} ms)")


# --------------------------------------------------------------------------- certificate rotation


def swap_volume(volume, files):
    """A Kubernetes Secret update: the new files in a new timestamped directory, then ..data swapped over to it in
    one rename (the files' own inodes never change)."""
    stamp = volume / f"..{time.time_ns()}"
    stamp.mkdir()
    for name, src in files.items():
        (stamp / name).write_bytes(Path(src).read_bytes())
        os.chown(stamp / name, REDIS_UID, 0)
        os.chmod(stamp / name, 0o400)
    tmp = volume / "..data_tmp"
    tmp.symlink_to(stamp.name)
    os.replace(tmp, volume / "..data")


class Handshakes(threading.Thread):
    """A new TLS connection (a new handshake) to one node after another, each with a GET, as fast as they go; the
    client trusts the CA file it is given and presents a certificate of that CA."""

    def __init__(self, nodes, ca, cert, key):
        super().__init__(daemon=True)
        self.nodes, self.ca, self.cert, self.key = nodes, ca, cert, key
        self.done, self.failed = 0, []
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            n = self.nodes[i % len(self.nodes)]
            i += 1
            try:
                c = redis.Redis(host="127.0.0.1", port=n.port, password=PASSWORD, socket_timeout=2,
                                socket_connect_timeout=2, ssl=True, ssl_ca_certs=str(self.ca),
                                ssl_certfile=str(self.cert), ssl_keyfile=str(self.key))
                c.get("x")
                c.close()
                self.done += 1
            except redis.exceptions.ResponseError:
                self.done += 1  # MOVED: the node answered
            except (redis.exceptions.RedisError, OSError) as e:
                self.failed.append((time.monotonic(), n.port, str(e)))


def formed_tls_cluster(launch, workdir, pki):
    nodes = [TlsNode(launch, workdir, pki, f"node-{i}") for i in range(6)]
    for n in nodes:
        n.wait()
    r, _ = form(nodes, workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    return nodes


def test_certificates_rotate_under_load(launch, workdir, pki):
    """New certificates for every node (a Kubernetes ..data swap) under a TLS client load: 0 failed requests, each
    node serves its new serial within 2 s of its files changing, connections opened before keep working. Then a
    set that does not work (another certificate's key, another CA) is refused with a loud line, and the node keeps
    serving the certificate it has."""
    nodes = formed_tls_cluster(launch, workdir, pki)
    old = {n.port: served_serial(n.port, n.files) for n in nodes}
    # kept open across the rotation: it must keep working
    before = nodes[0].client()
    assert before.ping()

    writers = [Writer([("127.0.0.1", n.port) for n in nodes], lambda host, port: tls_client(port, nodes[0].files),
                      tag=tag) for tag in ("a", "b", "c")]
    handshakes = Handshakes(nodes, pki.ca, nodes[0].files["tls.crt"], nodes[0].files["tls.key"])
    for t in (*writers, handshakes):
        t.start()
    time.sleep(1)

    new, took = {}, {}
    for i, n in enumerate(nodes):
        crt, key = pki.issue(f"node-{i}-renewed")
        new[n.port] = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(crt)], capture_output=True,
                                     text=True, check=True).stdout.strip().split("=", 1)[1]
        t0 = time.monotonic()
        swap_volume(n.volume, {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca})
        wait_until(lambda: served_serial(n.port, n.files) == new[n.port], LONG, f"node {n.port} to serve its new "
                   "certificate", interval=0.01)
        took[n.port] = time.monotonic() - t0
    time.sleep(1)
    for t in (*writers, handshakes):
        t.stop.set()
        t.join(SHORT)

    assert before.ping()
    assert before.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
    assert all(w.errors == [] and len(w.acked) > 50 for w in writers), [w.errors[:3] for w in writers]
    assert handshakes.failed == [] and handshakes.done > 20, handshakes.failed[:5]
    for n in nodes:
        assert new[n.port] != old[n.port]
        assert f"certificate rotation applied: the server serves serial '{new[n.port]}' (was '{old[n.port]}'" \
            in n.stderr, n.stderr
    print(f"\ncertificate rotation of 6 nodes under load: each node served its new certificate "
          f"{min(took.values()) * 1000:.0f}-{max(took.values()) * 1000:.0f} ms after its files changed; "
          f"{sum(len(w.acked) for w in writers)} writes and {handshakes.done} new TLS connections, 0 failed")
    assert max(took.values()) <= 2.0, took

    # a certificate with the key of another: refused, loudly; the node keeps its certificate
    n = nodes[1]
    crt, _ = pki.issue("node-1-bad")
    _, other_key = pki.issue("someone-else")
    swap_volume(n.volume, {"tls.crt": crt, "tls.key": other_key, "ca.crt": pki.ca})
    wait_until(lambda: "the TLS files changed but are not a set that works" in n.stderr, SHORT, "the refusal")
    assert f"keeps serving the certificate with serial '{new[n.port]}'" in n.stderr
    time.sleep(0.5)
    assert served_serial(n.port, n.files | {"tls.crt": nodes[0].files["tls.crt"],
                                            "tls.key": nodes[0].files["tls.key"]}) == new[n.port]
    # another CA, certificate and key of it: does not chain to... its own CA file is the old one
    other = Pki(Path(workdir) / "other-pki")
    o_crt, o_key = other.issue("node-1-foreign")
    swap_volume(n.volume, {"tls.crt": o_crt, "tls.key": o_key, "ca.crt": pki.ca})
    wait_until(lambda: "does not chain to the CA" in n.stderr, SHORT, "the refusal of another CA's certificate")
    time.sleep(0.5)
    assert tls_client(nodes[0].port, nodes[0].files).ping()
    ctx_files = {"ca.crt": pki.ca, "tls.crt": nodes[0].files["tls.crt"], "tls.key": nodes[0].files["tls.key"]}
    assert served_serial(n.port, ctx_files) == new[n.port]


def serial_of(crt):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(crt)], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().split("=", 1)[1]


def three_nodes_and_a_new_ca(launch, workdir, pki, **env):
    """Three TLS nodes of pki (with env) formed into a cluster, and a new CA: (nodes, the new Pki, a bundle of both
    CAs, a client certificate and key of the new CA)."""
    nodes = [TlsNode(launch, workdir, pki, f"node-{i}", **env) for i in range(3)]
    for n in nodes:
        n.wait()
    r, _ = form(nodes, workdir, REDIS_CLUSTER_REPLICAS="0")
    assert r.returncode == 0, r.stdout + r.stderr
    new_ca = Pki(Path(workdir) / "new-pki")
    both = Path(workdir) / "both-cas.crt"
    both.write_bytes(new_ca.ca.read_bytes() + pki.ca.read_bytes())
    return nodes, new_ca, both, new_ca.issue("client-new", sans="DNS:client")


def test_a_ca_change_is_staged(launch, workdir, pki):
    """A new CA in ca.crt: kvinit gives the server (and itself) the old and the new CA together for
    KVINIT_ROTATION_GRACE, so nodes with certificates of either keep talking while the certificates follow; then the
    new CA alone. Under a TLS load (a client of the old CA's) with 0 failed requests."""
    nodes, new_ca, both, new_client = three_nodes_and_a_new_ca(launch, workdir, pki, KVINIT_ROTATION_GRACE="20s")
    old_client = pki.issue("client-old", sans="DNS:client")
    load = Handshakes(nodes, both, *old_client)
    load.start()

    # step 1: the new CA alone in ca.crt, the certificates as they were
    for i, n in enumerate(nodes):
        swap_volume(n.volume, {"tls.crt": n.volume / "tls.crt", "tls.key": n.volume / "tls.key", "ca.crt": new_ca.ca})
    for n in nodes:
        wait_until(lambda: "certificate rotation applied" in n.stderr, SHORT, f"node {n.port} to trust both CAs")
        assert "the CA changed: the server and kvinit trust the old and the new CA" in n.stderr
    # step 2: certificates of the new CA
    t0 = time.monotonic()
    for i, n in enumerate(nodes):
        crt, key = new_ca.issue(f"node-{i}-new-ca")
        swap_volume(n.volume, {"tls.crt": crt, "tls.key": key, "ca.crt": new_ca.ca})
        wait_until(lambda: served_serial(n.port, {"ca.crt": both, "tls.crt": old_client[0], "tls.key": old_client[1]})
                   == serial_of(crt), LONG, f"node {n.port} to serve its certificate of the new CA")
    step2 = time.monotonic() - t0
    time.sleep(0.5)
    load.stop.set()
    load.join(SHORT)
    assert load.failed == [] and load.done > 5, load.failed[:5]

    # the end of the grace: the new CA alone; a client certificate of the old CA is refused now
    for n in nodes:
        wait_until(lambda: "the staged CA change ends" in n.stderr, 20 + LONG, f"node {n.port} to end the staging")
    for n in nodes:
        assert served_serial(n.port, {"ca.crt": new_ca.ca, "tls.crt": new_client[0], "tls.key": new_client[1]})
        with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError, OSError)):
            c = redis.Redis(host="127.0.0.1", port=n.port, password=PASSWORD, socket_timeout=2, ssl=True,
                            ssl_ca_certs=str(both), ssl_certfile=str(old_client[0]), ssl_keyfile=str(old_client[1]))
            c.ping()
    print(f"\nCA change of 3 nodes, staged: the certificates of the new CA served by all {step2:.1f} s after the "
          f"first was written; {load.done} new TLS connections meanwhile (old CA's client certificate), 0 failed")


def rehashed_ca_dir(d, *cas):
    """A REDIS_TLS_CA_DIR: the CA files in d, and the links by subject hash that `openssl rehash` makes (the way
    OpenSSL finds a CA in a directory)."""
    d = Path(d)
    d.mkdir(exist_ok=True)
    for i, ca in enumerate(cas):
        (d / f"ca-{i}.pem").write_bytes(Path(ca).read_bytes())
    subprocess.run(["openssl", "rehash", str(d)], check=True, capture_output=True)
    return d


def test_a_new_ca_in_the_ca_dir_is_picked_up(launch, workdir, pki):
    """REDIS_TLS_CA_DIR is watched like the CA file: the nodes trust the CAs of an `openssl rehash`'d directory.
    Each node gets a certificate of a new CA before that CA is in the directory: a set that does not work, left
    alone. Once the new CA is added to the directory (rehashed), each node stages it (old and new CA trusted for
    KVINIT_ROTATION_GRACE) and serves its certificate of the new CA; the cluster, whose bus now carries certificates
    of the new CA, stays ok. At the end of the grace the directory alone is trusted, and the nodes keep working."""
    ca_dir = rehashed_ca_dir(Path(workdir) / "ca-dir", pki.ca)
    nodes, new_ca, both, new_client = three_nodes_and_a_new_ca(
        launch, workdir, pki, REDIS_TLS_CA_FILE="", REDIS_TLS_CA_DIR=str(ca_dir), KVINIT_ROTATION_GRACE="5s")
    before = nodes[0].client()
    assert before.ping()

    # certificates of a CA the directory does not hold yet: refused, the old ones keep serving
    new = {}
    for i, n in enumerate(nodes):
        crt, key = new_ca.issue(f"node-{i}-new-ca")
        new[n.port] = serial_of(crt)
        swap_volume(n.volume, {"tls.crt": crt, "tls.key": key, "ca.crt": n.volume / "ca.crt"})
    for n in nodes:
        wait_until(lambda: "are not a set that works" in n.stderr, SHORT, f"node {n.port} to refuse the set")
        assert served_serial(n.port, {**n.files, "ca.crt": both}) != new[n.port]

    # the new CA added to the directory: picked up, staged, the new certificates served
    t0 = time.monotonic()
    rehashed_ca_dir(ca_dir, pki.ca, new_ca.ca)
    peer = {"ca.crt": both, "tls.crt": new_client[0], "tls.key": new_client[1]}
    for n in nodes:
        wait_until(lambda: served_serial(n.port, peer) == new[n.port], LONG,
                   f"node {n.port} to serve its certificate of the new CA")
        assert "the CA changed: the server and kvinit trust the old and the new CA" in n.stderr
    took = time.monotonic() - t0
    assert before.ping(), "a connection opened before the change stopped working"

    def cluster_ok():
        c = redis.Redis(host="127.0.0.1", port=nodes[0].port, password=PASSWORD, socket_timeout=2, ssl=True,
                        ssl_ca_certs=str(both), ssl_certfile=str(new_client[0]), ssl_keyfile=str(new_client[1]))
        return c.execute_command("CLUSTER INFO")["cluster_state"] == "ok"

    assert cluster_ok()
    # the end of the grace: the directory alone (no staged CA file left on the server)
    for n in nodes:
        wait_until(lambda: "the staged CA change ends" in n.stderr, LONG, f"node {n.port} to end the staging")
        wait_until(lambda: n.stderr.count("certificate rotation applied") >= 2, LONG,
                   f"node {n.port} to apply the directory alone")
        c = redis.Redis(host="127.0.0.1", port=n.port, password=PASSWORD, socket_timeout=2, ssl=True,
                        ssl_ca_certs=str(both), ssl_certfile=str(new_client[0]), ssl_keyfile=str(new_client[1]))
        assert c.config_get("tls-ca-cert-file")["tls-ca-cert-file"] == ""
        assert served_serial(n.port, peer) == new[n.port]
    r = kvinit("health", nodes[0].env, "--ready")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster_ok()
    print(f"\na new CA in REDIS_TLS_CA_DIR: 3 nodes serve their certificates of it {took:.1f} s after it was added")
