"""`make rotate` and `make down` (compose/stack.sh) on the announce layout (4 nodes, the smallest).

The tests run in this order on one stack: rotate refusing nodes that see a stale password file, then down keeping
the volumes, up again, and down PURGE=1 removing them.
"""

import os
import time

import pytest

from conftest import LAYOUTS, SECRET, STACK, compose, sh, wait_until

LAYOUT = "announce"
PROJECT = LAYOUTS[LAYOUT]["project"]
NEXT = SECRET.with_name("redis_password_next")
PREVIOUS = SECRET.with_name("redis_password_previous")


def stack_sh(*args, check=False, **env):
    return sh(STACK, *args, check=check, env={"LAYOUT": LAYOUT, **env}, timeout=600)


def project_volumes():
    return sorted(sh("docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
                  .stdout.split())


def project_containers():
    return sh("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()


def replace_file(path, value):
    """Puts a new file under the name (as mv or an editor's save does): a running container keeps the old one."""
    tmp = path.with_name(path.name + ".replacement")
    tmp.write_text(value + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def cli(*args):
    return sh("docker", "exec", compose(LAYOUT, "ps", "-q", "valkey0").stdout.strip(), "/usr/bin/kvinit", "cli", "-c",
              *args, check=False)


@pytest.mark.parametrize("stack", [LAYOUT], indirect=True)
class TestStackOps:
    def test_rotate_stops_when_a_node_sees_a_stale_file(self, stack):
        """README: `make rotate` checks that every node sees what the host files hold, and stops otherwise. A password
        file replaced on the host (the same password under a new inode, then another password: the nodes still see the
        old file, and kvinit logs that it was replaced) stops it before it writes anything."""
        original = SECRET.read_text().strip("\n")
        assert NEXT.read_text() == "" and PREVIOUS.read_text() == "", "a rotation is under way"
        try:
            replace_file(SECRET, original)
            node = compose(LAYOUT, "ps", "-q", "valkey0").stdout.strip()
            wait_until(lambda: "was replaced, not written" in sh("docker", "logs", node).stderr, 30,
                       "kvinit's warning about the replaced password file")
            r = stack_sh("rotate", ROTATE_TIMEOUT="20")
            assert r.returncode != 0, r.stdout + r.stderr
            assert "logged that a password file was replaced instead of written in place" in r.stderr, r.stderr
            assert NEXT.read_text() == "" and SECRET.read_text().strip("\n") == original, "rotate wrote a file"

            replace_file(SECRET, original + "-stale")
            r = stack_sh("rotate", ROTATE_TIMEOUT="20")
            assert r.returncode != 0, r.stdout + r.stderr
            # stack.sh reads each node's own view of the file (/proc/PID/root) and finds it differs from the host's
            assert "valkey0 does not see the current" in r.stderr, r.stderr
            assert "replaced instead of written in place" in r.stderr, r.stderr
            assert NEXT.read_text() == "" and PREVIOUS.read_text() == "", "rotate wrote a rotation file"
            assert SECRET.read_text().strip("\n") == original + "-stale", "rotate wrote the password file"
        finally:
            replace_file(SECRET, original)

    def test_down_keeps_the_volumes_and_purge_removes_them(self, stack):
        """README: `make down` stops the layout with its volumes kept (the next up finds the cluster and its keys);
        `make down PURGE=1` removes them."""
        assert cli("set", "kvinit:down", "kept").stdout.strip() == "OK"
        volumes = project_volumes()
        assert len(volumes) == 4, volumes

        r = stack_sh("down")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "volumes kept; PURGE=1 removes them" in r.stdout, r.stdout
        assert not project_containers(), "containers left after make down"
        assert project_volumes() == volumes, "make down removed volumes"

        t0 = time.monotonic()
        r = stack_sh("up")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "nothing to do" in r.stdout + r.stderr, "the init on the second up must find the cluster formed"
        wait_until(lambda: cli("get", "kvinit:down").stdout.strip() == "kept", 60, "the key after down and up")
        print(f"\nmake down, make up LAYOUT={LAYOUT}: the key is back {time.monotonic() - t0:.1f} s after up")

        r = stack_sh("down", PURGE="1")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "its volumes removed" in r.stdout, r.stdout
        assert not project_containers(), "containers left after make down PURGE=1"
        assert not project_volumes(), f"volumes left after make down PURGE=1: {project_volumes()}"
