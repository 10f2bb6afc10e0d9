"""TLS (issue 14): a node started by `kvinit node` with REDIS_TLS_ENABLED serves TLS, refuses plain clients on its
port, and a certificate set that cannot work stops the start with one line and exit 100. The certificates are made
by the test with the openssl CLI in its own directory (a CA, and node certificates with the SANs each test needs);
the files are read where they are mounted, here in the layout of a Kubernetes Secret volume (cert-manager's names,
behind the ..data symlink)."""

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from conftest import LONG, SHORT, KVINIT_BIN, SERVER, wait_until
from nodes import PASSWORD, REDIS_UID, client, free_port, node_env, secret_file


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=SHORT)


class Pki:
    """A CA, and certificates it signs, in dir."""

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(exist_ok=True)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.crt", "-days", "30", "-subj", "/CN=kvinit test CA", cwd=self.dir)
        self.ca = self.dir / "ca.crt"

    def issue(self, name, sans="IP:127.0.0.1,DNS:localhost", days=30):
        """name.crt and name.key: a node certificate for sans, valid for days."""
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=self.dir)
        (self.dir / f"{name}.ext").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                f"{name}.crt", "-days", str(days), "-extfile", f"{name}.ext", cwd=self.dir)
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"


def secret_volume(d, files, owner=REDIS_UID):
    """A Kubernetes Secret volume: the files in a timestamped directory, ..data pointing at it, and each name a
    relative symlink through ..data. The server user may read them (the pod's fsGroup does that in Kubernetes)."""
    d = Path(d)
    stamp = d / "..2026_11_26_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, src in files.items():
        (stamp / name).write_bytes(Path(src).read_bytes())
        os.chown(stamp / name, owner, 0)
        os.chmod(stamp / name, 0o400)
        (d / name).symlink_to(f"..data/{name}")
    (d / "..data").symlink_to(stamp.name)
    return {name: d / name for name in files}


def tls_env(files, port, **extra):
    return {
        "REDIS_TLS_ENABLED": "yes",
        "REDIS_TLS_PORT_NUMBER": port,
        "REDIS_TLS_CERT_FILE": files["tls.crt"],
        "REDIS_TLS_KEY_FILE": files["tls.key"],
        "REDIS_TLS_CA_FILE": files["ca.crt"],
        **extra,
    }


def cli(port, ca, *args, cert=None, key=None):
    """redis-cli --tls (the server's own cli, built with TLS), the password from REDISCLI_AUTH."""
    cmd = [SERVER.cli, "-h", "127.0.0.1", "-p", str(port), "--tls", "--cacert", str(ca)]
    if cert:
        cmd += ["--cert", str(cert), "--key", str(key)]
    env = dict(os.environ, REDISCLI_AUTH=PASSWORD)
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=SHORT, env=env)


def pong(port, ca, **kw):
    return cli(port, ca, "PING", **kw).stdout.strip() == "PONG"


def plain_refused(port):
    try:
        client(port).ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return True
    return False


@pytest.fixture
def pki(workdir):
    return Pki(Path(workdir) / "pki")


@pytest.mark.matrix
def test_tls_only_on_the_bitnami_default(launch, workdir, pki):
    """REDIS_PORT_NUMBER equal to REDIS_TLS_PORT_NUMBER (Bitnami's default, 6379 both): the port serves TLS only; a
    client that presents no certificate is refused while tls-auth-clients is yes."""
    crt, key = pki.issue("node-0")
    files = secret_volume(Path(workdir) / "secret", {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca})
    port = free_port()
    node = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, **tls_env(files, port)))
    wait_until(lambda: pong(port, files["ca.crt"], cert=crt, key=key), LONG, f"TLS PING on {port}", launched=node)
    assert plain_refused(port)
    out = cli(port, files["ca.crt"], "PING")
    assert out.stdout.strip() != "PONG", out
    conf = (Path(workdir) / f"run-{port}" / "redis.conf").read_text()
    for line in ("port 0", f"tls-port {port}", "tls-cluster yes", "tls-replication yes", "tls-auth-clients yes",
                 f"tls-cert-file {files['tls.crt']}"):
        assert f"\n{line}\n" in conf, conf
    assert f"starting {SERVER.flavor.capitalize()}" in node.stderr and f"on TLS port '{port}'" in node.stderr
    # the cluster bus is TLS too: the node announces its TLS port
    nodes = cli(port, files["ca.crt"], "CLUSTER", "NODES", cert=crt, key=key).stdout
    assert f"127.0.0.1:{port}@{port + 10000}" in nodes, nodes


def test_plain_port_beside_tls(launch, workdir, pki):
    """Another REDIS_PORT_NUMBER keeps the plain port open there; REDIS_TLS_AUTH_CLIENTS=no lets a client in with
    the CA alone. A certificate that ends within a week is said at start."""
    crt, key = pki.issue("node-1", days=3)
    files = secret_volume(Path(workdir) / "secret", {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca})
    plain, tls = free_port(), free_port()
    node = launch([KVINIT_BIN, "node"],
                  env=node_env(workdir, plain, **tls_env(files, tls, REDIS_TLS_AUTH_CLIENTS="no")))
    wait_until(lambda: pong(tls, files["ca.crt"]), LONG, f"TLS PING on {tls}", launched=node)
    assert client(plain).ping()
    assert plain_refused(tls)
    assert "expires on '" in node.stderr and "renew it" in node.stderr, node.stderr
    assert f"the plain port '{plain}' stays open beside TLS" in node.stderr


def start_refused(launch, workdir, env_extra):
    port = free_port()
    p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, **env_extra(port)))
    assert p.wait(SHORT) == 100, p.describe()
    lines = [line for line in p.stderr.splitlines() if line.startswith("error kvinit")]
    assert len(lines) == 1, p.stderr
    assert not (Path(workdir) / f"run-{port}").exists()
    return lines[0]


def test_a_set_that_cannot_work_exits_100(launch, workdir, pki):
    crt, key = pki.issue("node-2")
    _, other_key = pki.issue("other")
    wrong_names_crt, wrong_names_key = pki.issue("elsewhere", sans="DNS:elsewhere.example")
    files = {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca}

    line = start_refused(launch, workdir, lambda port: tls_env({**files, "tls.key": other_key}, port))
    assert f"REDIS_TLS_KEY_FILE='{other_key}': not the key of the certificate in REDIS_TLS_CERT_FILE='{crt}'" in line

    # the node announces 127.0.0.1: a certificate for another name only
    line = start_refused(launch, workdir,
                         lambda port: tls_env({**files, "tls.crt": wrong_names_crt, "tls.key": wrong_names_key}, port))
    assert f"REDIS_TLS_CERT_FILE='{wrong_names_crt}': its subject alternative names (DNS:elsewhere.example) do " \
           "not cover '127.0.0.1', which this node announces" in line

    # another CA
    other_ca = Pki(Path(workdir) / "other-pki")
    line = start_refused(launch, workdir, lambda port: tls_env({**files, "ca.crt": other_ca.ca}, port))
    assert f"REDIS_TLS_CERT_FILE='{crt}': does not chain to the CA of REDIS_TLS_CA_FILE='{other_ca.ca}'" in line

    line = start_refused(launch, workdir, lambda port: {"REDIS_TLS_ENABLED": "yes"})
    assert "REDIS_TLS_ENABLED=yes needs REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE" in line

    line = start_refused(launch, workdir, lambda port: tls_env(files, port, REDIS_TLS_AUTH_CLIENTS="sometimes"))
    assert "REDIS_TLS_AUTH_CLIENTS='sometimes': must be one of yes, no or optional" in line


def test_files_the_server_cannot_read_are_said(launch, workdir, pki):
    """kvinit reads the files as root; the server reads them as its user: root's 0400 files are said before the
    server fails on them."""
    crt, key = pki.issue("node-3")
    files = secret_volume(Path(workdir) / "secret", {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca}, owner=0)
    port = free_port()
    node = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, **tls_env(files, port, KVINIT_MAX_RESTARTS="1")))
    want = f"REDIS_TLS_KEY_FILE='{files['tls.key']}' is not readable by the server's user (uid '{REDIS_UID}'"
    wait_until(lambda: want in node.stderr, SHORT, "the warning about the key file", launched=node)
    assert "mode '0400'" in node.stderr


def tls_named_client(port, files):
    """redis-py over TLS to a node whose certificate names it only: connected to 'localhost', checked as it."""
    return redis.Redis(host="localhost", port=port, password=PASSWORD, socket_timeout=2, socket_connect_timeout=2,
                       ssl=True, ssl_ca_certs=str(files["ca.crt"]), ssl_certfile=str(files["tls.crt"]),
                       ssl_keyfile=str(files["tls.key"]), ssl_check_hostname=True)


def run_kvinit(role, env, *args):
    env = {k: v for k, v in env.items() if v is not None}  # node_env's None: not set
    return subprocess.run([str(KVINIT_BIN), role, *args], env=env, capture_output=True, text=True, timeout=LONG + 30)


@pytest.mark.matrix
def test_a_cluster_whose_certificates_name_the_nodes_only(launch, workdir, pki):
    """Certificates made before the nodes had an address (compose without static IPs, Kubernetes pods,
    cert-manager) name them only: here DNS:localhost and no IP SAN at all. The nodes announce the address they are
    given at start (POD_IP, as in Kubernetes), which the certificate cannot name: they start (one warning for
    clients that follow redirects to addresses). REDIS_NODES names them 'localhost'; cluster-init reaches each at the
    address the name resolves to and checks the certificate against the name, health --ready checks the peers that
    CLUSTER NODES lists by address against their REDIS_NODES name, and a master stopped hands its slots to its
    replica (the replica's address from INFO replication, checked the same way)."""
    ports = [free_port() for _ in range(6)]
    listed = ",".join(f"localhost:{p}" for p in ports)
    nodes = []
    for i, port in enumerate(ports):
        crt, key = pki.issue(f"named-{i}", sans="DNS:localhost")
        files = secret_volume(Path(workdir) / f"secret-named-{i}", {"tls.crt": crt, "tls.key": key, "ca.crt": pki.ca})
        env = node_env(workdir, port, **tls_env(files, port, REDIS_NODES=listed, POD_IP="127.0.0.1",
                                                REDIS_CLUSTER_ANNOUNCE_IP=None))
        nodes.append((port, files, env, launch([KVINIT_BIN, "node"], env=env)))

    def answers_tls(port, files):
        try:
            return tls_named_client(port, files).ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
            return False

    for port, files, _, launched in nodes:
        wait_until(lambda: answers_tls(port, files), LONG, f"TLS PING on {port}", launched=launched)
        assert "has no IP SAN for '127.0.0.1'" in launched.stderr, launched.stderr

    env = {**nodes[0][2], "REDIS_PASSWORD_FILE": str(secret_file(workdir, name="init_password")),
           "KVINIT_INIT_TIMEOUT": "60s"}
    r = run_kvinit("cluster-init", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "IP address mismatch" not in r.stderr, r.stderr

    def all_ready():
        return all(run_kvinit("health", e, "--ready").returncode == 0 for _, _, e, _ in nodes)

    wait_until(all_ready, LONG, "health --ready on every node")
    r = run_kvinit("health", nodes[0][2], "--ready")
    assert r.returncode == 0, r.stdout + r.stderr

    def replicas_linked():
        infos = [tls_named_client(p, f).info("replication") for p, f, _, _ in nodes]
        return sum(i["role"] == "slave" and i["master_link_status"] == "up" for i in infos) == 3

    wait_until(replicas_linked, LONG, "3 replicas with their master link up")
    port, files, _, master = next(n for n in nodes if tls_named_client(n[0], n[1]).info("replication")["role"] ==
                                  "master")
    replica_ports = {p for p, f, _, _ in nodes if p != port and
                     tls_named_client(p, f).info("replication").get("master_port") == port}
    master.send(signal.SIGTERM)
    assert master.wait(SHORT) == 0, master.describe()
    assert re.search(r"took over in \d+ ms", master.stderr), master.stderr
    assert any(tls_named_client(p, f).info("replication")["role"] == "master"
               for p, f, _, _ in nodes if p in replica_ports)
