"""A compose secret is one host file bind-mounted at one path. Only a write into that very file reaches the container;
a file replaced on the host (an editor's save, mv) leaves the container with the old, unlinked inode for good. Here
the bind mount is made the way Docker makes it, inside the node's own mount namespace, over a file of the workdir.
"""

import os
import time

import pytest

from conftest import LONG, KVINIT_BIN, UNSHARE, wait_until

from nodes import answers, free_port, node_env, secret_file
from test_rotation import AT_ONCE, accepts, write_in_place

OLD, NEW, REPLACED = "old password", "new password", "replaced password"


@pytest.fixture
def mounted_node(launch, workdir):
    """A node whose REDIS_PASSWORD_FILE is a bind mount of host_file, as `secrets:` in compose makes it."""
    host_file = secret_file(workdir, OLD, name="host_secret", mode=0o600)
    target = workdir / "run-secrets" / "redis_password"
    target.parent.mkdir()
    target.touch()
    port = free_port()
    mount = ["sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", host_file, target]
    node = launch([KVINIT_BIN, "node"], wrap=[*UNSHARE, *mount],
                  env=node_env(workdir, port, REDIS_PASSWORD_FILE=target, REDIS_CLUSTER_ENABLED="no"))
    node.port = port
    node.host_file = host_file
    wait_until(lambda: answers(port, OLD), LONG, "the node to accept the first password", launched=node)
    return node


def test_in_place_write_reaches_the_node(mounted_node):
    inode = os.stat(mounted_node.host_file).st_ino
    t0 = time.monotonic()
    write_in_place(mounted_node.host_file, NEW)
    wait_until(lambda: accepts(mounted_node.port, NEW), 10, "the node to accept the new password",
               launched=mounted_node)
    took = time.monotonic() - t0
    print(f"\nbind-mounted secret written in place: accepted after {took:.2f} s")
    assert took < AT_ONCE, f"accepted {took:.2f} s after the write, not at once (inotify missed it?)"
    assert os.stat(mounted_node.host_file).st_ino == inode
    assert accepts(mounted_node.port, OLD), "the old password must stay accepted for the grace period"


def test_replaced_file_gets_a_loud_warning(mounted_node, workdir):
    """The new file never reaches the container: kvinit says so, and how to fix it, instead of staying silent."""
    replacement = secret_file(workdir, REPLACED, name="host_secret.new", mode=0o600)
    os.replace(replacement, mounted_node.host_file)

    def warned():
        text = mounted_node.stderr
        return "was replaced, not written" in text and "in place" in text

    wait_until(warned, 15, "the warning about the replaced file", launched=mounted_node)
    assert accepts(mounted_node.port, OLD)
    assert not accepts(mounted_node.port, REPLACED)
    assert REPLACED not in mounted_node.stderr and OLD not in mounted_node.stderr
