"""`make up TLS=1` on the layouts without static IPs (README.md, "TLS with compose"): cache-cluster and announce.

Their certificates are made before the containers start, so they name the nodes (service name, hostname, announced
hostname), never the addresses Docker hands out: cluster-init checks each node against the name it was given and a
node's kvinit checks a peer against the hostname the peer announces. Each layout is brought up with TLS=1 (one stack a
layout, torn down after), and then every node, from inside its container: says its cluster is ok through `kvinit
health --ready` (TLS to its TLS port), sees every other node connected over the TLS cluster bus, and gives a
plain-text client on its port no answer. The main layout's TLS run, with host clients and rotations, is test_tls.py.
"""

import socket

import pytest

from conftest import container_ids, inspect, sh

NODES = {"cache-cluster": 6, "announce": 4}


def info_ip(name):
    """The container's address on its layout's network (the test talks to the project's own containers only)."""
    networks = inspect(name)["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n["IPAddress"])


def plain_text_answer(ip, port):
    """What a plain-text PING gets: an open plain port answers (-NOAUTH ...), a TLS port closes without a word."""
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        try:
            return s.recv(100)
        except (ConnectionResetError, socket.timeout):
            return b""


@pytest.mark.parametrize("stack", ["cache-cluster+tls", "announce+tls"], indirect=True)
def test_layout_forms_and_serves_tls_only(stack):
    layout, elapsed, _ = stack
    nodes = []
    for cid in container_ids(layout):
        info = inspect(cid)
        name = info["Name"].lstrip("/")
        if name.rsplit("_", 1)[0].endswith("-init") or "exporter" in name:  # the one-shot init, the exporter
            continue
        nodes.append((name, dict(e.split("=", 1) for e in info["Config"]["Env"])))
    assert len(nodes) == NODES[layout], nodes
    for name, env in nodes:
        assert env.get("REDIS_TLS_ENABLED") == "yes", f"{name}: the TLS override was not applied"
        sh("docker", "exec", name, "kvinit", "health", "--ready")
        view = sh("docker", "exec", name, "kvinit", "cli", "cluster", "nodes").stdout.splitlines()
        assert len(view) == NODES[layout], (name, view)
        for line in view:
            fields = line.split()
            assert fields[7] == "connected" and "fail" not in fields[2], (name, line)
        rendered = sh("docker", "exec", name, "kvinit", "render").stdout.splitlines()
        port = next(line.split()[1] for line in rendered if line.startswith("tls-port "))
        assert "port 0" in rendered, f"{name}: the plain port is not off"
        assert plain_text_answer(info_ip(name), int(port)) == b"", f"{name}: a plain-text client got an answer"
    print(f"\nmake up TLS=1 LAYOUT={layout}: {elapsed:.1f} s to cluster ok; {len(nodes)} nodes TLS only, every "
          "peer connected over the TLS bus")
