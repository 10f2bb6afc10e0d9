"""The sentinel layout, end to end: `make up LAYOUT=sentinel`, a client on the host that finds the primary through
the Sentinels (redis-py's Sentinel, with the hosts line of `make hosts LAYOUT=sentinel` emulated in this process),
`docker stop` of the primary while it writes, and a live password rotation (`make rotate`, `make rotate-finish`).
The write gaps are printed (pytest -s shows them)."""

import os
import time

import pytest
import redis

import conftest
from conftest import STACK, compose, inspect, password, sh, wait_until
from sentinel_writer import AddrWriter, Writer, write_across


SENTINELS = [("sentinel-1", 26379), ("sentinel-2", 26380), ("sentinel-3", 26381)]
NODES = {"redis-primary": 6390, "redis-replica-1": 6391, "redis-replica-2": 6392}
SET = "mymaster"

pytestmark = pytest.mark.parametrize("stack", ["sentinel"], indirect=True)


@pytest.fixture
def sentinel_hosts():
    """What the line of `make hosts LAYOUT=sentinel` does for this process."""
    line = sh(STACK, "hosts", env={"LAYOUT": "sentinel"}).stdout.split()
    assert line[0] == "127.0.0.1" and set(NODES) | {h for h, _ in SENTINELS} == set(line[1:]), line
    conftest._host_map.update({name: "127.0.0.1" for name in line[1:]})
    yield
    conftest._host_map.clear()


def container(service):
    cid = compose("sentinel", "ps", "-q", service).stdout.strip()
    assert cid, f"no container for {service}"
    return cid


def node(name, pw=None):
    return redis.Redis(host=name, port=NODES[name], password=pw or password(), socket_timeout=3,
                       socket_connect_timeout=3)


def sentinel(i, pw=None):
    host, port = SENTINELS[i]
    return redis.Redis(host=host, port=port, password=pw or password(), socket_timeout=3, socket_connect_timeout=3)


def primary():
    """The primary every Sentinel names, as a service name, or None while they disagree."""
    named = set()
    for i in range(3):
        addr = sentinel(i).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SET)
        named.add((addr[0].decode(), int(addr[1])) if addr else None)
    if len(named) != 1 or None in named:
        return None
    host, port = named.pop()
    assert NODES.get(host) == port, (host, port)
    return host


def writers(*kinds, pw=None):
    return lambda: [kind(SENTINELS, pw or password()) for kind in kinds or (Writer,)]


def healthy(service):
    return inspect(container(service))["State"].get("Health", {}).get("Status") == "healthy"


def test_up_from_nothing(stack):
    layout, elapsed, out = stack
    assert "sentinel layout ready: every service healthy" in out, out
    for name in ("redis-primary", "redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"):
        assert healthy(name), name
    # the Sentinel's health says why, in one line; its config is in its volume, the Sentinel's own
    r = sh("docker", "exec", container("sentinel-1"), "/usr/bin/kvinit", "health", "--ready")
    assert r.stdout.startswith("ready: sentinel 127.0.0.1:26379, 'mymaster': OK 3 usable Sentinels"), r.stdout
    data = next(m["Source"] for m in inspect(container("sentinel-1"))["Mounts"] if m["Destination"] == "/data")
    conf = os.stat(os.path.join(data, "sentinel.conf"))
    assert conf.st_mode & 0o777 == 0o600 and conf.st_uid != 0, oct(conf.st_mode)


def test_overlay_with_the_main_layout(stack):
    """As an overlay on another compose file (here the main layout's): no service, port or volume clashes."""
    tool = ["docker", "compose"] if sh("docker", "compose", "version", check=False).returncode == 0 \
        else ["docker-compose"]
    r = sh(*tool, "--project-directory", conftest.COMPOSE_DIR, "-f", conftest.COMPOSE_DIR / "docker-compose.yml",
           "-f", conftest.COMPOSE_DIR / "docker-compose.sentinel.yml", "config", "--services")
    services = set(r.stdout.split())
    assert {"redis-node-0", "redis-primary", "sentinel-3", "redis-exporter"} <= services, services


def test_host_client_through_the_sentinels(stack, sentinel_hosts):
    assert primary() == "redis-primary"
    w = Writer(SENTINELS, password())
    m = w.master(password(), timeout=3)
    for i in range(1000):
        m.set(f"e2e:{i}", i)
    assert [int(v) for v in m.mget([f"e2e:{i}" for i in range(1000)])] == list(range(1000))
    wait_until(lambda: node("redis-replica-2").get("e2e:999") == b"999", 30, "the write to reach a replica")


def test_docker_stop_of_the_primary_under_load(stack, sentinel_hosts, capsys):
    """docker stop: kvinit asks the Sentinels to fail over first; the writers through the Sentinels lose no
    acknowledged write. The stopped primary, started again, comes back as a replica of the new one."""
    old = primary()
    assert old
    t0 = [0.0]

    def stop():
        t0[0] = time.monotonic()
        sh("docker", "stop", container(old))

    py, by_addr = write_across(writers(Writer, AddrWriter), stop, timeout=120)
    new = wait_until(lambda: primary() not in (None, old) and primary(), 60, "the Sentinels to name a new primary")
    py.assert_none_lost()
    by_addr.assert_none_lost()
    logs = sh("docker", "logs", container(old)).stderr
    with capsys.disabled():
        print(f"\nsentinel layout, docker stop of {old}: write gap {py.max_gap() * 1000:.0f} ms (redis-py), "
              f"{by_addr.max_gap() * 1000:.0f} ms (GET-MASTER-ADDR-BY-NAME); {len(py.errors)} and "
              f"{len(by_addr.errors)} failed writes; {new} is the primary")
        print("\n".join(line for line in logs.splitlines() if "failover" in line))
    assert "took over in" in logs, logs[-3000:]
    assert py.max_gap() < 5, py.timeline()
    sh("docker", "start", container(old))
    wait_until(lambda: node(old).info("replication").get("master_host") == new
               and node(old).info("replication").get("master_link_status") == "up", 60,
               f"{old} to come back as a replica of {new}")
    wait_until(lambda: healthy(old), 60, f"{old} to be healthy again")


def test_rotation_with_the_sentinels(stack, sentinel_hosts, capsys):
    """make rotate while a client writes through the Sentinels; the client moves to the new password, then make
    rotate-finish: not one failed request, and the Sentinels keep watching the nodes with the new password."""
    old_pw = password()
    w = Writer(SENTINELS, old_pw)
    w.start()
    wait_until(lambda: len(w.acked) > 20, 30, "the writer to write")
    try:
        sh(STACK, "rotate", env={"LAYOUT": "sentinel"}, timeout=300)
        new_pw = password()
        assert new_pw != old_pw
        w.use_password(new_pw)
        time.sleep(1)
        sh(STACK, "rotate-finish", env={"LAYOUT": "sentinel"}, timeout=300)
        # the Sentinels and the nodes refuse the old password now; long enough for a Sentinel still sending it to
        # call a node down (down-after-milliseconds, 5 s)
        time.sleep(7)
    finally:
        w.stop()
    assert not w.errors, w.errors[:5]
    w.assert_none_lost()
    for i in range(3):
        s = sentinel(i, new_pw)
        assert s.execute_command("SENTINEL", "CKQUORUM", SET)
        state = s.sentinel_master(SET)
        assert not any(f in state["flags"] for f in ("s_down", "o_down")), state
        for replica in s.sentinel_slaves(SET):
            assert "s_down" not in replica["flags"], replica
        with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError),
                           match="WRONGPASS|invalid"):
            sentinel(i, old_pw).ping()
    with capsys.disabled():
        print(f"\nsentinel layout rotation: {len(w.acked)} writes through the Sentinels, {len(w.errors)} failed")
