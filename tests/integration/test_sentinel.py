"""Replication with Sentinel on 127.0.0.1: a primary, two replicas and three Sentinels, each under kvinit as PID 1
of its own PID namespace (`kvinit node` with REDIS_REPLICATION_MODE, `kvinit sentinel`), and a client that finds
the primary through the Sentinels (redis-py's redis.sentinel.Sentinel, as applications do).

The gaps this measures are printed (pytest -s shows them): the longest time between two acknowledged writes of a
client writing every 10 ms, across a SIGTERM of the primary's kvinit (kvinit asks the Sentinels to fail over
first) and across a plain SIGTERM (the Sentinels notice after down-after-milliseconds and elect a leader).
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from conftest import LONG, SHORT, KVINIT_BIN, wait_until
from nodes import PASSWORD, accepts, free_port, node_env, secret_file, server_pid, sha
import sentinel_writer
from redis.sentinel import Sentinel
from sentinel_writer import AddrWriter, Writer
from test_tls import Pki, secret_volume
from test_tls_links import served_serial, serial_of, swap_volume

# kvinit's default: a plain SIGTERM leaves the set without a primary this long, plus an election
DOWN_AFTER_MS = 5000
SET = "mymaster"
NEW = "n3w p4ss: 'single' quotes, \"double\", $dollar and \\ backslash"


def connect(port, password=PASSWORD, host="127.0.0.1", timeout=2, **tls):
    """tls: redis-py's ssl arguments, for a topology with TLS."""
    return redis.Redis(host=host, port=port, password=password, socket_timeout=timeout,
                       socket_connect_timeout=timeout, **tls)


def info(port, password=PASSWORD, section="replication", **tls):
    try:
        return connect(port, password, **tls).info(section)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
        return {}


def flagged_down(entry):
    return any(f in entry.get("flags", "") for f in ("s_down", "o_down", "disconnected"))


# --------------------------------------------------------------------------- the topology


class Topology:
    """Nodes and Sentinels under kvinit, all on 127.0.0.1, sharing one password file."""

    def __init__(self, launch, workdir):
        self.launch = launch
        self.workdir = Path(workdir)
        self.password_file = secret_file(workdir)
        self.password = PASSWORD  # the nodes'
        self.own_password = None  # the Sentinels' own, when they have one (REDIS_SENTINEL_PASSWORD_FILE)
        self.nodes = {}  # name -> Launched
        self.sentinels = {}  # name -> Launched
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.primary_port = None
        self.tls_env = {}  # with TLS: REDIS_TLS_* for every node and Sentinel
        self.tls = {}  # with TLS: redis-py's ssl arguments

    # -- nodes
    def node_env(self, name, port, mode, **extra):
        env = node_env(self.workdir, port, REDIS_PASSWORD_FILE=self.password_file,
                       REDIS_DATA_DIR=self.workdir / f"data-{name}", REDIS_CLUSTER_ENABLED="no",
                       REDIS_CLUSTER_ANNOUNCE_IP=None, REDIS_REPLICATION_MODE=mode,
                       REDIS_PRIMARY_HOST="127.0.0.1", REDIS_PRIMARY_PORT_NUMBER=self.primary_port,
                       REDIS_SENTINEL_NODES=" ".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
                       # a replica that syncs afresh does so at once (Redis waits 5 s for more replicas)
                       REDIS_EXTRA_FLAGS="--repl-diskless-sync-delay 0", KVINIT_STOP_GRACE="10s")
        # one port, TLS only (Bitnami's default: REDIS_TLS_PORT_NUMBER equal to REDIS_PORT_NUMBER)
        env.update({k: str(v) for k, v in self.tls_env.items()})
        if self.tls_env:
            env["REDIS_TLS_PORT_NUMBER"] = str(port)
        env.update({k: (None if v is None else str(v)) for k, v in extra.items()})
        return env

    def start_node(self, name, mode, port=None, **extra):
        port = port or free_port()
        if mode == "primary" and self.primary_port is None:
            self.primary_port = port
        launched = self.launch([KVINIT_BIN, "node"], env=self.node_env(name, port, mode, **extra))
        launched.port, launched.name, launched.mode, launched.extra = port, name, mode, extra
        self.nodes[name] = launched
        wait_until(lambda: info(port, self.password, **self.tls), LONG, f"{name} on {port} to answer",
                   launched=launched)
        return launched

    def restart_node(self, name):
        old = self.nodes[name]
        return self.start_node(name, old.mode, old.port, **old.extra)

    # -- Sentinels
    def sentinel_env(self, i, **extra):
        env = {
            "REDIS_PASSWORD_FILE": self.password_file,
            "REDIS_BIND": "127.0.0.1",
            "REDIS_DATA_DIR": self.workdir / f"sentinel-{i}",
            "REDIS_SENTINEL_PORT_NUMBER": self.sentinel_ports[i],
            "REDIS_MASTER_HOST": "127.0.0.1",
            "REDIS_MASTER_PORT_NUMBER": self.primary_port,
            "REDIS_SENTINEL_DOWN_AFTER_MILLISECONDS": DOWN_AFTER_MS,
            "REDIS_SENTINEL_FAILOVER_TIMEOUT": 10000,
            "KVINIT_STOP_GRACE": "8s",
        }
        server = {k: v for k, v in node_env(self.workdir, 1).items() if k == "REDIS_SERVER_BIN"}
        env.update(server)
        env.update(self.tls_env)
        env.update(extra)
        return {k: (None if v is None else str(v)) for k, v in env.items()}

    def start_sentinel(self, i, **extra):
        env = self.sentinel_env(i, **extra)
        launched = self.launch([KVINIT_BIN, "sentinel"], env=env)
        launched.port, launched.index, launched.env = self.sentinel_ports[i], i, env
        host = env["REDIS_BIND"]
        self.sentinels[i] = launched
        wait_until(lambda: self.sentinel_answers(launched.port, host), LONG, f"sentinel {i} to answer",
                   launched=launched)
        return launched

    def sentinel_answers(self, port, host="127.0.0.1"):
        try:
            return connect(port, self.sentinel_password, host, **self.tls).ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    @property
    def sentinel_password(self):
        return self.own_password or self.password

    def sentinel(self, i, host="127.0.0.1"):
        return connect(self.sentinel_ports[i], self.sentinel_password, host, **self.tls)

    def has_quorum(self, i, host="127.0.0.1"):
        """SENTINEL CKQUORUM: the set is known and enough Sentinels are there to fail it over."""
        try:
            return bool(self.sentinel(i, host).execute_command("SENTINEL", "CKQUORUM", SET))
        except (redis.exceptions.ResponseError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    def primary_by(self, i):
        """The primary Sentinel i names: (host, port), or None."""
        try:
            addr = self.sentinel(i).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SET)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return None
        return (addr[0].decode(), int(addr[1])) if addr else None

    def wait_settled(self, replicas=2, sentinels=3):
        """Every Sentinel knows the others and the replicas, and every replica's link is up."""

        def settled():
            for i in self.sentinels:
                s = self.sentinel(i)
                if len([e for e in s.sentinel_sentinels(SET) if not flagged_down(e)]) < sentinels - 1:
                    return False
                if len([e for e in s.sentinel_slaves(SET) if not flagged_down(e)]) < replicas:
                    return False
                if not self.has_quorum(i):
                    return False
            return True

        wait_until(settled, LONG, "the Sentinels to know each other and the replicas", interval=0.2)

    def node_by_port(self, port):
        return next(n for n in self.nodes.values() if n.port == port)


@pytest.fixture
def topology(launch, workdir):
    """A primary (a), two replicas (b, c) whose kvinit does not hand over on stop, three Sentinels."""
    t = Topology(launch, workdir)
    t.start_node("a", "primary")
    t.start_node("b", "replica", KVINIT_FAILOVER_TIMEOUT="0")
    t.start_node("c", "replica", KVINIT_FAILOVER_TIMEOUT="0")
    for i in range(3):
        t.start_sentinel(i)
    t.wait_settled()
    return t


# --------------------------------------------------------------------------- a client writing through the Sentinels


def writers(t, *kinds):
    """Writers (sentinel_writer.Writer: redis-py; AddrWriter: GET-MASTER-ADDR-BY-NAME) through t's Sentinels."""
    return lambda: [kind([("127.0.0.1", p) for p in t.sentinel_ports], t.password, t.own_password)
                    for kind in kinds or (Writer,)]


def write_across(t, event, *kinds):
    ws = sentinel_writer.write_across(writers(t, *kinds), event, timeout=LONG)
    return ws if len(ws) > 1 else ws[0]


def wait_new_primary(topology, old_port):
    """Until every Sentinel names a primary other than old_port; returns its port."""

    def switched():
        named = {topology.primary_by(i) for i in topology.sentinels}
        return len(named) == 1 and None not in named and next(iter(named))[1] != old_port and next(iter(named))

    return wait_until(switched, LONG, "every Sentinel to name a new primary", interval=0.05)[1]


def wait_replica_of(topology, node, primary_port):
    def replicates():
        i = info(node.port, topology.password, **topology.tls)
        return i.get("role") == "slave" and i.get("master_port") == primary_port and i.get("master_link_status") == "up"

    wait_until(replicates, LONG, f"{node.name} to replicate from {primary_port}", launched=node)


# --------------------------------------------------------------------------- tests


def test_replication_mode_and_health(topology):
    """The replicas replicate from the primary, announce themselves, and every probe is honest."""
    t = topology
    a, b, c = t.nodes["a"], t.nodes["b"], t.nodes["c"]
    for r in (b, c):
        wait_replica_of(t, r, a.port)
    slaves = {v["port"] for k, v in info(a.port).items() if k.startswith("slave")}
    assert slaves == {b.port, c.port}
    connect(a.port).set("k", "v")
    wait_until(lambda: connect(b.port).get("k") == b"v", SHORT, "the write to reach a replica")

    def health(env, *args):
        env = {k: v for k, v in env.items() if v is not None}
        r = subprocess.run([str(KVINIT_BIN), "health", *args], env=env, capture_output=True,
                                         text=True, timeout=SHORT)
        return r.returncode, r.stdout.strip()

    rc, out = health(t.node_env("a", a.port, "primary"), "--ready")
    assert (rc, out) == (0, f"ready: primary 127.0.0.1:{a.port}")
    rc, out = health(t.node_env("b", b.port, "replica"), "--ready")
    assert (rc, out) == (0, f"ready: replica 127.0.0.1:{b.port}: master_link_status:up")
    env = {**t.sentinel_env(0), "KVINIT_ROLE": "sentinel", "PATH": os.environ["PATH"]}
    rc, out = health(env, "--live")
    assert (rc, out) == (0, f"live: sentinel 127.0.0.1:{t.sentinel_ports[0]} answers PING")
    rc, out = health(env, "--ready")
    assert rc == 0 and out.startswith(f"ready: sentinel 127.0.0.1:{t.sentinel_ports[0]}, '{SET}': OK 3 usable"), out
    # a replica whose primary is gone is live, not ready
    a.kill()
    rc, out = health(t.node_env("b", b.port, "replica"), "--ready")
    assert rc == 1 and "master_link_status:down" in out, out
    # sentinel.conf is in the data dir, the Sentinel's, and holds what it learned
    conf = t.workdir / "sentinel-0" / "sentinel.conf"
    text = conf.read_text()
    assert "sentinel myid " in text and f"sentinel known-replica {SET} 127.0.0.1 {b.port}" in text
    assert conf.stat().st_mode & 0o777 == 0o600 and conf.stat().st_uid != 0


def test_sigterm_hands_over_before_stopping(topology, capsys):
    """SIGTERM of the primary's kvinit: it asks the Sentinels to fail over and waits; a client writing every 10 ms
    through the Sentinels loses no acknowledged write, and its gap is far below a plain SIGTERM's. The old primary,
    started again from the same environment (REDIS_REPLICATION_MODE=primary), comes back as a replica of the new
    one. Then a plain SIGTERM of the new primary (its kvinit does not hand over) for the comparison."""
    t = topology
    a = t.nodes["a"]

    def stop_a():
        a.send(signal.SIGTERM)
        assert a.wait(LONG) == 0, a.describe()

    graceful, by_addr = write_across(t, stop_a, Writer, AddrWriter)
    handover = "\n".join(line for line in a.stderr.splitlines() if "failover" in line)
    new_port = wait_new_primary(t, a.port)
    graceful.assert_none_lost()
    by_addr.assert_none_lost()
    assert "failover: sentinel" in a.stderr and "took over in" in a.stderr, a.stderr[-3000:]

    # the old primary comes back as a replica of the new one, though its environment says primary
    a = t.restart_node("a")
    wait_replica_of(t, a, new_port)
    assert f"the Sentinels name '127.0.0.1:{new_port}' the primary" in a.stderr, a.stderr[-2000:]

    new = t.node_by_port(new_port)
    t.wait_settled()

    def stop_new():
        new.send(signal.SIGTERM)
        new.wait(LONG)

    plain = write_across(t, stop_new)
    wait_new_primary(t, new_port)
    plain.assert_none_lost()
    with capsys.disabled():
        print(f"\nsentinel write gap: kvinit SIGTERM (handover) {graceful.max_gap() * 1000:.0f} ms (redis-py), "
              f"{by_addr.max_gap() * 1000:.0f} ms (GET-MASTER-ADDR-BY-NAME, as ioredis); plain SIGTERM "
              f"{plain.max_gap() * 1000:.0f} ms (down-after-milliseconds {DOWN_AFTER_MS}); failed writes "
              f"{len(graceful.errors)}, {len(by_addr.errors)} and {len(plain.errors)}")
        if os.environ.get("SENTINEL_TIMELINE"):
            print(handover, graceful.timeline(), sep="\n")
    # a handover needs no Sentinel to notice anything: faster than they could even call the primary down
    assert graceful.max_gap() < DOWN_AFTER_MS / 1000, \
        f"graceful gap {graceful.max_gap():.3f}s\n{handover}\n{graceful.timeline()}"
    assert plain.max_gap() > graceful.max_gap()


def test_kill9_fails_over_and_the_old_primary_rejoins_as_replica(topology, capsys):
    """kill -9 of the primary's whole namespace (a container's end): the Sentinels fail over within
    down-after-milliseconds plus an election; the old primary, started again, replicates from the new one."""
    t = topology
    a = t.nodes["a"]
    start = time.monotonic()
    a.kill()
    new_port = wait_new_primary(t, a.port)
    took = time.monotonic() - start
    with capsys.disabled():
        print(f"\nsentinel failover after kill -9: {took * 1000:.0f} ms (down-after-milliseconds {DOWN_AFTER_MS})")
    assert took < DOWN_AFTER_MS / 1000 + 10, f"failover took {took:.1f}s"
    wait_until(lambda: info(new_port).get("role") == "master", LONG, "the new primary to be a primary")
    a = t.restart_node("a")
    wait_replica_of(t, a, new_port)
    t.wait_settled()


def test_rotation_reaches_nodes_and_sentinels_with_no_failed_request(topology, capsys):
    """The password files change (next, then current with previous, then previous removed) while a client writes
    through the Sentinels; it switches to the new password once every node and Sentinel accepts it. Not one request
    fails, the Sentinels end up sending the new password to the nodes (no node is called down), and the old one is
    refused everywhere."""
    t = topology
    nodes = list(t.nodes.values())
    servers = [n.port for n in nodes] + t.sentinel_ports
    w = writers(t)()[0]
    w.start()
    wait_until(lambda: len(w.acked) > 20, SHORT, "the writer to write")

    # 1. next: everyone accepts both
    secret_file(t.workdir, NEW, name="redis_password_next")
    wait_until(lambda: all(accepts(p, NEW) for p in servers), LONG, "every node and Sentinel to accept the new one")
    assert all(accepts(p, PASSWORD) for p in servers)
    w.use_password(NEW)
    # 2. current is the new one, previous the old one: everyone sends the new one
    secret_file(t.workdir, NEW)
    secret_file(t.workdir, PASSWORD, name="redis_password_previous")
    os.unlink(t.workdir / "redis_password_next")
    t.password = NEW

    def sentinels_send_new():
        return all(f"the Sentinel sends #{sha(NEW)[:8]} to the nodes" in s.stderr for s in t.sentinels.values())

    wait_until(sentinels_send_new, LONG, "every Sentinel to send the new password to the nodes")
    wait_until(lambda: all(connect(n.port, NEW).config_get("masterauth")["masterauth"] == NEW for n in nodes),
               LONG, "every node's masterauth to be the new password")
    # 3. previous removed: the old one goes at once
    os.unlink(t.workdir / "redis_password_previous")
    wait_until(lambda: not any(accepts(p, PASSWORD) for p in servers), LONG, "everyone to refuse the old password")
    # long enough for a Sentinel sending the old password to call a node down
    time.sleep(DOWN_AFTER_MS / 1000 * 2)
    w.stop()
    assert not w.errors, f"{len(w.errors)} failed requests: {w.errors[:5]}"
    t.wait_settled()
    for i in t.sentinels:
        s = t.sentinel(i)
        assert not flagged_down(s.sentinel_master(SET)), s.sentinel_master(SET)
    for n in nodes[1:]:
        assert info(n.port, NEW).get("master_link_status") == "up"
    w.assert_none_lost()
    with capsys.disabled():
        print(f"\nsentinel rotation: {len(w.acked)} writes through the Sentinels, {len(w.errors)} failed")
    for launched in [*nodes, *t.sentinels.values()]:
        assert PASSWORD not in launched.stderr and NEW not in launched.stderr


def test_own_sentinel_password_file(launch, workdir):
    """REDIS_SENTINEL_PASSWORD_FILE: the Sentinels take their own password, the nodes keep theirs, and a node asks
    the Sentinels with it at start."""
    t = Topology(launch, workdir)
    own = secret_file(workdir, "sentinel only", name="sentinel_password")
    t.own_password = "sentinel only"
    t.start_node("a", "primary", REDIS_SENTINEL_PASSWORD_FILE=own)
    for i in range(3):
        t.start_sentinel(i, REDIS_SENTINEL_PASSWORD_FILE=own)
    wait_until(lambda: all(t.has_quorum(i) for i in range(3)), LONG, "the Sentinels to know each other")
    for p in t.sentinel_ports:
        assert accepts(p, "sentinel only") and not accepts(p, PASSWORD)
    b = t.start_node("b", "replica", REDIS_SENTINEL_PASSWORD_FILE=own, REDIS_PRIMARY_PORT_NUMBER=1)
    # the environment names port 1; the Sentinels, asked with their own password, name the real primary
    wait_replica_of(t, b, t.nodes["a"].port)
    assert f"the Sentinels name '127.0.0.1:{t.nodes['a'].port}' the primary" in b.stderr, b.stderr[-2000:]


def test_cli_in_a_sentinel_container_talks_to_the_sentinel(launch, workdir):
    """`kvinit cli` where KVINIT_ROLE=sentinel (a Sentinel's container, as for `kvinit health`) talks to the Sentinel:
    its port (REDIS_SENTINEL_PORT_NUMBER, not REDIS_PORT_NUMBER, which here names a node) and its own password."""
    t = Topology(launch, workdir)
    own = secret_file(workdir, "sentinel only", name="sentinel_password")
    t.own_password = "sentinel only"
    a = t.start_node("a", "primary", REDIS_SENTINEL_PASSWORD_FILE=own)
    t.start_sentinel(0, REDIS_SENTINEL_PASSWORD_FILE=own)
    env = {**os.environ, **t.sentinel_env(0, REDIS_SENTINEL_PASSWORD_FILE=own, REDIS_PORT_NUMBER=a.port),
           "KVINIT_ROLE": "sentinel"}
    env = {k: v for k, v in env.items() if v is not None}
    r = subprocess.run([str(KVINIT_BIN), "cli", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SET], env=env,
                       capture_output=True, text=True, timeout=SHORT)
    assert r.returncode == 0 and r.stdout.split() == ["127.0.0.1", str(a.port)], (r.stdout, r.stderr)
    # the server it reached says it is that Sentinel
    r = subprocess.run([str(KVINIT_BIN), "cli", "INFO", "server"], env=env, capture_output=True, text=True,
                       timeout=SHORT)
    assert r.returncode == 0 and re.search(r"(redis|server)_mode:sentinel", r.stdout), (r.stdout[-1000:], r.stderr)
    assert f"tcp_port:{t.sentinel_ports[0]}" in r.stdout, r.stdout[-1000:]


def test_sentinel_restarted_at_a_new_address_rejoins(topology):
    """A Sentinel that comes back at another address (127.0.0.2: a container with a new IP) keeps its id (its
    sentinel.conf is in its data dir) and the others follow it to the new address."""
    t = topology
    s = t.sentinels[2]
    myid = t.sentinel(2).execute_command("SENTINEL", "MYID").decode()
    s.send(signal.SIGTERM)
    assert s.wait(LONG) == 0, s.describe()
    moved = t.start_sentinel(2, REDIS_BIND="127.0.0.2", REDIS_SENTINEL_ANNOUNCE_IP="127.0.0.2")
    assert t.sentinel(2, "127.0.0.2").execute_command("SENTINEL", "MYID").decode() == myid

    def followed():
        for i in (0, 1):
            known = {(e["ip"], e["port"], e["runid"]) for e in t.sentinel(i).sentinel_sentinels(SET)
                     if not flagged_down(e)}
            if ("127.0.0.2", t.sentinel_ports[2], myid) not in known:
                return False
        return True

    wait_until(followed, LONG, "the other Sentinels to know it at 127.0.0.2", interval=0.2)
    for i in (0, 1):
        assert not any(e["ip"] == "127.0.0.1" and e["port"] == t.sentinel_ports[2]
                       for e in t.sentinel(i).sentinel_sentinels(SET))
    wait_until(lambda: t.has_quorum(2, "127.0.0.2"), LONG, "the moved Sentinel to reach a quorum", launched=moved)


def test_crashed_sentinel_restarts_with_a_readable_config(topology):
    """Redis's Sentinel writes its passwords unquoted, so with this password (spaces, quotes) its own file is
    unreadable to it; kvinit sets its lines again before every restart, so a crashed Sentinel comes back."""
    t = topology
    s = t.sentinels[0]
    conf = t.workdir / "sentinel-0" / "sentinel.conf"
    wait_until(lambda: "sentinel myid " in conf.read_text(), LONG, "the Sentinel to rewrite its file")
    os.kill(server_pid(s), signal.SIGKILL)
    wait_until(lambda: "started '" in s.stderr and "again" in s.stderr, LONG, "kvinit to restart the Sentinel",
               launched=s)
    wait_until(lambda: t.sentinel_answers(s.port), LONG, "the restarted Sentinel to answer", launched=s)
    wait_until(lambda: t.has_quorum(0), LONG, "the restarted Sentinel to reach a quorum", launched=s)


@pytest.mark.parametrize("role,env,message", [
    ("node", {"REDIS_REPLICATION_MODE": "replica", "REDIS_PRIMARY_HOST": "p"},
     "REDIS_REPLICATION_MODE='replica': needs REDIS_CLUSTER_ENABLED=no"),
    ("node", {"REDIS_CLUSTER_ENABLED": "no", "REDIS_REPLICATION_MODE": "slave"},
     "REDIS_REPLICATION_MODE='slave': needs REDIS_PRIMARY_HOST (alias REDIS_MASTER_HOST)"),
    ("node", {"REDIS_CLUSTER_ENABLED": "no", "REDIS_REPLICATION_MODE": "secondary"},
     "REDIS_REPLICATION_MODE='secondary': must be one of none, primary, replica, master or slave"),
    ("node", {"REDIS_CLUSTER_ENABLED": "no", "REDIS_REPLICATION_MODE": "primary", "REDIS_SENTINEL_HOST": "a b:1:2"},
     "REDIS_SENTINEL_NODES: entry"),
    ("sentinel", {}, "REDIS_PRIMARY_HOST (alias REDIS_MASTER_HOST) is empty"),
    ("sentinel", {"REDIS_SENTINEL_QUORUM": "0"}, "REDIS_SENTINEL_QUORUM='0': must be a whole number from 1"),
    ("sentinel", {"REDIS_MASTER_SET": "my set"}, "REDIS_MASTER_SET='my set': must be 1 to 64 letters"),
])
def test_bad_setting_exits_100(run, workdir, role, env, message):
    base = node_env(workdir, free_port(), REDIS_DATA_DIR=Path(workdir) / "data")
    r = run([KVINIT_BIN, role], env={**base, **env})
    assert r.returncode == 100, r.describe()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


# --------------------------------------------------------------------------- TLS


class TlsWriter(Writer):
    """A Writer whose connections, to the Sentinels and to the primary they name, are TLS."""

    tls = {}

    def master(self, password, timeout=None):
        timeout = timeout or self.timeout
        s = Sentinel(self.sentinels,
                     sentinel_kwargs={"password": self.sentinel_password or password, "socket_timeout": timeout,
                                      "socket_connect_timeout": timeout, **self.tls},
                     socket_timeout=timeout, socket_connect_timeout=timeout, **self.tls)
        return s.master_for(self.master_set, password=password, socket_timeout=timeout,
                            socket_connect_timeout=timeout)


def tls_topology(launch, workdir):
    """A Topology with REDIS_TLS_ENABLED everywhere: the nodes' and the Sentinels' certificates from one CA made
    here, each in a Secret volume of its own (the Sentinels' is rotated by a test), tls-auth-clients yes."""
    pki = Pki(Path(workdir) / "pki")
    t = Topology(launch, workdir)
    t.pki = pki
    node_crt, node_key = pki.issue("node")
    s_crt, s_key = pki.issue("sentinel")
    t.node_files = secret_volume(Path(workdir) / "node-tls", {"tls.crt": node_crt, "tls.key": node_key,
                                                             "ca.crt": pki.ca})
    t.sentinel_files = secret_volume(Path(workdir) / "sentinel-tls", {"tls.crt": s_crt, "tls.key": s_key,
                                                                     "ca.crt": pki.ca})
    t.tls_env = {"REDIS_TLS_ENABLED": "yes", "REDIS_TLS_CERT_FILE": t.node_files["tls.crt"],
                 "REDIS_TLS_KEY_FILE": t.node_files["tls.key"], "REDIS_TLS_CA_FILE": t.node_files["ca.crt"]}
    t.tls = {"ssl": True, "ssl_ca_certs": str(pki.ca), "ssl_certfile": str(node_crt), "ssl_keyfile": str(node_key)}
    return t


def sentinel_tls_env(t):
    return {"REDIS_TLS_CERT_FILE": t.sentinel_files["tls.crt"], "REDIS_TLS_KEY_FILE": t.sentinel_files["tls.key"],
            "REDIS_TLS_CA_FILE": t.sentinel_files["ca.crt"]}


def serial_served(port, t):
    """The serial of the certificate the server on port presents, as `openssl x509 -serial` prints it."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(t.pki.ca), "-cert",
                        t.tls["ssl_certfile"], "-key", t.tls["ssl_keyfile"]], input="", capture_output=True,
                       text=True, timeout=SHORT)
    x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=r.stdout, capture_output=True, text=True,
                       timeout=SHORT)
    return x.stdout.strip().removeprefix("serial=")


def test_tls_sentinels_fail_over_with_no_acknowledged_write_lost(launch, workdir, capsys):
    """REDIS_TLS_ENABLED on a primary, a replica and three Sentinels: every link is TLS (the Sentinels monitor the
    nodes and talk to each other over it: tls-replication), a client finds the primary through the Sentinels over
    TLS and keeps writing while the primary's kvinit stops it (it asks the Sentinels, over TLS, to fail over
    first): not one acknowledged write is lost. `kvinit health` and `kvinit cli` of a Sentinel's container speak
    TLS; a plain client is refused by the Sentinels and the nodes."""
    t = tls_topology(launch, workdir)
    t.start_node("a", "primary")
    t.start_node("b", "replica", KVINIT_FAILOVER_TIMEOUT="0")
    for i in range(3):
        t.start_sentinel(i, **sentinel_tls_env(t))
    t.wait_settled(replicas=1)
    a, b = t.nodes["a"], t.nodes["b"]
    wait_replica_of(t, b, a.port)

    conf = (t.workdir / "sentinel-0" / "sentinel.conf").read_text()
    for line in ("port 0", f"tls-port {t.sentinel_ports[0]}", "tls-replication yes", "tls-auth-clients yes"):
        assert f"\n{line}\n" in conf, conf
    # the Sentinel quotes the paths when it rewrites its file
    assert re.search(rf'\ntls-cert-file "?{re.escape(str(t.sentinel_files["tls.crt"]))}"?\n', conf), conf
    assert f"on TLS port '{t.sentinel_ports[0]}'" in t.sentinels[0].stderr
    for port in [a.port, *t.sentinel_ports]:
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            connect(port).ping()

    env = {**t.sentinel_env(0, **sentinel_tls_env(t)), "KVINIT_ROLE": "sentinel", "PATH": os.environ["PATH"]}
    env = {k: v for k, v in env.items() if v is not None}
    r = subprocess.run([str(KVINIT_BIN), "health", "--ready"], env=env, capture_output=True, text=True,
                       timeout=SHORT)
    assert r.returncode == 0 and r.stdout.startswith(f"ready: sentinel 127.0.0.1:{t.sentinel_ports[0]}, '{SET}': OK"), \
        (r.stdout, r.stderr)
    r = subprocess.run([str(KVINIT_BIN), "cli", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SET], env=env,
                       capture_output=True, text=True, timeout=SHORT)
    assert r.returncode == 0 and r.stdout.split() == ["127.0.0.1", str(a.port)], (r.stdout, r.stderr)
    node = {k: v for k, v in t.node_env("b", b.port, "replica").items() if v is not None}
    r = subprocess.run([str(KVINIT_BIN), "health", "--ready"], env=node, capture_output=True, text=True,
                       timeout=SHORT)
    assert (r.returncode, r.stdout.strip()) == (0, f"ready: replica 127.0.0.1:{b.port}: master_link_status:up"), \
        (r.stdout, r.stderr)

    TlsWriter.tls = t.tls

    def stop_a():
        a.send(signal.SIGTERM)
        assert a.wait(LONG) == 0, a.describe()

    w = sentinel_writer.write_across(lambda: [TlsWriter([("127.0.0.1", p) for p in t.sentinel_ports], t.password)],
                                     stop_a, timeout=LONG)[0]
    new_port = wait_new_primary(t, a.port)
    assert new_port == b.port
    assert "failover: sentinel" in a.stderr and "took over in" in a.stderr, a.stderr[-3000:]
    w.assert_none_lost()
    with capsys.disabled():
        print(f"\nsentinel TLS: write gap across the primary's stop {w.max_gap() * 1000:.0f} ms, "
              f"{len(w.acked)} acknowledged writes, {len(w.errors)} failed, none lost")
    # the old primary comes back over TLS as a replica of the new one
    a = t.restart_node("a")
    wait_replica_of(t, a, new_port)


def test_tls_sentinel_certificate_rotation(launch, workdir, capsys):
    """New certificate files for the Sentinels (a Kubernetes ..data swap): a pair that does not match is refused
    loudly and the old certificate keeps being served; a good one is loaded by a restart of each Sentinel (a
    Sentinel has no CONFIG SET), confirmed by a handshake, and the Sentinels know each other again. A client writing
    through the Sentinels over TLS meanwhile loses nothing and fails no write."""
    t = tls_topology(launch, workdir)
    t.start_node("a", "primary")
    for i in range(3):
        t.start_sentinel(i, **sentinel_tls_env(t))
    t.wait_settled(replicas=0)
    old = serial_served(t.sentinel_ports[0], t)
    assert old and all(serial_served(p, t) == old for p in t.sentinel_ports)

    TlsWriter.tls = t.tls
    w = TlsWriter([("127.0.0.1", p) for p in t.sentinel_ports], t.password)
    w.start()
    wait_until(lambda: len(w.acked) > 20, SHORT, "the writer to write")

    # a certificate with the key of another: refused, the old one stays
    crt, _ = t.pki.issue("sentinel-new")
    _, other_key = t.pki.issue("other")
    volume = Path(workdir) / "sentinel-tls"
    swap_volume(volume, {"tls.crt": crt, "tls.key": other_key, "ca.crt": t.pki.ca})
    wait_until(lambda: all("not a set that works" in s.stderr for s in t.sentinels.values()), LONG,
               "every Sentinel to refuse the mismatched pair")
    assert all(serial_served(p, t) == old for p in t.sentinel_ports)

    # the pair made whole: each Sentinel serves the new certificate
    crt, key = t.pki.issue("sentinel-new")
    new = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(crt)], capture_output=True, text=True,
                         timeout=SHORT).stdout.strip().removeprefix("serial=")
    start = time.monotonic()
    swap_volume(volume, {"tls.crt": crt, "tls.key": key, "ca.crt": t.pki.ca})
    wait_until(lambda: all(serial_served(p, t) == new for p in t.sentinel_ports), LONG,
               "every Sentinel to serve the new certificate", interval=0.05)
    took = time.monotonic() - start
    wait_until(lambda: all("certificate rotation applied: the Sentinel serves serial" in s.stderr
                           for s in t.sentinels.values()), LONG, "every kvinit to confirm the new certificate")
    t.wait_settled(replicas=0)
    time.sleep(1)
    w.stop()
    assert not w.errors, f"{len(w.errors)} failed writes: {w.errors[:5]}"
    w.assert_none_lost()
    with capsys.disabled():
        print(f"\nsentinel TLS rotation: every Sentinel serves the new certificate {took * 1000:.0f} ms after the "
              f"swap; {len(w.acked)} writes through the Sentinels, {len(w.errors)} failed")


def test_tls_sentinel_certificate_restarts_are_no_crashes(launch, workdir):
    """kvinit restarts the Sentinel on purpose to load new certificates: such a restart is no crash, so it neither
    counts toward KVINIT_MAX_RESTARTS nor reads as one ("restart 1 of 1"). With KVINIT_MAX_RESTARTS=1, two
    rotations in a row (well within KVINIT_BACKOFF_RESET): the Sentinel still runs and serves the second
    certificate, and the crash-restart count is still whole for a real crash after them."""
    t = tls_topology(launch, workdir)
    t.start_node("a", "primary")
    s = t.start_sentinel(0, KVINIT_MAX_RESTARTS="1", KVINIT_BACKOFF_RESET="600s", **sentinel_tls_env(t))
    volume = Path(workdir) / "sentinel-tls"
    for n in (1, 2):
        crt, key = t.pki.issue(f"sentinel-{n}")
        new = serial_of(crt)
        swap_volume(volume, {"tls.crt": crt, "tls.key": key, "ca.crt": t.pki.ca})
        wait_until(lambda: s.stderr.count("certificate rotation applied: the Sentinel serves serial") >= n, LONG,
                   f"kvinit to confirm certificate {n} ('{new}')", launched=s)
        served = serial_served(s.port, t)
        assert served == new, f"rotation {n}: the Sentinel serves '{served}', not '{new}'\n{s.describe()}"
    assert "restart 1 of" not in s.stderr and "giving up" not in s.stderr, s.describe()
    # a real crash after them is still restarted: the one quick restart KVINIT_MAX_RESTARTS=1 allows
    os.kill(server_pid(s), signal.SIGKILL)
    wait_until(lambda: "(restart 1 of 1)" in s.stderr, LONG,
               "kvinit to restart the crashed Sentinel", launched=s)
    wait_until(lambda: t.sentinel_answers(s.port), LONG, "the Sentinel to answer after its crash", launched=s)
    assert serial_served(s.port, t) == new


def test_tls_sentinel_ca_change_is_staged(launch, workdir):
    """A new CA in the Sentinel's ca.crt is staged as on the nodes: the Sentinel (restarted for it) and kvinit trust
    the old and the new CA for KVINIT_ROTATION_GRACE, so clients and peers with certificates of either get in while
    the certificates follow; then the new CA alone (a restart again), and a certificate of the old CA is refused."""
    t = tls_topology(launch, workdir)
    t.start_node("a", "primary")
    s = t.start_sentinel(0, KVINIT_ROTATION_GRACE="10s", **sentinel_tls_env(t))
    volume = Path(workdir) / "sentinel-tls"
    conf = t.workdir / "sentinel-0" / "sentinel.conf"
    bundle = t.workdir / "sentinel-0" / "tls-ca-staged.pem"
    new_ca = Pki(Path(workdir) / "new-pki")
    both = Path(workdir) / "both-cas.crt"
    both.write_bytes(new_ca.ca.read_bytes() + t.pki.ca.read_bytes())
    new_client = new_ca.issue("client-new")
    old_client = (t.tls["ssl_certfile"], t.tls["ssl_keyfile"])

    def answers(client):
        try:
            return connect(s.port, ssl=True, ssl_ca_certs=str(both), ssl_certfile=str(client[0]),
                           ssl_keyfile=str(client[1])).ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    def applied(n):
        wait_until(lambda: s.stderr.count("certificate rotation applied: the Sentinel serves serial") >= n, LONG,
                   f"kvinit to confirm the Sentinel's certificate (step {n})", launched=s)

    # step 1: the new CA alone in ca.crt, the certificate as it was: both CAs trusted, through the bundle
    swap_volume(volume, {"tls.crt": volume / "tls.crt", "tls.key": volume / "tls.key", "ca.crt": new_ca.ca})
    applied(1)
    assert "the CA changed: the Sentinel and kvinit trust the old and the new CA" in s.stderr, s.describe()
    assert re.search(rf'\ntls-ca-cert-file "?{re.escape(str(bundle))}"?\n', conf.read_text()), conf.read_text()
    assert answers(old_client) and answers(new_client), s.describe()
    # step 2: a certificate of the new CA, still within the grace
    crt, key = new_ca.issue("sentinel-new-ca")
    swap_volume(volume, {"tls.crt": crt, "tls.key": key, "ca.crt": new_ca.ca})
    applied(2)
    client = {"ca.crt": both, "tls.crt": new_client[0], "tls.key": new_client[1]}
    assert served_serial(s.port, client) == serial_of(crt), s.describe()
    assert answers(old_client) and answers(new_client), s.describe()
    # the grace ends: the new CA alone
    wait_until(lambda: "the staged CA change ends: the Sentinel and kvinit trust the new CA alone" in s.stderr, LONG,
               "the staged CA change to end", launched=s)
    applied(3)
    text = conf.read_text()
    assert re.search(rf'\ntls-ca-cert-file "?{re.escape(str(t.sentinel_files["ca.crt"]))}"?\n', text), text
    assert answers(new_client) and not answers(old_client), s.describe()
    assert "(restart 1 of" not in s.stderr, s.describe()


def test_tls_sentinel_certificate_checked_at_start(launch, workdir):
    """A Sentinel's certificate must cover the name it announces (the others and the clients connect to it): one
    line naming the file and the name, exit 100, and no sentinel.conf written."""
    t = tls_topology(launch, workdir)
    t.primary_port = free_port()
    env = t.sentinel_env(0, REDIS_SENTINEL_ANNOUNCE_IP="sentinel-x.example", **sentinel_tls_env(t))
    p = launch([KVINIT_BIN, "sentinel"], env=env)
    assert p.wait(SHORT) == 100, p.describe()
    lines = [line for line in p.stderr.splitlines() if line.startswith("error kvinit")]
    assert len(lines) == 1 and "REDIS_TLS_CERT_FILE=" in lines[0] and "'sentinel-x.example'" in lines[0], p.stderr
    assert not (t.workdir / "sentinel-0" / "sentinel.conf").exists()
