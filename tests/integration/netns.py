"""Network namespaces of a test's own, for nodes whose addresses a test changes under them (issue 12).

Every namespace here is created by the test and deleted after it: its interfaces (loopback, a veth pair between two
of them) carry the only traffic, and with no default route nothing can leave. Nodes run in one with
`nsenter --net=...` in front of the usual PID namespace; the test talks to them from a thread that joined the
namespace (setns is per thread), so the test process itself stays where it is.
"""

import ctypes
import itertools
import os
import subprocess
import threading

import pytest

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_names = itertools.count()


class NetNS:
    def __init__(self, tag):
        self.name = f"kvinit-it-{os.getpid()}-{next(_names)}-{tag}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = f"/run/netns/{self.name}"
        self.ip("link", "set", "lo", "up")

    def ip(self, *args):
        """`ip -n NAME ARGS`, checked."""
        subprocess.run(["ip", "-n", self.name, *[str(a) for a in args]], check=True, capture_output=True)

    def wrap(self, inner):
        """The prefix that runs a command in this namespace, in front of `inner` (a list)."""
        return ["nsenter", f"--net={self.path}", *inner]

    def call(self, fn, *args, **kw):
        """fn(*args, **kw) in a thread inside this namespace: its sockets are this namespace's."""
        out = {}

        def body():
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            try:
                out["value"] = fn(*args, **kw)
            except BaseException as e:  # re-raised in the caller
                out["error"] = e

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]
        return out["value"]

    def run(self, argv, **kw):
        return subprocess.run(["nsenter", f"--net={self.path}", *[str(a) for a in argv]], **kw)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)


def veth(a, a_addr, b, b_addr, prefix=24):
    """A veth pair between namespaces a and b, up, with one address at each end."""
    ends = (f"kva{next(_names)}", f"kvb{next(_names)}")
    subprocess.run(["ip", "link", "add", ends[0], "netns", a.name, "type", "veth", "peer", "name", ends[1], "netns",
                    b.name], check=True, capture_output=True)
    a.ip("addr", "add", f"{a_addr}/{prefix}", "dev", ends[0])
    b.ip("addr", "add", f"{b_addr}/{prefix}", "dev", ends[1])
    a.ip("link", "set", ends[0], "up")
    b.ip("link", "set", ends[1], "up")
    return ends


@pytest.fixture
def netns():
    """netns(tag) -> NetNS; every namespace made is deleted at teardown (after the test's processes are killed)."""
    made = []

    def _make(tag="n"):
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        ns = NetNS(tag)
        made.append(ns)
        return ns

    yield _make
    for ns in made:
        ns.delete()


def start_node_in(launch, workdir, ns, port=None, wait=True, **extra):
    """`kvinit node` in namespace ns (and a PID namespace of its own), listening on every address there."""
    from conftest import LONG, UNSHARE, KVINIT_BIN, wait_until
    from nodes import answers, free_port, node_env

    port = port or free_port()
    env = node_env(workdir, port, **{"REDIS_BIND": "* -::*", **extra})
    launched = launch([KVINIT_BIN, "node"], env=env, wrap=ns.wrap(UNSHARE))
    launched.port = port
    launched.env_extra = {"REDIS_BIND": "* -::*", **extra}
    launched.ns = ns
    if wait:
        wait_until(lambda: ns.call(answers, port), LONG, f"node on {port} to answer PING", launched=launched)
    return launched


def form_in(ns, workdir, addresses, replicas):
    """`kvinit cluster-init` in namespace ns over addresses (host:port), asserting it succeeds."""
    from conftest import LONG, KVINIT_BIN
    from nodes import secret_file

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVINIT_", "REDIS_"))}
    env.update(REDIS_PASSWORD_FILE=str(secret_file(workdir, name="init_password")), REDIS_NODES=",".join(addresses),
               REDIS_CLUSTER_REPLICAS=str(replicas), KVINIT_INIT_TIMEOUT="60s")
    r = ns.run([KVINIT_BIN, "cluster-init"], env=env, capture_output=True, text=True, timeout=LONG + 30)
    assert r.returncode == 0, r.stdout + r.stderr
