"""A node whose address changes while it runs (issue 12): the issue's `docker network disconnect; sleep; connect`
in network namespaces of the test's own. Five nodes share one namespace (one "host", 10.77.0.1); the sixth runs in
another, joined by a veth pair, and announces the address it finds on its interface (dynamic IPs, no announce
address given). Its link goes down until the others flag it fail, then comes back with a new address: kvinit sees
the change on its netlink subscription, announces the new address and has its peers meet it there.
"""

import os
import time

from conftest import LONG, wait_until
from netns import form_in, netns, start_node_in, veth  # noqa: F401 (netns is a fixture)
from nodes import client, health

TIMEOUT = {"REDIS_CLUSTER_NODE_TIMEOUT": 1000}


def view_of(port, node_id):
    """(address, flags) of node_id as the node on port sees it, or None."""
    for addr, info in client(port).execute_command("CLUSTER NODES").items():
        if info["node_id"] == node_id:
            return addr, info["flags"]
    return None


def context_switches(pid):
    with open(f"/proc/{pid}/status") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")))


def test_a_node_whose_address_changes_is_back_in_every_view(netns, launch, workdir):
    a, b = netns("peers"), netns("moved")
    _, b_end = veth(a, "10.77.0.1", b, "10.77.0.2")
    peers = [start_node_in(launch, workdir, a, REDIS_CLUSTER_ANNOUNCE_IP="10.77.0.1", **TIMEOUT) for _ in range(5)]
    # no secret poll: an idle kvinit is then never woken up, the address watch included
    dynamic = {"REDIS_CLUSTER_ANNOUNCE_IP": None, "KVINIT_LOG_LEVEL": "debug", "KVINIT_SECRET_POLL": "0", **TIMEOUT}
    moved = start_node_in(launch, workdir, b, **dynamic)
    assert f"announcing '10.77.0.2'" in moved.stderr, moved.stderr
    form_in(a, workdir, [f"10.77.0.1:{n.port}" for n in peers] + [f"10.77.0.2:{moved.port}"], 1)
    moved_id = b.call(lambda: client(moved.port).execute_command("CLUSTER MYID").decode())
    wait_until(lambda: health(workdir, moved, "--ready", timeout=LONG)[0] == 0 and
               all(health(workdir, p, "--ready", timeout=LONG)[0] == 0 for p in peers), LONG, "every node to be ready",
               launched=moved)

    # disconnect for 3 node timeouts (the 15 s with its 5 s), long enough for every peer to flag it fail
    cut = time.monotonic()
    b.ip("link", "set", b_end, "down")
    wait_until(lambda: all("fail" in (a.call(view_of, p.port, moved_id) or ("", ""))[1] for p in peers), LONG,
               "every peer to flag it fail")
    time.sleep(max(0.0, cut + 3.0 - time.monotonic()))
    # connect, with a new address
    b.ip("addr", "del", "10.77.0.2/24", "dev", b_end)
    b.ip("addr", "add", "10.77.0.3/24", "dev", b_end)
    t0 = time.monotonic()
    b.ip("link", "set", b_end, "up")

    def back_everywhere():
        for p in peers:
            addr, flags = a.call(view_of, p.port, moved_id) or ("", "")
            if addr != f"10.77.0.3:{moved.port}" or "fail" in flags or "fail?" in flags:
                return False
        return True

    wait_until(back_everywhere, LONG, "every peer to see the node at its new address, without fail flags",
               interval=0.05, launched=moved)
    took = time.monotonic() - t0
    if os.environ.get("KVINIT_TEST_VERBOSE"):
        print(moved.stderr[-3000:], moved.stdout[-3000:])
        for p in peers:
            print("\n".join(line for line in p.stdout.splitlines() if moved_id[:8] in line or "FAIL" in line))
    print(f"\nnode moved from 10.77.0.2 to 10.77.0.3: back in all 5 peers' views, no fail flag, {took:.2f} s after "
          f"its link came back")
    assert f"this node's address changed from '10.77.0.2' to '10.77.0.3'" in moved.stderr, moved.stderr
    assert took < 3.0, f"{took:.2f} s"
    wait_until(lambda: health(workdir, moved, "--ready", timeout=LONG)[0] == 0, LONG, "the node to be ready again",
               launched=moved)
    # a restart of the server (a crash) announces the new address too: the rendered config follows
    conf = (workdir / f"run-{moved.port}" / "redis.conf").read_text()
    assert "cluster-announce-ip 10.77.0.3\n" in conf, conf
    # idle, kvinit is not woken up: the watch is a netlink subscription, not a poll
    wait_until(lambda: "new address done" in moved.stderr, LONG, "the new-address helper to end", launched=moved)
    time.sleep(2)  # the link's IPv6 address settles (duplicate address detection): events, one look each
    pid = moved.ns_init()
    before = context_switches(pid)
    time.sleep(2)
    assert context_switches(pid) == before, "kvinit woke up while nothing happened"


def test_an_address_of_the_user_is_left_alone(netns, launch, workdir):
    """POD_IP (or REDIS_CLUSTER_ANNOUNCE_IP) is the user's word: a change on the interface changes nothing, and the
    probe says why the node is not ready."""
    b = netns("pod")
    b_end = veth(netns("other"), "10.77.0.1", b, "10.77.0.2")[1]
    node = start_node_in(launch, workdir, b, REDIS_CLUSTER_ANNOUNCE_IP=None, POD_IP="10.77.0.2")
    b.call(lambda: client(node.port).execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383))
    wait_until(lambda: health(workdir, node, "--ready", timeout=LONG)[0] == 0, LONG, "the node to be ready", launched=node)
    b.ip("addr", "del", "10.77.0.2/24", "dev", b_end)
    b.ip("addr", "add", "10.77.0.3/24", "dev", b_end)
    code, line = wait_until(lambda: (lambda r: r if r[0] == 1 else None)(health(workdir, node, "--ready", timeout=LONG)), LONG,
                            "the probe to say not ready", launched=node)
    print(f"\n{line}")
    assert line == f"not ready: 127.0.0.1:{node.port} announces '10.77.0.2', which is not an address of this host"
    time.sleep(0.5)
    assert b.call(lambda: client(node.port).config_get("cluster-announce-ip"))["cluster-announce-ip"] == "10.77.0.2"
    assert "address changed" not in node.stderr
