"""The three compose layouts, end to end: each on its default image, and the main layout once more on kvinit:valkey-9."""

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from cluster_writer import Writer
from conftest import COMPOSE_DIR, MAIN_PORTS, compose, container_ids, inspect, password, sh, wait_until


GRACEFUL_GAP_LIMIT = 0.64  # seconds: 10x the README's 64 ms write gap of a graceful master stop


def cluster_client(host, port):
    return RedisCluster(startup_nodes=[ClusterNode(host, port)], password=password(), socket_timeout=3,
                        socket_connect_timeout=3)


def write_read_10000(host, port):
    rc = cluster_client(host, port)
    pipe = rc.pipeline()
    for i in range(10000):
        pipe.set(f"e2e:{i}", i)
    assert all(pipe.execute())
    pipe = rc.pipeline()
    for i in range(10000):
        pipe.get(f"e2e:{i}")
    assert [int(v) for v in pipe.execute()] == list(range(10000))
    rc.close()


def service_container(layout, service):
    """The container of a service, whatever the compose version names it."""
    cid = compose(layout, "ps", "-q", service).stdout.strip()
    assert cid, f"no container for {service}"
    return cid


def node_client(host, port):
    return redis.Redis(host=host, port=port, password=password(), socket_timeout=3, socket_connect_timeout=3)


def health(container, *args):
    return sh("docker", "exec", container, "/usr/bin/kvinit", "health", *args, check=False)


def server_pid(container):
    """Host pid of the server (redis-server or valkey-server) under the container's kvinit."""
    init = inspect(container)["State"]["Pid"]
    for task in Path(f"/proc/{init}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/comm").read_text().strip() in ("redis-server", "valkey-server"):
                return int(child)
    raise AssertionError(f"no redis-server or valkey-server under {container}'s kvinit (pid {init})")


def status_fields(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def masters_view(host_port):
    c = node_client(*host_port)
    return {addr: info for addr, info in c.execute_command("CLUSTER NODES").items() if "master" in info["flags"]}


def main_writer():
    return Writer([(name, port) for name, port in MAIN_PORTS.items()], node_client, tag="w")


def owner_container(writer):
    host, port = writer.owner()
    return next(name for name, p in MAIN_PORTS.items() if p == port)


def take_down_a_master(how, stop, timeout):
    """Stops (by `stop`) the master a writer is writing to; returns it and the writer once writes have resumed on
    its successor, and prints the longest time without an acknowledged write."""
    writer = main_writer()
    victim = owner_container(writer)
    writer.start()
    wait_until(lambda: len(writer.acked) > 50, 30, "the writer to get going")
    stop(victim)
    wait_until(lambda: owner_container(writer) != victim, timeout, "another master for {w}")
    n = len(writer.acked)
    wait_until(lambda: len(writer.acked) > n + 50, timeout, "writes to resume")
    writer.stop.set()
    writer.join(10)
    print(f"\nwrite gap, {how} of master {victim}: {writer.gap() * 1000:.0f} ms; {writer.summary()}")
    return victim, writer


def bring_back_as_replica(victim, start):
    start()
    wait_until(lambda: health(victim, "--ready").returncode == 0, 90, f"{victim} back and ready")
    assert "role:slave" in sh("docker", "exec", victim, "/usr/bin/kvinit", "cli", "info", "replication").stdout


# =========================================================================== main layout


@pytest.mark.parametrize("stack", ["main", "main@valkey-9"], indirect=True)
class TestMain:
    def test_up_from_nothing(self, stack):
        layout, elapsed, out = stack
        assert "cluster ok" in out
        init = inspect("redis-cluster-init")["State"]
        assert (init["Status"], init["ExitCode"]) == ("exited", 0)
        for name in MAIN_PORTS:
            wait_until(lambda n=name: inspect(n)["State"]["Health"]["Status"] == "healthy", 60, f"{name} healthy")
            wait_until(lambda n=name: health(n, "--ready").returncode == 0, 60, f"{name} ready")

    def test_host_client_with_the_hosts_line(self, stack, hosts_line):
        write_read_10000("redis-node-0", 6379)

    def test_inside_the_network(self, stack):
        r = sh("docker", "exec", "redis-node-3", "/usr/bin/kvinit", "cli", "-c", "-h", "redis-node-0", "-p", "6379",
               "set", "inside", "yes")
        assert r.stdout.strip() == "OK", r.stdout + r.stderr

    def test_server_is_unprivileged(self, stack):
        for name in MAIN_PORTS:
            st = status_fields(server_pid(name))
            assert st["Uid"].split() == ["999"] * 4, (name, st["Uid"])
            assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == "0000000000000000", name
            assert (st["NoNewPrivs"], st["Seccomp"]) == ("1", "2"), name

    def test_password_is_nowhere_to_see(self, stack):
        secret = password()
        for cid in container_ids("main"):
            assert secret not in sh("docker", "inspect", cid).stdout
        leaks = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                for f in ("cmdline", "environ"):
                    try:
                        if secret.encode() in Path(f"/proc/{entry}/{f}").read_bytes():
                            leaks.append((entry, f))
                    except OSError:
                        pass
        assert not leaks, leaks

    def test_exporter_reports_the_nodes(self, stack):
        def metrics():
            with urllib.request.urlopen("http://127.0.0.1:9121/metrics", timeout=3) as r:
                return r.read().decode()

        text = wait_until(lambda: "redis_up 1" in metrics() and metrics(), 60, "redis_up 1 on /metrics")
        assert "redis_up 1" in text

    def test_exporter_has_its_own_user(self, stack):
        # compose/config/redis_users: the exporter logs in as 'exporter', which scrapes (CLUSTER INFO's counters are
        # in its metrics) and reads no key, writes nothing and reads no setting (CONFIG GET * would give masterauth)
        with urllib.request.urlopen("http://127.0.0.1:9121/metrics", timeout=3) as r:
            assert "redis_cluster_messages_sent_total" in r.read().decode()
        secret = COMPOSE_DIR / "secrets" / "redis_exporter_password"
        e = redis.Redis(host="127.0.0.1", port=MAIN_PORTS["redis-node-0"], username="exporter",
                        password=secret.read_text().strip("\n"), socket_timeout=3)
        assert "cluster_enabled" in e.info()
        for refused in (lambda: e.set("exporter-wrote", "x"), lambda: e.get("k"), lambda: e.config_get("*")):
            with pytest.raises(redis.exceptions.NoPermissionError):  # NOPERM (redis-py drops the code from the text)
                refused()

    def test_kill_9_of_the_server_restarts_it_in_place(self, stack, hosts_line):
        before = inspect("redis-node-4")
        old = server_pid("redis-node-4")
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: server_pid("redis-node-4") != old, 30, "a new server process in redis-node-4")
        wait_until(lambda: health("redis-node-4", "--live").returncode == 0, 30, "redis-node-4 live again")
        after = inspect("redis-node-4")
        assert after["RestartCount"] == before["RestartCount"]
        assert after["State"]["StartedAt"] == before["State"]["StartedAt"]

    def test_graceful_stop_of_a_master_loses_nothing(self, stack, hosts_line):
        victim, writer = take_down_a_master("graceful stop", lambda v: compose("main", "stop", v), 30)
        assert "took over in" in compose("main", "logs", "--no-color", victim).stdout
        # README: 64 ms (tests/bench/formation), goal < 0.5 s; without the handover it takes seconds
        assert writer.gap() < GRACEFUL_GAP_LIMIT, f"write gap {writer.gap():.2f} s; {writer.summary()}"
        assert "CLUSTERDOWN" not in writer.error_counts(), writer.summary()
        missing = writer.lost(lambda: node_client(*writer.owner()))
        assert not missing, f"acknowledged writes lost: {missing[:10]}"
        bring_back_as_replica(victim, lambda: compose("main", "start", victim))

    def test_docker_kill_of_a_master_promotes_its_replica(self, stack, hosts_line):
        victim, _ = take_down_a_master("docker kill", lambda v: sh("docker", "kill", v), 60)
        bring_back_as_replica(victim, lambda: sh("docker", "start", victim))

    def test_down_and_up_keeps_every_key(self, stack, hosts_line):
        rc = cluster_client("redis-node-0", 6379)
        for i in range(1000):
            rc.set(f"persist:{i}", i)
        rc.close()
        compose("main", "down")  # volumes kept
        r = sh(Path(__file__).resolve().parents[2] / "compose" / "stack.sh", "up", env={"LAYOUT": "main"})
        assert "nothing to do" in r.stdout + r.stderr, "the init on the second up must find the cluster formed"
        rc = cluster_client("redis-node-0", 6379)
        wait_until(lambda: rc.get("persist:999") == b"999", 60, "the keys after down and up")
        assert all(rc.get(f"persist:{i}") == str(i).encode() for i in range(1000))
        rc.close()


    def test_nodes_that_all_moved_heal_by_themselves(self, stack, hosts_line):
        """Every node recreated at another static address: each fixes its own nodes.conf line and meets its peers
        by name; no cluster-init runs. Then one node alone moves."""
        here = Path(__file__).resolve().parent
        nodes = list(MAIN_PORTS)
        rc = cluster_client("redis-node-0", 6379)
        for i in range(1000):
            rc.set(f"moved:{i}", i)
        rc.close()
        for overrides, moved in (([here / "moved-ips.override.yml"], nodes),
                                 ([here / "moved-one-ip.override.yml"], ["redis-node-5"])):
            compose("main", "stop", *moved)
            t0 = time.monotonic()
            compose("main", "up", "-d", "--no-deps", *moved, overrides=overrides)
            wait_until(lambda: all(health(n, "--ready").returncode == 0 for n in nodes), 60,
                       f"the cluster ok again after {len(moved)} node(s) moved")
            print(f"\n{len(moved)} node(s) at new addresses: every node ready {time.monotonic() - t0:.1f} s after up")
            ip = inspect(moved[0])["NetworkSettings"]["Networks"]["infra_net"]["IPAddress"]
            assert ip == ("172.19.0.80" if len(moved) == 6 else "172.19.0.95"), ip
            assert inspect("redis-cluster-init")["State"]["Status"] == "exited", "cluster-init must not have run"
            rc = cluster_client("redis-node-0", 6379)
            assert [rc.get(f"moved:{i}") for i in range(1000)] == [str(i).encode() for i in range(1000)]
            rc.close()


# =========================================================================== the other layouts


@pytest.mark.parametrize("stack", ["cache-cluster"], indirect=True)
def test_cache_cluster_layout(stack):
    cid = service_container("cache-cluster", "redis-node-1")
    ip = next(iter(inspect(cid)["NetworkSettings"]["Networks"].values()))["IPAddress"]
    write_read_10000(ip, 7001)
    assert inspect(service_container("cache-cluster", "redis-cache-init"))["State"]["ExitCode"] == 0


@pytest.mark.parametrize("stack", ["announce"], indirect=True)
def test_announce_layout_from_the_host(stack):
    write_read_10000("127.0.0.1", 6379)
    # every slot's owner is announced at the gateway address with a published port
    for start, end, master, *_ in node_client("127.0.0.1", 6379).execute_command("CLUSTER SLOTS"):
        host = master[0].decode() if isinstance(master[0], bytes) else master[0]
        assert host == os.environ.get("ANNOUNCE_IP", "172.30.0.1") and 6379 <= int(master[1]) <= 6382
    # and inside the network too
    r = sh("docker", "exec", service_container("announce", "valkey2"), "/usr/bin/kvinit", "cli", "-c", "-h", "valkey0",
           "set", "inside", "yes")
    assert r.stdout.strip() == "OK", r.stdout + r.stderr
