"""README promises that had no test of their own, each checked against kvinit with real servers on 127.0.0.1.

kvinit's own capabilities, the process group killed before a restart, exit 111, the server lookup, the base config
and extra flags, dynamic IPs off, the failover timeout, KVINIT_ROLE, the [node] and [cluster] INI sections, the
rotation file overrides, the announce settings, cluster-init's repairs and refusals, health's password fallback
and the world-readable secret warning.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from conftest import LONG, SHORT, KVINIT_BIN, UNSHARE, read_proc, read_text, wait_kv_file, wait_until
from nodes import (PASSWORD, REDIS_UID, answers, client, cluster_ok, free_port, make_start_node, node_env,
                   own_all_slots, secret_file, server_pid)
from test_cluster import cluster_init, roles, settled, start_node, start_nodes  # noqa: F401 (fixtures)
from test_rotation import AT_ONCE, accepts, write_in_place

# Capability bits (linux/capability.h)
CAP_CHOWN, CAP_DAC_READ_SEARCH, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP = 0, 2, 5, 6, 7, 8


def caps(*bits):
    return f"{sum(1 << b for b in bits):016x}"


def kvinit_caps(pid):
    info = read_proc(pid)
    assert info is not None, f"pid {pid} is gone"
    return {k: info[k] for k in ("CapPrm", "CapEff", "CapInh", "CapBnd", "CapAmb")}


def kvinit_tool(workdir, port, *args, env_extra=None, timeout=SHORT):
    """`kvinit <args>` (health, cli, render) with a node's environment, outside any namespace."""
    env = dict(os.environ)
    env.update({k: v for k, v in node_env(workdir, port, **(env_extra or {})).items() if v is not None})
    for key, value in (env_extra or {}).items():
        if value is None:
            env.pop(key, None)
    return subprocess.run([str(KVINIT_BIN), *args], env=env, capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- kvinit's own capabilities


@pytest.mark.parametrize("user,want", [(None, caps(CAP_SETPCAP)),
                                       ("4321", caps(CAP_SETPCAP, CAP_SETUID, CAP_SETGID, CAP_KILL))],
                         ids=["no-user", "user"])
def test_kvinit_keeps_only_the_capabilities_it_needs(kvinit, probe, launch, workdir, user, want):
    """README: kvinit keeps for itself only CAP_SETPCAP, and with KVINIT_USER also CAP_SETUID, CAP_SETGID and
    CAP_KILL; all other capabilities leave its permitted, effective and bounding sets before the child starts."""
    ready = workdir / "ready"
    options = [f"--user={user}"] if user else []
    p = launch(kvinit.argv([probe, "hold", ready, 30], kvinit=options))
    wait_kv_file(ready, launched=p)
    got = kvinit_caps(p.ns_init())
    assert got == {"CapPrm": want, "CapEff": want, "CapBnd": want, "CapInh": "0" * 16, "CapAmb": "0" * 16}, got


@pytest.mark.parametrize("owner", ["root", "other"])
def test_node_keeps_chown_and_dac_only_as_the_password_file_needs(start_node, workdir, owner):
    """The node role with a password file also keeps CAP_CHOWN (the rotation rewrites the config as the server
    user's), and CAP_DAC_READ_SEARCH only when the file is not root's to read by its mode (a compose secret is the
    host user's file, mode 0400)."""
    secrets = workdir / f"secrets-{owner}"
    secrets.mkdir()
    os.chmod(secrets, 0o755)
    path = secret_file(secrets)
    if owner == "other":
        os.chown(path, 4321, 4321)
    node = start_node(REDIS_PASSWORD_FILE=path)
    server_pid(node)
    want = [CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP] + ([CAP_DAC_READ_SEARCH] if owner == "other"
                                                                          else [])
    got = kvinit_caps(node.ns_init())
    assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == caps(*want), got
    assert got["CapInh"] == got["CapAmb"] == "0" * 16, got


# --------------------------------------------------------------------------- run: restart, exit 111


def test_old_process_group_is_killed_before_a_restart(kvinit, launch, workdir):
    """README: before a restart the old child's process group is killed, so no leftover holds its port. Each run
    leaves a background sleeper in its process group and fails; the next run finds the previous sleeper gone."""
    pids, log = workdir / "pids", workdir / "log"
    script = (
        f'if [ -s {pids} ]; then old=$(tail -n 1 {pids}); '
        f'st=$(sed -n "s/^State:[[:space:]]*\\(.\\).*/\\1/p" /proc/$old/status 2>/dev/null); '
        f'echo "old=$old state=${{st:-gone}}" >> {log}; fi; '
        f'sleep 300 & echo $! >> {pids}; exit 3'
    )
    p = launch(kvinit.argv(["sh", "-c", script], kvinit=["--restart=on-failure", "--max-restarts=2",
                                                          "--backoff-max=200ms"]))
    assert p.wait(LONG) == 3, p.describe()
    lines = read_text(log).splitlines()
    assert len(lines) == 2, f"expected 2 restarts\n{read_text(log)}\n{p.describe()}"
    for line in lines:
        assert line.split("state=")[1] in ("gone", "Z"), f"the previous run's sleeper survived the restart: {line}"


def test_failed_system_call_before_the_child_starts_exits_111(kvinit, probe, run):
    """README: 111 when a system call failed before the child started. With room for no more than the dynamic
    loader's file descriptor, kvinit cannot make its event loop: one line says so, the child never runs."""
    r = run(["prlimit", "--nofile=4", *kvinit.argv([probe, "status"])])
    assert r.returncode == 111, r.describe()
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error kvinit[1]: ") and "Too many open files" in lines[0], \
        r.describe()
    assert "uid=" not in r.stdout, "the child ran"


# --------------------------------------------------------------------------- KVINIT_ROLE


def test_kvinit_role_picks_the_role(kvinit, probe, run, workdir):
    """README: the role may also come from KVINIT_ROLE."""
    r = run([kvinit.path, "--", probe, "exit", "7"], env={"KVINIT_ROLE": "run"})
    assert r.returncode == 7, r.describe()
    port = free_port()
    r = kvinit_tool(workdir, port, env_extra={"KVINIT_ROLE": "render"})
    assert r.returncode == 0, r.stderr
    assert f"port {port}\n" in r.stdout and 'masterauth "<redacted>"' in r.stdout, r.stdout
    r = kvinit_tool(workdir, port, env_extra={"KVINIT_ROLE": "no-such-role"})
    assert r.returncode == 100 and "no-such-role" in r.stderr, r.stderr


# --------------------------------------------------------------------------- the server binary


def proc_named(launched, name):
    """Host pid of the live process called `name` (its comm) below the node's namespace."""
    from conftest import descendants

    def find():
        for info in descendants(launched.ns_init()):
            if info.get("name") == name and info.get("state") not in ("Z", "X"):
                return info["pid"]
        return None

    return wait_until(find, LONG, f"a process named {name}", launched=launched)


def started_from(node):
    """The server path of kvinit's "starting Redis 7.0.15 (PATH) on port ..." line (PATH quoted or not)."""
    m = re.search(r"starting \S+ \S+ \('?([^')]+)'?\) on port", node.stderr)
    return m and m.group(1)


def server_link(workdir, name):
    """A directory holding only `name`, a link to Debian's redis-server (which picks its mode by its file name)."""
    d = workdir / f"bin-{name}"
    d.mkdir()
    os.chmod(d, 0o755)
    os.symlink("/usr/bin/redis-server", d / name)
    return d / name


def test_redis_server_bin_names_the_server(start_node, workdir):
    """README: REDIS_SERVER_BIN is the server binary."""
    path = server_link(workdir, "kv-test-server")
    node = start_node(REDIS_SERVER_BIN=path)
    proc_named(node, "kv-test-server")
    assert started_from(node) == str(path), node.stderr


@pytest.mark.parametrize("how", ["REDIS_SERVER_BIN", "PATH"])
def test_missing_server_exits_127(launch, workdir, how):
    """README: a server that is not there is exit 127, with one line that says what to set, nothing written."""
    port = free_port()
    if how == "REDIS_SERVER_BIN":
        extra = {"REDIS_SERVER_BIN": "/nonexistent/kv-test-server"}
    else:  # a PATH with unshare (the test's launcher) and no server
        bindir = workdir / "path-without-a-server"
        bindir.mkdir()
        os.symlink("/usr/bin/unshare", bindir / "unshare")
        extra = {"PATH": str(bindir)}
    p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, **extra))
    assert p.wait(SHORT) == 127, p.describe()
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "REDIS_SERVER_BIN" in lines[0], p.stderr
    assert not (workdir / f"run-{port}").exists()


def test_valkey_server_is_looked_up_first(start_node, workdir):
    """README: the server is valkey-server, else redis-server, on PATH. A valkey-server at the end of PATH wins
    over the redis-server found earlier."""
    valkey = server_link(workdir, "valkey-server")
    node = start_node(PATH=f"{os.environ.get('PATH', '/usr/bin:/bin')}:{valkey.parent}")
    proc_named(node, "valkey-server")
    assert started_from(node) == str(valkey), node.stderr


# --------------------------------------------------------------------------- the config: base file, extra flags


def test_base_config_is_included_first_and_extra_flags_come_last(start_node, workdir):
    """README: REDIS_BASE_CONFIG is included first, kvinit's settings come after it; REDIS_EXTRA_FLAGS adds
    directives. The base file's own port loses to kvinit's; its hz stays; extra flags win over both."""
    base = workdir / "base.conf"
    base.write_text("hz 33\nmaxmemory-policy allkeys-lfu\nport 1\nlatency-tracking no\n")
    os.chmod(base, 0o644)
    node = start_node(REDIS_BASE_CONFIG=base, REDIS_EXTRA_FLAGS="--maxmemory 100mb --maxmemory-policy allkeys-lru")
    c = client(node.port)
    got = {k: c.config_get(k)[k] for k in ("hz", "maxmemory", "maxmemory-policy", "port", "latency-tracking")}
    assert got == {"hz": "33", "maxmemory": str(100 * 1024 * 1024), "maxmemory-policy": "allkeys-lru",
                   "port": str(node.port), "latency-tracking": "no"}, got


def test_without_base_config_and_extra_flags_the_server_has_its_defaults(start_node):
    """Control for the test above: the same values are not the server's defaults."""
    c = client(start_node().port)
    got = {k: c.config_get(k)[k] for k in ("hz", "maxmemory", "maxmemory-policy", "latency-tracking")}
    assert got == {"hz": "10", "maxmemory": "0", "maxmemory-policy": "noeviction", "latency-tracking": "yes"}, got


# --------------------------------------------------------------------------- the announced address


@pytest.mark.parametrize("dynamic,want", [("yes", "127.0.0.2"), ("no", "")])
def test_dynamic_ips(start_node, dynamic, want):
    """README: without announce-ip, dynamic IPs announce POD_IP; REDIS_CLUSTER_DYNAMIC_IPS=no announces nothing (the
    server's own view of its address)."""
    node = start_node(REDIS_CLUSTER_ANNOUNCE_IP=None, POD_IP="127.0.0.2", REDIS_CLUSTER_DYNAMIC_IPS=dynamic)
    assert client(node.port).config_get("cluster-announce-ip")["cluster-announce-ip"] == want


def test_announce_port_bus_port_and_hostname(start_node, workdir):
    """README: announce-port and announce-bus-port are what the cluster and clients are told; announce-hostname with
    preferred-endpoint-type=hostname is what a client is sent."""
    port = free_port()
    node = start_node(port=port, REDIS_CLUSTER_ANNOUNCE_PORT=port + 1, REDIS_CLUSTER_ANNOUNCE_BUS_PORT=port + 2,
                      REDIS_CLUSTER_ANNOUNCE_HOSTNAME="node-a.kvinit.test",
                      REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE="hostname")
    own_all_slots(port)
    r = kvinit_tool(workdir, port, "cli", "cluster", "nodes")
    myself = [line for line in r.stdout.splitlines() if "myself" in line]
    assert len(myself) == 1, r.stdout + r.stderr
    assert myself[0].split()[1] == f"127.0.0.1:{port + 1}@{port + 2},node-a.kvinit.test", myself[0]
    r = kvinit_tool(workdir, port, "cli", "cluster", "slots")
    assert r.stdout.split()[:4] == ["0", "16383", "node-a.kvinit.test", str(port + 1)], r.stdout


# --------------------------------------------------------------------------- failover on stop: its timeout


def master_with_replica(nodes):
    """(master node, its replica node) of a formed, settled cluster."""
    by_port = {n.port: n for n in nodes}
    for n in nodes:
        info = client(n.port).info("replication")
        if info["role"] == "slave":
            return by_port[int(info["master_port"])], n
    raise AssertionError("no replica")


def test_failover_timeout_0_stops_a_master_without_a_handover(start_nodes, workdir):
    """README: KVINIT_FAILOVER_TIMEOUT=0 means no handover: the master stops at once and its replica is still a
    replica when it is gone (the cluster would promote it only after the node timeout)."""
    nodes = start_nodes(6, KVINIT_FAILOVER_TIMEOUT="0")
    assert cluster_init(workdir, nodes).returncode == 0
    settled(nodes)
    master, replica = master_with_replica(nodes)
    t0 = time.monotonic()
    master.send(signal.SIGTERM)
    assert master.wait(SHORT) == 0, master.describe()
    stopped = time.monotonic() - t0
    assert client(replica.port).info("replication")["role"] == "slave", "the replica took over"
    assert "failover:" not in master.stderr, master.stderr
    assert stopped < 2.0, f"the master took {stopped:.2f} s to stop with no handover to wait for"


def test_failover_waits_no_longer_than_the_grace_period_allows(start_nodes, workdir):
    """README: the master waits for its replica KVINIT_FAILOVER_TIMEOUT, and never past the grace period (it leaves
    the server a second of it to stop). With the two other masters frozen, the replica can win no election: a 60 s
    failover timeout still ends 1 s before the 3 s grace runs out."""
    nodes = start_nodes(6, KVINIT_STOP_GRACE="3s", KVINIT_FAILOVER_TIMEOUT="60s")
    assert cluster_init(workdir, nodes).returncode == 0
    settled(nodes)
    master, replica = master_with_replica(nodes)
    others = [n for n in nodes if n not in (master, replica) and client(n.port).info("replication")["role"] ==
              "master"]
    assert len(others) == 2
    for n in others:
        os.kill(server_pid(n), signal.SIGSTOP)  # the namespace's SIGKILL at teardown ends them
    t0 = time.monotonic()
    master.send(signal.SIGTERM)
    master.wait(6.0)
    stopped = time.monotonic() - t0
    waited = re.search(r"did not take over within (\d+) ms, stopping anyway", master.stderr)
    assert waited, master.describe()
    print(f"\nfailover timeout 60 s, grace 3 s: the master gave up on the handover after {waited.group(1)} ms, kvinit "
          f"exited {stopped:.2f} s after SIGTERM")
    assert 1500 <= int(waited.group(1)) <= 2100, f"waited {waited.group(1)} ms, the grace leaves 2000"
    assert stopped < 3.0 + 1.5, f"kvinit exited {stopped:.2f} s after SIGTERM, the grace was 3 s"


# --------------------------------------------------------------------------- the INI file's [node] and [cluster]


def test_ini_node_section_configures_the_node(launch, workdir):
    """README: every option can be a key in its section of the INI file. A node configured by [node] and [kvinit]
    only (no REDIS_* variable but the password file), with one key also in the environment: the environment wins."""
    port = free_port()
    ini = workdir / "node.ini"
    ini.write_text(f"[kvinit]\nrendered-config = {workdir}/run-ini/redis.conf\n\n"
                   f"[node]\nport = {port}\nbind = 127.0.0.1\nannounce-ip = 127.0.0.1\ndata-dir = {workdir}/data-ini\n"
                   f"base-config = /nonexistent/redis.conf\naof = no\nnode-timeout = 7000\n"
                   f"extra-flags = --hz 44\n")
    env = {k: None for k in node_env(workdir, port)}
    env.update(REDIS_PASSWORD_FILE=str(secret_file(workdir)), KVINIT_CONFIG=str(ini),
               REDIS_CLUSTER_NODE_TIMEOUT="6000")
    node = launch([KVINIT_BIN, "node"], env=env)
    wait_until(lambda: answers(port), LONG, f"the node on {port} (from [node] port) to answer", launched=node)
    c = client(port)
    got = {k: c.config_get(k)[k] for k in ("hz", "appendonly", "cluster-node-timeout", "cluster-announce-ip")}
    assert got == {"hz": "44", "appendonly": "no", "cluster-node-timeout": "6000",
                   "cluster-announce-ip": "127.0.0.1"}, got
    assert (workdir / "run-ini" / "redis.conf").exists() and (workdir / "data-ini").is_dir()


def test_ini_cluster_section_configures_cluster_init(start_nodes, workdir):
    """[cluster] nodes and replicas from the INI file: three nodes with replicas = 0 make three masters (the default
    of 1 replica would make one master and two replicas)."""
    nodes = start_nodes(3)
    ini = workdir / "cluster.ini"
    ini.write_text("[cluster]\nnodes = " + ", ".join(f"127.0.0.1:{n.port}" for n in nodes) +
                   "\nreplicas = 0\ninit-timeout = 60s\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVINIT_", "REDIS_"))}
    env.update(REDIS_PASSWORD_FILE=str(secret_file(workdir, name="init_password")), KVINIT_CONFIG=str(ini))
    r = subprocess.run([str(KVINIT_BIN), "cluster-init"], env=env, capture_output=True, text=True, timeout=LONG)
    assert r.returncode == 0, r.stdout + r.stderr
    view = roles(nodes[0].port)
    assert sorted(v[0] for v in view.values()) == ["master"] * 3, view


def test_redis_cluster_nodes_is_an_alias_of_redis_nodes(start_nodes, workdir):
    nodes = start_nodes(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVINIT_", "REDIS_"))}
    env.update(REDIS_PASSWORD_FILE=str(secret_file(workdir, name="init_password")), REDIS_CLUSTER_REPLICAS="0",
               REDIS_CLUSTER_NODES=" ".join(f"127.0.0.1:{n.port}" for n in nodes), KVINIT_INIT_TIMEOUT="60s")
    r = subprocess.run([str(KVINIT_BIN), "cluster-init"], env=env, capture_output=True, text=True, timeout=LONG)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(cluster_ok(client(n.port)) for n in nodes)


# --------------------------------------------------------------------------- the password files


def test_next_and_previous_file_overrides(start_node, workdir):
    """README: REDIS_PASSWORD_NEXT_FILE and REDIS_PASSWORD_PREVIOUS_FILE name the rotation files (default: the
    password file's path + _next, _previous). Named elsewhere, they are read and watched, and the files at the
    default paths are not."""
    current = workdir / "current"
    elsewhere = workdir / "elsewhere"
    current.mkdir()
    elsewhere.mkdir()
    path = secret_file(current)
    decoy_next = secret_file(current, value="decoy next", name="redis_password_next")
    secret_file(current, value="decoy previous", name="redis_password_previous")
    next_file = secret_file(elsewhere, value="the next one", name="upcoming")
    previous_file = secret_file(elsewhere, value="the previous one", name="retired")
    node = start_node(REDIS_PASSWORD_FILE=path, REDIS_PASSWORD_NEXT_FILE=next_file,
                      REDIS_PASSWORD_PREVIOUS_FILE=previous_file, REDIS_CLUSTER_ENABLED="no")
    assert {pw: accepts(node.port, pw) for pw in (PASSWORD, "the next one", "the previous one", "decoy next",
                                                  "decoy previous")} == \
        {PASSWORD: True, "the next one": True, "the previous one": True, "decoy next": False,
         "decoy previous": False}
    written = write_in_place(next_file, "written next")
    wait_until(lambda: accepts(node.port, "written next"), SHORT, "the node to accept the new next password",
               launched=node)
    took = time.monotonic() - written
    assert took < AT_ONCE, f"the named next file was read {took:.2f} s after the write"
    write_in_place(decoy_next, "written decoy")
    time.sleep(1.0)  # four times what a change takes to apply
    assert not accepts(node.port, "written decoy"), "the default _next path was read although another is named"


def test_health_tries_the_current_then_the_next_then_the_previous_password(start_node, workdir):
    """README: kvinit health tries the current password, then the next, then the previous one, so probes pass
    throughout a rotation (a probe's files may already hold passwords the server does not accept yet)."""
    node = start_node(REDIS_CLUSTER_ENABLED="no")
    probes = workdir / "probe-secrets"
    probes.mkdir()

    def probe_with(current, upcoming=None, previous=None):
        files = {"REDIS_PASSWORD_FILE": secret_file(probes, current, name="cur"),
                 "REDIS_PASSWORD_NEXT_FILE": secret_file(probes, upcoming, name="nxt") if upcoming else
                 probes / "no-next",
                 "REDIS_PASSWORD_PREVIOUS_FILE": secret_file(probes, previous, name="prv") if previous else
                 probes / "no-previous",
                 "REDIS_CLUSTER_ENABLED": "no"}
        r = kvinit_tool(workdir, node.port, "health", "--live", env_extra=files)
        return r.returncode, r.stdout.strip()

    assert probe_with(PASSWORD)[0] == 0
    assert probe_with("wrong", upcoming=PASSWORD)[0] == 0, "the next password was not tried"
    assert probe_with("wrong", upcoming="also wrong", previous=PASSWORD)[0] == 0, "the previous one was not tried"
    code, line = probe_with("wrong", upcoming="also wrong", previous="still wrong")
    assert code == 1 and line.startswith("not live: ") and "WRONGPASS" in line, line


@pytest.mark.parametrize("mode,warned", [(0o644, True), (0o604, True), (0o400, False), (0o440, False)],
                         ids=["0644", "0604", "0400", "0440"])
def test_world_readable_password_file_gets_a_warning(workdir, mode, warned):
    """README: a password file readable by every user gets a warning (render reads it as node does)."""
    path = secret_file(workdir, mode=mode, name=f"pw-{mode:o}")
    r = kvinit_tool(workdir, free_port(), "render", env_extra={"REDIS_PASSWORD_FILE": path})
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warn ") and "readable by every user" in line]
    assert bool(warnings) == warned, r.stderr
    if warned:
        assert f"'{path}'" in warnings[0], warnings


# --------------------------------------------------------------------------- cluster-init: repairs and refusals

PLAN = [(0, 5460), (5461, 10922), (10923, 16383)]  # redis-cli's ranges for 3 masters, the first 3 of REDIS_NODES


def meet(nodes, a, b):
    client(nodes[a].port).execute_command("CLUSTER MEET", "127.0.0.1", nodes[b].port)


def timeouts(nodes):
    return [int(client(n.port).config_get("cluster-node-timeout")["cluster-node-timeout"]) for n in nodes]


def assert_formed_as_planned(nodes, r):
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: all(cluster_ok(client(n.port)) for n in nodes), LONG, "cluster_state:ok on every node")
    view = roles(nodes[0].port, 3, nodes)
    for (first, last), n in zip(PLAN, nodes[:3]):
        assert view[f"127.0.0.1:{n.port}"][:1] == ("master",), view
    assert sorted(v[2] for v in view.values() if v[0] == "master") == [5461, 5461, 5462], view
    assert sorted(v[1] for v in view.values() if v[0] == "replica") == sorted(f"127.0.0.1:{n.port}"
                                                                              for n in nodes[:3]), view
    assert timeouts(nodes) == [5000] * 6, "cluster-node-timeout is not the configured one everywhere"


def test_half_formed_cluster_is_finished(start_nodes, workdir):
    """README: a half-formed cluster (an earlier init died midway) is finished by the same plan. Here the init got
    as far as two masters' slots and one handshake, with the formation's 500 ms node timeout set everywhere."""
    nodes = start_nodes(6)
    for (first, last), n in zip(PLAN[:2], nodes[:2]):
        client(n.port).execute_command("CLUSTER ADDSLOTSRANGE", first, last)
    meet(nodes, 0, 1)
    for n in nodes:
        client(n.port).config_set("cluster-node-timeout", 500)
    wait_until(lambda: all(int(client(n.port).execute_command("CLUSTER INFO")["cluster_known_nodes"]) == 2
                           for n in nodes[:2]), LONG, "the two masters' handshake")
    assert_formed_as_planned(nodes, cluster_init(workdir, nodes))


@pytest.mark.parametrize("timeout_left", [None, 500], ids=["timeout-kept", "timeout-500ms-left"])
def test_init_that_died_before_the_replicas_is_finished(start_nodes, workdir, timeout_left):
    """The other half-formed state: every slot handed out and every node met, but no replica attached yet. The
    re-run attaches the replicas by the same plan and, where the init died while the masters turned ok and left
    the formation's 500 ms node timeout, puts the configured timeout back (README: "Re-running cluster-init puts
    back the configured timeout on a node an interrupted init left at 500 ms")."""
    nodes = start_nodes(6)
    if timeout_left:
        for n in nodes:
            client(n.port).config_set("cluster-node-timeout", timeout_left)
    for (first, last), n in zip(PLAN, nodes[:3]):
        client(n.port).execute_command("CLUSTER ADDSLOTSRANGE", first, last)
    for i in range(1, 6):
        meet(nodes, 0, i)
    wait_until(lambda: all(int(client(n.port).execute_command("CLUSTER INFO")["cluster_known_nodes"]) == 6
                           for n in nodes), LONG, "every node to know the other five")
    assert_formed_as_planned(nodes, cluster_init(workdir, nodes))


def test_masters_with_their_slots_that_never_met_are_finished(start_nodes, workdir):
    """An init that died after handing the planned masters their slots (every ADDSLOTSRANGE goes out before any
    CLUSTER MEET) and before their handshakes leaves masters that serve the plan's slots and know no one: the
    re-run finishes the cluster by the same plan instead of refusing them as two different clusters."""
    nodes = start_nodes(6)
    for (first, last), n in zip(PLAN, nodes[:3]):
        client(n.port).execute_command("CLUSTER ADDSLOTSRANGE", first, last)
    assert_formed_as_planned(nodes, cluster_init(workdir, nodes))


def test_nodes_of_two_clusters_are_refused(start_nodes, workdir):
    """README: nodes of two clusters are refused, naming them, and nothing changes."""
    nodes = start_nodes(6)
    for group in (nodes[:3], nodes[3:]):
        r = cluster_init(workdir, group, REDIS_CLUSTER_REPLICAS=0)
        assert r.returncode == 0, r.stdout + r.stderr
    before = [client(n.port).execute_command("CLUSTER INFO")["cluster_known_nodes"] for n in nodes]
    r = cluster_init(workdir, nodes, REDIS_CLUSTER_REPLICAS=0)
    assert r.returncode == 1, r.stdout + r.stderr
    line = [line for line in r.stderr.splitlines() if "belong to two different clusters" in line]
    assert len(line) == 1, r.stderr
    assert re.search(r"127\.0\.0\.1:\d+ and 127\.0\.0\.1:\d+ belong to two different clusters", line[0]), line
    assert [client(n.port).execute_command("CLUSTER INFO")["cluster_known_nodes"] for n in nodes] == before
    assert all(cluster_ok(client(n.port)) for n in nodes)
