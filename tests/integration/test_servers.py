"""What the server matrix checks beyond the node tests: every config kvinit renders starts the server it was rendered
for (the cases of the golden files of tests/unit/test_render.c, rendered by `kvinit render` for the server under
test), `kvinit cli -c` follows a cluster's redirects with the cli that matches the server, replicas sync at once,
REDIS_CLUSTER_AVAILABILITY_ZONE is used where the server has `availability-zone` and refused where not, and where
the server can fail over by itself on SIGTERM (Valkey 9), its write gap on stop is measured against kvinit's
handover.

They run against the host's redis-server by default and against each server of the matrix (`make matrix`).
"""

import hashlib
import re
import signal
import time

import pytest
import redis

from conftest import LONG, SHORT, KVINIT_BIN, SERVER, SERVERS_DIR, wait_until
from cluster_writer import Writer
from nodes import PASSWORD, answers, client, free_port, node_env
from test_cluster import (GRACEFUL_GAP_LIMIT, cluster_init, roles, settled, start_node, start_nodes,  # noqa: F401
                          stop_while_writing)
from test_node import kvinit_tool

# The render cases of the golden files (tests/golden/render-*.conf), with this run's port and loopback addresses.
RENDER_CASES = {
    "cluster": {},
    "standalone-nopass": {"REDIS_CLUSTER_ENABLED": "no", "REDIS_AOF_ENABLED": "no", "REDIS_PASSWORD_FILE": None,
                          "ALLOW_EMPTY_PASSWORD": "yes"},
    "announce-ip": {"REDIS_CLUSTER_ANNOUNCE_IP": "172.19.0.60", "REDIS_CLUSTER_ANNOUNCE_PORT": "16380",
                    "REDIS_CLUSTER_ANNOUNCE_BUS_PORT": "26380", "REDIS_CLUSTER_NODE_TIMEOUT": "3000"},
    "hostname": {"REDIS_CLUSTER_ANNOUNCE_HOSTNAME": "redis-node-0.example",
                 "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE": "hostname",
                 "REDIS_EXTRA_FLAGS": "--maxmemory 100mb --save 900 1 --notify-keyspace-events Ex",
                 "REDIS_BIND": "127.0.0.1 -::1"},
}

# Lines of the rendered config that are not a parameter CONFIG GET knows by that name.
NOT_PARAMETERS = {"include", "user"}


def unredacted(text):
    """`kvinit render` hides the secrets; the server needs them: the password's hash and masterauth put back."""
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    text = text.replace("#<redacted>", f"#{digest}")
    escaped = PASSWORD.replace("\\", "\\\\").replace('"', '\\"')
    return text.replace('masterauth "<redacted>"', f'masterauth "{escaped}"')


@pytest.mark.matrix
@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_rendered_config_starts_the_server(case, launch, workdir):
    """`kvinit render` for the server under test (its flavor and version pick the directives), then that server
    started with exactly that config: it must accept every line, and know each parameter by its name."""
    port = free_port()
    env = dict(RENDER_CASES[case], REDIS_DATA_DIR=workdir / f"data-{port}")
    (workdir / f"data-{port}").mkdir()
    r = kvinit_tool(workdir, port, "render", env_extra=env)
    assert r.returncode == 0, r.stderr
    conf = workdir / f"rendered-{case}.conf"
    conf.write_text(unredacted(r.stdout))
    print(f"\n{SERVER.name}: {case}: {len(r.stdout.splitlines())} lines rendered")

    server = launch([SERVER.server, conf])
    password = None if case == "standalone-nopass" else PASSWORD
    try:
        wait_until(lambda: answers(port, password), LONG, f"{SERVER.process_name} to start with the rendered "
                   f"config\n{conf.read_text()}", launched=server)
    except AssertionError:
        raise AssertionError(f"{SERVER.process_name} refused the rendered config ({case}):\n{server.stdout[-2000:]}"
                             f"\n--- config ---\n{conf.read_text()}") from None
    c = client(port, password)
    for line in r.stdout.splitlines():
        name = line.split(" ", 1)[0]
        if not line or line.startswith("#") or name in NOT_PARAMETERS:
            continue
        assert c.config_get(name), f"{SERVER.process_name} does not know '{name}' (rendered: {line!r})"
    server.send(signal.SIGTERM)
    server.wait(SHORT)


@pytest.mark.matrix
def test_cli_c_follows_redirects(start_nodes, workdir):
    """`kvinit cli -c` against one node of a 3-master cluster: a key of another node's slot is written and read
    through the redirect, by the cli beside the server (valkey-cli for Valkey)."""
    nodes = start_nodes(3)
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=0)
    assert r.returncode == 0, r.stdout + r.stderr
    first = nodes[0].port
    myself = next(info for info in client(first).execute_command("CLUSTER NODES").values()
                  if "myself" in info["flags"])
    own = set()
    for bounds in myself["slots"]:
        own.update(range(int(bounds[0]), int(bounds[-1]) + 1))
    elsewhere = [k for k in (f"cli:{i}" for i in range(100))
                 if int(client(first).execute_command("CLUSTER KEYSLOT", k)) not in own][:5]
    assert elsewhere, "every key hashed to the first node's slots"
    for key in elsewhere:
        r = kvinit_tool(workdir, first, "cli", "-c", "set", key, "v-" + key)
        assert r.returncode == 0 and r.stdout.strip() == "OK", (key, r.stdout, r.stderr)
        r = kvinit_tool(workdir, first, "cli", "-c", "get", key)
        assert r.returncode == 0 and r.stdout.strip() == "v-" + key, (key, r.stdout, r.stderr)
        r = kvinit_tool(workdir, first, "cli", "get", key)  # without -c: the redirect is shown, not followed
        assert "MOVED" in r.stdout + r.stderr, (key, r.stdout, r.stderr)


# --------------------------------------------------------------------------- replicas sync at once


def replica_links(nodes):
    """{port: master_link_status} of the replicas among `nodes`."""
    out = {}
    for n in nodes:
        info = client(n.port).info("replication")
        if info["role"] == "slave":
            out[n.port] = info.get("master_link_status")
    return out


SYNC_BOUND = 2.5


@pytest.mark.matrix
def test_replicas_sync_at_once(start_nodes, start_node, workdir):
    """Every replica's link to its master is up within 1 s of cluster-init's exit, and within 1 s of a restarted
    replica answering again: a master starts the sync as soon as its known replicas are connected, not after
    repl-diskless-sync-delay (5 s by default, which left the links down for 2-5 s after every start)."""
    nodes = start_nodes(6)
    r = cluster_init(workdir, nodes)
    exited = time.monotonic()
    assert r.returncode == 0, r.stdout + r.stderr

    def all_up():
        links = replica_links(nodes)
        return len(links) == 3 and all(v == "up" for v in links.values())

    wait_until(all_up, LONG, "every replica's link to its master up")
    formed = time.monotonic() - exited
    print(f"\nreplica links up {formed * 1000:.0f} ms after cluster-init exited")

    replica = next(n for n in nodes if n.port in replica_links(nodes))
    replica.send(signal.SIGTERM)
    assert replica.wait(SHORT) == 0, replica.describe()
    start_node(port=replica.port)  # the same data dir and nodes.conf: it comes back as the same replica
    answered = time.monotonic()
    wait_until(lambda: client(replica.port).info("replication").get("master_link_status") == "up", LONG,
               "the restarted replica's link up")
    restarted = time.monotonic() - answered
    print(f"a restarted replica's link up {restarted * 1000:.0f} ms after it answered PING")
    # The goal is 1 s (measured: 30-165 ms, Valkey 9 680-950 ms); the bound leaves a busy machine room and still
    # fails on the servers' default 5 s repl-diskless-sync-delay (5.1-6.3 s measured).
    assert formed < SYNC_BOUND, f"the replicas' links came up {formed:.2f} s after cluster-init exited (goal: 1 s)"
    assert restarted < SYNC_BOUND, f"the restarted replica's link came up {restarted:.2f} s after it answered (goal: 1 s)"


# --------------------------------------------------------------------------- availability zones

ZONE_FIRST = {"valkey": (8, 0, 0), "redis": None}  # availability-zone: Valkey 8.0; no Redis has it


@pytest.mark.matrix
def test_availability_zone_is_set_or_refused(start_node, launch, workdir):
    """REDIS_CLUSTER_AVAILABILITY_ZONE becomes `availability-zone` on a server that knows it; a server that does not
    is refused before it starts, with one line naming the variable and the directive."""
    if SERVER.knows(**ZONE_FIRST):
        node = start_node(REDIS_CLUSTER_AVAILABILITY_ZONE="zone-a")
        assert client(node.port).config_get("availability-zone") == {"availability-zone": "zone-a"}
        return
    port = free_port()
    p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, REDIS_CLUSTER_AVAILABILITY_ZONE="zone-a"))
    assert p.wait(SHORT) == 100, p.describe()
    lines = [line for line in p.stderr.splitlines() if line.startswith("error kvinit")]
    assert len(lines) == 1 and "REDIS_CLUSTER_AVAILABILITY_ZONE" in lines[0] and "availability-zone" in lines[0], \
        p.stderr


@pytest.mark.matrix
def test_replicas_go_to_another_zone(start_node, workdir):
    """Zones a, b, c, a, b, c: the plan's masters are the first three (one per zone), and every replica goes to a
    master of another zone (all nodes share one host, so only the zones can tell them apart)."""
    if not SERVER.knows(**ZONE_FIRST):
        pytest.skip(f"{SERVER.process_name} {'.'.join(map(str, SERVER.release))} has no availability-zone")
    zones = ["a", "b", "c", "a", "b", "c"]
    nodes = [start_node(REDIS_CLUSTER_AVAILABILITY_ZONE=f"zone-{z}") for z in zones]
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    zone_of = {f"127.0.0.1:{n.port}": z for n, z in zip(nodes, zones)}
    view = roles(nodes[0].port, 3, nodes)
    pairs = {addr: master for addr, (role, master, _) in view.items() if role == "replica"}
    assert len(pairs) == 3, view
    same = [(replica, master) for replica, master in pairs.items() if zone_of[replica] == zone_of[master]]
    assert not same, f"replicas in their master's zone: {same} (zones {zone_of})"


# --------------------------------------------------------------------------- the server's own failover on stop

SHUTDOWN_FAILOVER_FIRST = {"valkey": (9, 0, 0), "redis": None}  # shutdown-on-sigterm failover: Valkey 9.0
# A node that leaves the stop to its server: no handover of kvinit's, the server's own failover on SIGTERM.
SERVER_FAILOVER = {"KVINIT_FAILOVER_TIMEOUT": "0", "REDIS_EXTRA_FLAGS": "--shutdown-on-sigterm failover"}


def say_loudly(request, line):
    """One line on the terminal, past pytest's capture."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def tag_owned_by(node):
    """A hash tag whose slot `node` serves."""
    c = client(node.port)
    own = [(int(a), int(b)) for a, b, master, *_ in c.execute_command("CLUSTER SLOTS")
           if int(master[1]) == node.port]
    for i in range(10000):
        slot = redis.crc.key_slot(f"{{g{i}}}".encode())
        if any(a <= slot <= b for a, b in own):
            return f"g{i}"
    raise AssertionError(f"no tag of node {node.port}'s slots {own}")


def stop_gap(nodes, master):
    """Writes to a slot of `master` every 10 ms, stops `master` with SIGTERM; the longest write gap (s), after
    checking that the master stopped cleanly, another node took its slot and no acknowledged write was lost."""
    writer = Writer([("127.0.0.1", n.port) for n in nodes], lambda host, port: client(port), tag=tag_owned_by(master))
    assert writer.owner()[1] == master.port
    stop_while_writing(writer, master)
    new_owner = writer.owner()[1]
    assert new_owner != master.port, writer.summary()
    missing = writer.lost(lambda: client(new_owner))
    assert not missing, f"acknowledged writes lost: {missing[:10]}; {writer.summary()}"
    assert "CLUSTERDOWN" not in writer.error_counts(), f"the cluster went down: {writer.summary()}"
    return writer.gap(), writer.summary()


@pytest.mark.matrix
def test_stop_gap_of_the_servers_own_failover(start_node, workdir, request):
    """Valkey 9 fails over by itself on SIGTERM (`shutdown-on-sigterm failover`): on one cluster, one master stops
    with kvinit's handover (the default) and another with the server's own failover (KVINIT_FAILOVER_TIMEOUT=0 and
    `--shutdown-on-sigterm failover`, as the README says to choose it); both write gaps are printed. kvinit keeps
    its handover on Valkey 9 because its gap is the smaller one (node/failover.c): checked here, so a server that
    gets better says so."""
    if not SERVER.knows(**SHUTDOWN_FAILOVER_FIRST):
        if not (SERVERS_DIR / "valkey-9" / "server").is_file():
            say_loudly(request, f"!!!!! stop gap: sid's valkey-server (valkey-9) is not unpacked in {SERVERS_DIR}: the "
                                f"server's own failover on stop is measured nowhere in this run (`make servers` says why)")
        pytest.skip(f"{SERVER.process_name} {'.'.join(map(str, SERVER.release))} has no shutdown-failover")
    # The masters are the first three in list order (one host): the first stops the server's way, the second kvinit's.
    nodes = [start_node(**SERVER_FAILOVER)] + [start_node() for _ in range(5)]
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    view = roles(nodes[0].port, 3, nodes)
    server_way, kvinit_way = nodes[0], nodes[1]
    for n in (server_way, kvinit_way):
        assert view[f"127.0.0.1:{n.port}"][0] == "master", view
    settled(nodes)

    kvinit_gap, kvinit_summary = stop_gap(nodes, kvinit_way)
    took = re.search(r"took over in (\d+) ms", kvinit_way.stderr)
    assert took, kvinit_way.stderr
    server_gap, server_summary = stop_gap(nodes, server_way)
    assert "failover: asked replica" not in server_way.stderr, server_way.stderr
    assert re.search(r"(?i)failover to replica \S+ on shutdown", server_way.stdout), server_way.stdout[-3000:]
    print(f"\nstop gap {SERVER.name}: kvinit handover {kvinit_gap * 1000:.0f} ms, shutdown failover "
          f"{server_gap * 1000:.0f} ms")
    print(f"kvinit handover: {kvinit_summary}\nshutdown failover: {server_summary}")
    assert kvinit_gap < GRACEFUL_GAP_LIMIT, f"write gap {kvinit_gap:.2f}s; {kvinit_summary}"
    # Measured on Valkey 9.1.2: kvinit 41-87 ms, the server's 485-526 ms (it first waits for its replica's
    # acknowledgement, up to a second, writes paused). The day the server's own is the faster, switch (failover.c).
    assert kvinit_gap < server_gap, (f"the server's own failover ({server_gap * 1000:.0f} ms) beat kvinit's handover "
                                     f"({kvinit_gap * 1000:.0f} ms): use it on this version (node/failover.c)")
