"""A master that crashes again and again (issue 12): kill -9 of its server in a loop, on a 6-node loopback cluster
under a client that keeps writing to that master's slots. kvinit restarts a crashed server at once, faster than the
cluster's failure detection, and then ever more slowly (1 s, 2 s, 4 s, 8 s): the master kept coming back as the
owner of its slots, which took no writes for as long as it was down. Now a master restarted after a second crash
within KVINIT_BACKOFF_RESET hands its slots to its best replica as soon as it answers (the handover of a stop), so
it goes on crashing as a replica; a first crash keeps the fast restart (KVINIT_CRASH_HANDOVER=1: it hands them
over after every crash).
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import LONG, KVINIT_BIN, wait_until
from cluster_writer import Writer
from nodes import answers, client, make_start_node, secret_file, server_pid

KILLS = 5
# Seconds a restarted server answers before the next kill: past the 2 s a restarted master takes no writes (Redis's
# CLUSTER_WRITABLE_DELAY), so each kill's gap is its own.
UP_BETWEEN = 3.0


@pytest.fixture
def start_node(launch, workdir):
    return make_start_node(launch, workdir)


def form(workdir, nodes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVINIT_", "REDIS_"))}
    env.update(REDIS_PASSWORD_FILE=str(secret_file(workdir, name="init_password")), REDIS_CLUSTER_REPLICAS="1",
               REDIS_NODES=",".join(f"127.0.0.1:{n.port}" for n in nodes), KVINIT_INIT_TIMEOUT="60s")
    r = subprocess.run([str(KVINIT_BIN), "cluster-init"], env=env, capture_output=True, text=True, timeout=LONG + 30)
    assert r.returncode == 0, r.stdout + r.stderr


def role(port):
    try:
        return client(port).info("replication")["role"]
    except Exception:  # noqa: BLE001 (down, loading)
        return None


def replicas_known(port):
    return sum("slave" in info["flags"] for info in client(port).execute_command("CLUSTER NODES").values())


def replicas_linked(nodes):
    for n in nodes:
        info = client(n.port).info("replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            return False
    return True


def kill_loop(start_node, workdir, **extra):
    """Five kill -9 of one master's server under the writer. Returns (writer, owner node, [(kill time, role)])."""
    nodes = [start_node(**extra) for _ in range(6)]
    form(workdir, nodes)
    wait_until(lambda: replicas_linked(nodes), LONG, "every replica's link to be up")
    # who replicates whom travels by gossip for a second or two more: a master that still sees a replica as a
    # master refuses it its vote ("it is a master node"), and a takeover needs a majority
    wait_until(lambda: all(replicas_known(n.port) == 3 for n in nodes), LONG, "every node to know the 3 replicas")
    writer = Writer([("127.0.0.1", n.port) for n in nodes], lambda host, port: client(port))
    owner_port = writer.owner()[1]
    owner = next(n for n in nodes if n.port == owner_port)
    writer.start()
    wait_until(lambda: len(writer.acked) > 50, LONG, "the writer to get going")
    kills = []
    for k in range(KILLS):
        pid = server_pid(owner)
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: server_pid(owner) != pid and answers(owner.port), LONG, f"the server back after kill {k + 1}",
                   launched=owner)
        time.sleep(UP_BETWEEN)
        kills.append((t, role(owner.port)))
    time.sleep(1)
    writer.stop.set()
    writer.join(LONG)
    if os.environ.get("KVINIT_TEST_VERBOSE"):
        for n in nodes:
            print(f"--- node {n.port}")
            print("\n".join(line for line in n.stdout.splitlines() if "ailover" in line or "auth" in line.lower()
                            or "epoch" in line.lower() or "Cluster state" in line))
    return writer, owner, kills


def gaps_after_kills(writer, kills):
    """The write gap each kill caused: the longest gap that starts between it and the next kill."""
    out = []
    bounds = [t for t, _ in kills] + [float("inf")]
    pairs = list(zip(writer.acked, writer.acked[1:]))
    for k in range(len(kills)):
        # the last write acknowledged before the kill starts its gap
        inside = [b - a for (a, _), (b, _) in pairs if bounds[k] - 0.5 <= a < bounds[k + 1] - 0.5]
        out.append(max(inside, default=0.0))
    return out


def report(title, writer, owner, kills):
    gap = writer.gap()
    new_owner = writer.owner()[1]
    missing = writer.lost(lambda: client(new_owner))
    per_kill = gaps_after_kills(writer, kills)
    print(f"\n{title}: {KILLS} kill -9 of a master's server, {UP_BETWEEN:.0f} s after each restart: longest write "
          f"gap on its slots {gap:.2f} s (per kill: {', '.join(f'{g:.2f}' for g in per_kill)} s), "
          f"{len(missing)} acknowledged writes lost; its role after each restart: "
          f"{', '.join(str(r) for _, r in kills)}; {writer.summary()}")
    if os.environ.get("KVINIT_TEST_VERBOSE"):
        print(owner.stderr)
        print(owner.stdout[-15000:])
    return gap, per_kill, missing


def test_a_crash_looping_master_hands_its_slots_over(start_node, workdir):
    """The default: the first crash keeps the fast restart and the slots; from the second crash in a row the master
    hands them over as soon as it answers."""
    writer, owner, kills = kill_loop(start_node, workdir)
    gap, per_kill, missing = report("KVINIT_CRASH_HANDOVER=2 (default)", writer, owner, kills)
    assert not missing, f"acknowledged writes lost: {missing[:10]}"
    assert kills[0][1] == "master", "a first crash keeps the fast restart, and the slots"
    assert "restarting now (restart 1 of" in owner.stderr, owner.stderr
    assert [r for _, r in kills[1:]] == ["slave"] * (KILLS - 1), kills
    assert "crashed again" in owner.stderr, owner.stderr
    # The restart that hands the slots over comes at once: until the server answers, its slots take no writes.
    assert "restarting now (restart 2 of" in owner.stderr, owner.stderr
    # The first crash costs what it did: its restart, and the 2 s a restarted master takes no writes (Redis's
    # CLUSTER_WRITABLE_DELAY, a constant). From the second on, the crash loop costs a replica.
    assert max(per_kill[1:]) < 2.0, f"the crash loop's longest write gap {max(per_kill[1:]):.2f} s"


def test_a_master_hands_its_slots_over_after_every_crash_on_request(start_node, workdir):
    """KVINIT_CRASH_HANDOVER=1: the replica takes over after the first crash already, sooner than Redis lets a
    restarted master take writes again."""
    writer, owner, kills = kill_loop(start_node, workdir, KVINIT_CRASH_HANDOVER=1)
    gap, per_kill, missing = report("KVINIT_CRASH_HANDOVER=1", writer, owner, kills)
    assert not missing, f"acknowledged writes lost: {missing[:10]}"
    assert [r for _, r in kills] == ["slave"] * KILLS, kills
    assert gap < 2.0, f"longest write gap {gap:.2f} s"
