"""Live password rotation with real redis-server nodes under `kvinit node` on 127.0.0.1: kvinit watches the password
files and changes which passwords the server accepts, and which one it sends, without a restart.

A is the password the nodes start with (nodes.PASSWORD), B the new one. The two cluster tests follow the operator's
procedure of the README: once on a Secret volume updated the way kubelet updates it (a new timestamped directory
swapped in under the `..data` symlink), once on a single compose secret file overwritten in place. Connections are
never killed: a connection authenticated with A before the rotation still answers after A is refused.
"""

import mmap
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from conftest import LONG, SHORT, KVINIT_BIN, wait_until
from nodes import PASSWORD, accepts, client, free_port, node_env, secret_file, sha
from test_cluster import cluster_init, roles, start_node, start_nodes  # noqa: F401 (fixtures)

A = PASSWORD
B = "n3w p4ss: 'single' quotes, $dollar, % and \\ backslash"

# README: "A change takes effect about 0.2 to 0.5 s after the file changed". A bound of 2 s is 4x that, and well
# below the 10 s poll (KVINIT_SECRET_POLL) that would pick up a change inotify missed.
AT_ONCE = 2.0

ROTATION_LINE = re.compile(r"password rotation: accepting ((?:#[0-9a-f]{8} ?)+), sending #([0-9a-f]{8})")


# --------------------------------------------------------------------------- who accepts what


def accepting(nodes, password):
    """The ports of the nodes that accept `password`."""
    return {n.port for n in nodes if accepts(n.port, password)}


def _still_accepted(nodes, passwords):
    everyone = {n.port for n in nodes}
    for password in passwords:
        refused = everyone - accepting(nodes, password)
        assert not refused, f"nodes {sorted(refused)} refused a password that must stay accepted " \
                            f"(#{sha(password)[:8]})"


def wait_logged(predicate, nodes, what):
    """wait_until(predicate, LONG, what), failing with the end of every node's log."""
    try:
        return wait_until(predicate, LONG, what)
    except AssertionError as e:
        logs = "".join(f"\n--- kvinit on {n.port} ---\n{n.stderr[-1500:]}" for n in nodes)
        raise AssertionError(f"{e}{logs}") from None


def wait_all_accept(nodes, password, since, keep=()):
    """Waits until every node accepts `password`, checking on the way that every node keeps accepting each password
    of `keep`; returns the seconds from `since` (time.monotonic()) to the moment all accepted it."""
    everyone = {n.port for n in nodes}

    def done():
        ok = accepting(nodes, password) == everyone
        now = time.monotonic()
        _still_accepted(nodes, keep)
        return ok and now

    return wait_logged(done, nodes, f"every node to accept #{sha(password)[:8]}") - since


def wait_all_refuse(nodes, password, since, keep=()):
    """Waits until every node refuses `password`, checking on the way that every node keeps accepting each password
    of `keep`; returns the seconds from `since` to the first node refusing it and to the last."""
    first = []

    def done():
        left = accepting(nodes, password)
        now = time.monotonic()
        _still_accepted(nodes, keep)
        if len(left) < len(nodes) and not first:
            first.append(now)
        return not left and now

    last = wait_logged(done, nodes, f"every node to refuse #{sha(password)[:8]}")
    return first[0] - since, last - since


def accepted_hashes(node, password):
    """The SHA-256 hashes the server holds for the default user (asked with `password`)."""
    return set(client(node.port, password).acl_getuser("default")["passwords"])


def masterauth_is(nodes, password):
    return all(client(n.port, password).config_get("masterauth")["masterauth"] == password for n in nodes)


def last_rotation(node):
    """({accepted hash prefixes}, sent hash prefix) of the node's last "password rotation: accepting" line."""
    found = ROTATION_LINE.findall(node.stderr)
    if not found:
        return None
    accepted, sent = found[-1]
    return set(accepted.replace("#", "").split()), sent


def assert_no_password_logged(nodes, *passwords):
    for n in nodes:
        for password in passwords:
            assert password not in n.stderr and password not in n.stdout, \
                f"the node on {n.port} logged a password (#{sha(password)[:8]})"


# --------------------------------------------------------------------------- writing the secret


class SecretVolume:
    """A directory laid out like a Kubernetes Secret volume, updated the way kubelet's atomic writer
    (pkg/volume/util/atomic_writer.go) updates it:

        ..2026_01_02_15_04_05.123/redis_password      the keys of one version of the Secret
        ..data -> ..2026_01_02_15_04_05.123           which version is live (relative symlink)
        redis_password -> ..data/redis_password       what the pod reads, one link per key
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.mkdir()
        os.chmod(self.path, 0o755)

    def write(self, payload):
        """Makes `payload` ({key: value}) the live version; returns time.monotonic() right after the ..data swap."""
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        # a new timestamped directory with every key (defaultMode 0400, no trailing newline, as kubelet writes them)
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        version = Path(tempfile.mkdtemp(prefix=stamp, dir=self.path))
        os.chmod(version, 0o755)
        for key, value in payload.items():
            (version / key).write_text(value)
            os.chmod(version / key, 0o400)
        # ..data_tmp -> the new directory, renamed over ..data: the one atomic step
        os.symlink(version.name, self.path / "..data_tmp")
        os.rename(self.path / "..data_tmp", data)
        swapped = time.monotonic()
        # then a top-level link for each new key, none for a removed key, and the old version goes
        for key in payload:
            if not os.path.lexists(self.path / key):
                os.symlink(f"..data/{key}", self.path / key)
        if old:
            for key in os.listdir(self.path / old):
                if key not in payload:
                    os.remove(self.path / key)
            shutil.rmtree(self.path / old)
        return swapped


def own_secret(workdir):
    """A password file holding A, in a directory of its own (nothing else lies beside it: no _next, no _previous)."""
    secrets = workdir / "secrets"
    secrets.mkdir()
    return secret_file(secrets, value=A)


def write_in_place(path, value):
    """Overwrites the file through its own inode (truncate, then write), as `echo B > file` does: a single file
    bind-mounted into a container only sees changes made this way. An empty value only truncates. Returns
    time.monotonic() once the file holds the new value."""
    inode = os.stat(path).st_ino
    with open(path, "r+") as f:
        f.truncate(0)
        if value:
            f.write(value + "\n")
    assert os.stat(path).st_ino == inode
    return time.monotonic()


# --------------------------------------------------------------------------- a cluster that must not notice


def formed_cluster(start_nodes, workdir, **extra):
    """Six nodes formed into 3 masters and 3 replicas, every replica's link to its master up."""
    nodes = start_nodes(6, **extra)
    r = cluster_init(workdir, nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    roles(nodes[0].port, 3, nodes)

    def links_up():
        infos = [client(n.port).info("replication") for n in nodes]
        replicas = [i for i in infos if i["role"] == "slave"]
        return len(replicas) == 3 and all(i["master_link_status"] == "up" for i in replicas)

    wait_until(links_up, LONG, "every replica's master link to be up")
    return nodes


def sync_counts(nodes, password):
    """Per node, how many syncs it has served to replicas: a replica whose link broke and came back adds one."""
    keys = ("sync_full", "sync_partial_ok", "sync_partial_err")
    return {n.port: sum(int(client(n.port, password).info("stats")[k]) for k in keys) for n in nodes}


def assert_cluster_unharmed(nodes, password, syncs):
    """cluster_state:ok everywhere, every replica's link up, and no link broke since `syncs` was taken."""
    for n in nodes:
        c = client(n.port, password)
        assert c.execute_command("CLUSTER INFO")["cluster_state"] == "ok", n.port
        info = c.info("replication")
        if info["role"] == "slave":
            assert info["master_link_status"] == "up", (n.port, info)
    assert sync_counts(nodes, password) == syncs, "a replica's link to its master broke and was made again"


def open_connections(nodes, password):
    """One connection to every node, authenticated now: {port: (client, its CLIENT ID)}."""
    out = {}
    for n in nodes:
        c = client(n.port, password, single_connection_client=True)
        out[n.port] = (c, c.client_id())
    return out


def assert_connections_alive(connections):
    """Each connection still answers and is the same one (redis-py would silently open a new one)."""
    for port, (c, client_id) in connections.items():
        assert c.ping() and c.client_id() == client_id, f"the connection to {port} was closed"


def cluster_with(nodes, password):
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in nodes], password=password,
                        socket_timeout=2, socket_connect_timeout=2)


def write_keys(nodes, password, count=1000):
    rc = cluster_with(nodes, password)
    pipe = rc.pipeline()
    for i in range(count):
        pipe.set(f"rotation:{i}", i)
    assert all(pipe.execute())
    rc.close()


def assert_keys(nodes, password, count=1000):
    rc = cluster_with(nodes, password)
    pipe = rc.pipeline()
    for i in range(count):
        pipe.get(f"rotation:{i}")
    assert [int(v) for v in pipe.execute()] == list(range(count))
    rc.close()


# --------------------------------------------------------------------------- Kubernetes: the ..data swap


@pytest.mark.matrix
def test_kubernetes_secret_update_rotates_a_cluster(start_nodes, workdir):
    """The operator's three steps on a Secret volume shared by a 3+3 cluster, each applied as kubelet applies a
    Secret update. 1: redis_password_next=B -> every node accepts B, still accepts A and still sends A.
    2: current B, previous A, no next -> both accepted, masterauth B everywhere. 3: previous removed -> A refused
    everywhere at once (well before the 300 s default grace), only B's hash left, also in the rendered config.
    A is never refused before step 3, nor B after step 1; connections authenticated with A stay open; no replica's
    link breaks; the cluster stays ok and keeps its keys; no log line holds a password."""
    volume = SecretVolume(workdir / "secret")
    volume.write({"redis_password": A})
    nodes = formed_cluster(start_nodes, workdir, REDIS_PASSWORD_FILE=volume.path / "redis_password")
    write_keys(nodes, A)
    connections = open_connections(nodes, A)
    syncs = sync_counts(nodes, A)

    # 1. B comes in as redis_password_next
    swapped = volume.write({"redis_password": A, "redis_password_next": B})
    took = wait_all_accept(nodes, B, swapped, keep=(A,))
    print(f"\nkubernetes step 1 (next=B): all 6 nodes accept B {took:.2f} s after the ..data swap")
    assert took < AT_ONCE, f"B accepted by all {took:.2f} s after the swap"
    assert masterauth_is(nodes, A), "a node sends the next password before it is current"
    for n in nodes:
        assert accepted_hashes(n, A) == {sha(A), sha(B)}, n.port
        assert last_rotation(n) == ({sha(A)[:8], sha(B)[:8]}, sha(A)[:8]), n.stderr[-2000:]
    assert_cluster_unharmed(nodes, A, syncs)

    # 2. B becomes current, A previous, next goes
    swapped = volume.write({"redis_password": B, "redis_password_previous": A})

    def switched():
        _still_accepted(nodes, (A, B))
        return masterauth_is(nodes, B) and time.monotonic()

    took = wait_until(switched, LONG, "masterauth B on every node") - swapped
    print(f"kubernetes step 2 (current=B, previous=A): masterauth is B on all 6 nodes {took:.2f} s after the swap")
    assert took < AT_ONCE, f"masterauth B on all {took:.2f} s after the swap"
    for n in nodes:
        wait_until(lambda: last_rotation(n) == ({sha(A)[:8], sha(B)[:8]}, sha(B)[:8]), SHORT,
                   f"the node on {n.port} to log that it sends B", launched=n)
    assert_cluster_unharmed(nodes, B, syncs)

    # 3. previous goes: A is refused at once
    swapped = volume.write({"redis_password": B})
    first, last = wait_all_refuse(nodes, A, swapped, keep=(B,))
    print(f"kubernetes step 3 (previous removed): A refused by the first node after {first:.2f} s, by all 6 after "
          f"{last:.2f} s")
    assert last < AT_ONCE, f"A refused by all {last:.2f} s after the swap, not at once"
    for n in nodes:
        assert accepted_hashes(n, B) == {sha(B)}, n.port
        assert last_rotation(n) == ({sha(B)[:8]}, sha(B)[:8]), n.stderr[-2000:]
        rendered = workdir / f"run-{n.port}" / "redis.conf"
        wait_until(lambda: sha(B) in rendered.read_text() and sha(A) not in rendered.read_text(), SHORT,
                   f"the rendered config of {n.port} to hold only B's hash", launched=n)
    assert masterauth_is(nodes, B)
    assert_connections_alive(connections)
    assert_cluster_unharmed(nodes, B, syncs)
    assert_keys(nodes, B)
    assert_no_password_logged(nodes, A, B)


# --------------------------------------------------------------------------- compose: one file, written in place


def test_compose_single_file_written_in_place_rotates_a_cluster(start_nodes, workdir):
    """Single-file mode, as a compose secret (one bind-mounted file, never a _next or _previous) overwritten in place
    on the host, with KVINIT_ROTATION_GRACE=3s: every node accepts B within moments, keeps accepting A until the
    grace runs out (not a moment less) and then refuses it, and sends B. Connections authenticated with A stay open,
    no replica's link breaks, the cluster stays ok and keeps its keys, no log line holds a password."""
    grace = 3.0
    path = own_secret(workdir)
    nodes = formed_cluster(start_nodes, workdir, REDIS_PASSWORD_FILE=path, KVINIT_ROTATION_GRACE=f"{grace:g}s")
    everyone = {n.port for n in nodes}
    write_keys(nodes, A)
    connections = open_connections(nodes, A)
    syncs = sync_counts(nodes, A)

    written = write_in_place(path, B)
    took = wait_all_accept(nodes, B, written, keep=(A,))
    still = accepting(nodes, A)
    print(f"\ncompose in-place write: all 6 nodes accept B {took:.2f} s after the write")
    assert took < AT_ONCE, f"B accepted by all {took:.2f} s after the write"
    assert still == everyone, f"A refused by {sorted(everyone - still)} {time.monotonic() - written:.2f} s after " \
                              f"the write, before the {grace:g} s grace ran out"

    first, last = wait_all_refuse(nodes, A, written, keep=(B,))
    print(f"compose in-place write: A refused by the first node after {first:.2f} s, by all 6 after {last:.2f} s "
          f"(grace {grace:g} s)")
    assert first >= grace, f"A was refused {first:.2f} s after the write, before the {grace:g} s grace ran out"
    assert last < grace + AT_ONCE, f"A refused by all {last:.2f} s after the write, the grace was {grace:g} s"
    wait_until(lambda: masterauth_is(nodes, B), LONG, "masterauth B on every node")
    for n in nodes:
        assert accepted_hashes(n, B) == {sha(B)}, n.port
        assert not any("replaced" in line and "in place" in line for line in n.stderr.splitlines()), \
            f"an in-place write was taken for a replaced file:\n{n.stderr[-2000:]}"
    assert_connections_alive(connections)
    assert_cluster_unharmed(nodes, B, syncs)
    assert_keys(nodes, B)
    assert_no_password_logged(nodes, A, B)


# --------------------------------------------------------------------------- one node


def lone_node(start_node, path, **extra):
    """A standalone node (no cluster to form) reading its password from `path`."""
    return start_node(REDIS_PASSWORD_FILE=path, REDIS_CLUSTER_ENABLED="no", **extra)


def warnings(node):
    return [line for line in node.stderr.splitlines() if line.startswith("warn")]


def test_emptied_password_file_keeps_the_password(start_node, workdir):
    """An in-place write truncates the file first: a node that reads the empty file warns and keeps A, and never
    accepts an empty password. Its watch goes on: B written afterwards is accepted (A too, within the grace)."""
    path = own_secret(workdir)
    node = lone_node(start_node, path)
    before = len(warnings(node))
    write_in_place(path, "")
    wait_until(lambda: len(warnings(node)) > before, SHORT, "a warning about the empty file", launched=node)
    print(f"\nwarning on the emptied file: {warnings(node)[before]}")
    time.sleep(0.5)  # a change would be applied within ~0.3 s of the read that warned
    assert accepts(node.port, A)
    assert not accepts(node.port, "")
    acl = client(node.port, A).acl_getuser("default")
    assert set(acl["passwords"]) == {sha(A)} and "nopass" not in acl["flags"], acl

    written = write_in_place(path, B)
    took = wait_all_accept([node], B, written, keep=(A,))
    print(f"B written after the empty file: accepted after {took:.2f} s")
    assert took < AT_ONCE, f"B accepted {took:.2f} s after the write"
    assert_no_password_logged([node], A, B)


def test_removed_previous_is_dropped_at_once_removed_next_waits_for_the_grace(start_node, workdir):
    """Passwords that leave the files stay accepted for KVINIT_ROTATION_GRACE (300 s by default), except the one
    of redis_password_previous: the operator removes it to end the rotation, so it is refused at once."""
    path = own_secret(workdir)
    previous, upcoming = "the previous one", "the next one"
    secret_file(path.parent, value=previous, name="redis_password_previous")
    secret_file(path.parent, value=upcoming, name="redis_password_next")
    node = lone_node(start_node, path)
    assert accepts(node.port, previous) and accepts(node.port, upcoming)

    removed = time.monotonic()
    os.remove(path.parent / "redis_password_previous")
    os.remove(path.parent / "redis_password_next")
    _, took = wait_all_refuse([node], previous, removed, keep=(A, upcoming))
    print(f"\nredis_password_previous removed: refused after {took:.2f} s (the removed next: still accepted)")
    assert took < AT_ONCE, f"the removed previous password was refused {took:.2f} s later, not at once"
    assert accepted_hashes(node, A) == {sha(A), sha(upcoming)}
    assert_no_password_logged([node], A, previous, upcoming)


@pytest.mark.matrix
def test_grace_0_replaces_the_password_at_once(start_node, workdir):
    """KVINIT_ROTATION_GRACE=0 (single-file mode): B written over A is accepted and sent at once, and A is refused
    at once: nothing is kept for a grace."""
    path = own_secret(workdir)
    node = lone_node(start_node, path, KVINIT_ROTATION_GRACE="0")
    written = write_in_place(path, B)
    took = wait_all_accept([node], B, written)
    _, gone = wait_all_refuse([node], A, written, keep=(B,))
    print(f"\ngrace 0: B accepted after {took:.2f} s, A refused after {gone:.2f} s")
    assert took < AT_ONCE and gone < AT_ONCE, f"grace 0: B accepted after {took:.2f} s, A refused after {gone:.2f} s"
    assert accepted_hashes(node, B) == {sha(B)}
    assert masterauth_is([node], B)
    assert_no_password_logged([node], A, B)


def test_poll_finds_a_change_inotify_cannot_see(start_node, workdir):
    """A write through a shared memory mapping raises no inotify event (inotify(7)): a node with
    KVINIT_SECRET_POLL=1s still picks it up, by its poll. A second node on the same file with KVINIT_SECRET_POLL=0
    (inotify only) does not, which shows inotify really missed the write; a later in-place write reaches both."""
    path = own_secret(workdir)
    polling = lone_node(start_node, path, KVINIT_SECRET_POLL="1s")
    deaf = lone_node(start_node, path, KVINIT_SECRET_POLL="0")
    same_length = A.swapcase()  # a mapping cannot grow the file
    assert same_length != A and len(same_length.encode()) == len(A.encode())

    with open(path, "r+b") as f:
        mapping = mmap.mmap(f.fileno(), 0)
    # The mapping holds the file open: its IN_CLOSE_WRITE comes only when it is unmapped.
    try:
        time.sleep(0.5)  # whatever the open stirred up is over: the content has not changed yet
        mapping[:len(A.encode())] = same_length.encode()
        mapping.flush()
        written = time.monotonic()
        took = wait_all_accept([polling], same_length, written, keep=(A,))
        print(f"\nchange inotify cannot see: the node polling every 1 s accepts it after {took:.2f} s")
        time.sleep(2)
        assert not accepts(deaf.port, same_length), "the inotify-only node saw the mapped write: nothing shown"
    finally:
        mapping.close()

    written = write_in_place(path, B)
    took = wait_all_accept([polling, deaf], B, written, keep=(A,))
    print(f"in-place write afterwards: both nodes accept it after {took:.2f} s")
    assert took < AT_ONCE, f"the in-place write was accepted {took:.2f} s later"
    assert_no_password_logged([polling, deaf], A, same_length, B)


@pytest.mark.parametrize("var", ["KVINIT_ROTATION_GRACE", "KVINIT_SECRET_POLL"])
def test_bad_rotation_setting_exits_100(launch, workdir, var):
    """A bad duration in a rotation setting stops the node before anything starts, with one line naming it."""
    port = free_port()
    p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, **{var: "abc"}))
    assert p.wait(SHORT) == 100, p.describe()
    lines = [line for line in p.stderr.splitlines() if line.startswith("error kvinit")]
    assert len(lines) == 1 and var in lines[0] and "'abc'" in lines[0], p.stderr
    assert not (Path(workdir) / f"run-{port}").exists()

