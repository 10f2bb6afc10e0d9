"""No silent data loss on a volume (issue 12).

A Bitnami redis-cluster user mounts the volume at /bitnami/redis/data; the same compose file with only the image
changed to kvinit used to write /data, in the container, and lose every key at `down`/`up`. Here a "container" is a
mount namespace with a root filesystem of its own (a tmpfs, gone with it: the container's writable layer), the
host's /usr, /etc, /tmp ... bound in, and the volume (a directory of the test's) mounted at /bitnami/redis/data.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from conftest import LONG, SHORT, KVINIT_BIN, wait_until
from nodes import PASSWORD, REDIS_UID, answers, client, free_port, make_start_node, node_env, own_all_slots, secret_file

BITNAMI_UID = 1001

# The container: a fresh tmpfs root, the host's system directories, the volume at its Bitnami path.
CONTAINER = r"""
set -e
root=$1 volume=$2
shift 2
mount -t tmpfs tmpfs "$root"
for d in usr etc tmp run dev var proc; do mkdir "$root/$d"; done
for d in usr etc tmp run dev var; do mount --rbind "/$d" "$root/$d"; done
for l in bin lib lib32 lib64 sbin; do if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$root/$l"; fi; done
if [ -n "$volume" ]; then
    mkdir -p "$root/bitnami/redis/data"
    mount --bind "$volume" "$root/bitnami/redis/data"
fi
exec unshare --pid --fork --mount-proc --root="$root" "$@"
"""


@pytest.fixture
def kvinit_in_tmp(public_base):
    """kvinit where a container's root (which binds the host's /tmp) finds it."""
    dst = public_base / "bin" / "kvinit"
    dst.parent.mkdir(exist_ok=True)
    shutil.copy2(KVINIT_BIN, dst)
    os.chmod(dst, 0o755)
    return dst


@pytest.fixture
def container(launch, workdir, kvinit_in_tmp):
    """container(volume or None, port, **env) -> Launched: `kvinit node` in a container of its own."""
    count = [0]

    def _start(volume, port, **extra):
        count[0] += 1
        root = workdir / f"root{count[0]}"
        root.mkdir()
        env = node_env(workdir, port, REDIS_DATA_DIR=None, **extra)
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", CONTAINER, "sh", root,
                volume or ""]
        launched = launch([kvinit_in_tmp, "node"], env=env, wrap=wrap)
        launched.port = port
        wait_until(lambda: answers(port), LONG, f"node on {port} to answer PING", launched=launched)
        return launched

    return _start


def stop(node):
    node.send(signal.SIGTERM)
    assert node.wait(SHORT) == 0, node.describe()


def bitnami_volume(workdir):
    """A volume the Bitnami image wrote: its directory and a file of uid 1001."""
    volume = workdir / "volume"
    volume.mkdir()
    (volume / "README.bitnami").write_text("written by the Bitnami image\n")
    for path in (volume, volume / "README.bitnami"):
        os.chown(path, BITNAMI_UID, BITNAMI_UID)
    return volume


def test_a_bitnami_volume_keeps_the_keys_over_down_and_up(container, workdir):
    volume = bitnami_volume(workdir)
    port = free_port()
    node = container(volume, port)
    assert "REDIS_DATA_DIR is unset and '/bitnami/redis/data' is on a volume" in node.stderr, node.stderr
    assert f"the data directory '/bitnami/redis/data': gave 2 files of another user (uid '{BITNAMI_UID}' the first) " \
           f"to the server user (uid '{REDIS_UID}')" in node.stderr, node.stderr
    assert "not on a volume" not in node.stderr, node.stderr
    c = own_all_slots(port)
    for i in range(100):
        c.set(f"key:{i}", i)
    stop(node)  # docker compose down: the container and its root go
    assert (volume / "nodes.conf").stat().st_uid == REDIS_UID
    assert (volume / "README.bitnami").stat().st_uid == REDIS_UID

    node = container(volume, port)  # up: a new container on the same volume
    wait_until(lambda: client(port).execute_command("CLUSTER INFO").get("cluster_state") == "ok", LONG,
               "the node's cluster_state:ok", launched=node)
    assert client(port).dbsize() == 100
    print(f"\nBitnami volume at /bitnami/redis/data: {client(port).dbsize()} of 100 keys after down and up")


def test_a_data_directory_in_the_container_is_said_once(container, workdir):
    """No volume: the data dir /data is in the container's root filesystem, which goes with it."""
    port = free_port()
    node = container(None, port)
    lines = [line for line in node.stderr.splitlines() if "not on a volume" in line]
    assert len(lines) == 1, node.stderr
    print(f"\n{lines[0]}")
    assert lines[0].startswith("warn kvinit[1]: the data directory '/data' is on the root filesystem, not on a "
                               "volume"), lines[0]


@pytest.fixture
def start_node(launch, workdir):
    return make_start_node(launch, workdir)


def test_a_former_master_back_without_its_data_is_said(start_node, workdir):
    """A master of a cluster comes back with its nodes.conf but without its data (a volume for the wrong path, AOF
    off and no snapshot, files deleted): its keys are gone, and its peers hold theirs. kvinit says so."""
    nodes = [start_node(REDIS_CLUSTER_NODE_TIMEOUT=1000) for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVINIT_", "REDIS_"))}
    env.update(REDIS_PASSWORD_FILE=str(secret_file(workdir, name="init_password")), REDIS_CLUSTER_REPLICAS="0",
               REDIS_NODES=",".join(f"127.0.0.1:{n.port}" for n in nodes), KVINIT_INIT_TIMEOUT="60s")
    r = subprocess.run([str(KVINIT_BIN), "cluster-init"], env=env, capture_output=True, text=True, timeout=LONG + 30)
    assert r.returncode == 0, r.stdout + r.stderr
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", nodes[0].port)], password=PASSWORD)
    for i in range(300):
        rc.set(f"key:{i}", i)
    rc.close()
    victim = nodes[2]
    assert client(victim.port).dbsize() > 0
    stop(victim)
    data = Path(workdir) / f"data-{victim.port}"
    for entry in data.iterdir():
        if entry.name != "nodes.conf":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    again = start_node(port=victim.port, REDIS_CLUSTER_NODE_TIMEOUT=1000)
    wait_until(lambda: "DATA LOST?" in again.stderr, LONG, "the warning", launched=again)
    line = next(line for line in again.stderr.splitlines() if "DATA LOST?" in line)
    print(f"\n{line}")
    assert line.startswith("warn kvinit[")
    assert "this node was a master of 5461 slots in a cluster (its nodes.conf lists 2 peers)" in line, line
    assert f"its data directory '{data}' held no data at start while its peers hold keys" in line, line
    # a node that comes back with its data says nothing of the kind
    stop(again)
    again = start_node(port=victim.port, REDIS_CLUSTER_NODE_TIMEOUT=1000)
    time.sleep(2)
    assert "DATA LOST?" not in again.stderr


def test_memory_overcommit_is_said_once_with_its_fix(start_node):
    """Redis asks for vm.overcommit_memory=1 at every start, in a paragraph; kvinit says it in one line with the
    host's command. (The host's setting is what it is: the test checks kvinit agrees with it.)"""
    mode = int(Path("/proc/sys/vm/overcommit_memory").read_text())
    node = start_node()
    lines = [line for line in node.stderr.splitlines() if "vm.overcommit_memory" in line]
    if mode == 1:
        assert not lines, lines
        return
    assert len(lines) == 1, node.stderr
    print(f"\n{lines[0]}")
    assert lines[0].startswith(f"warn kvinit[1]: vm.overcommit_memory is '{mode}' on this host"), lines[0]
    assert "'sysctl vm.overcommit_memory=1'" in lines[0], lines[0]
