"""Starting real server nodes under `kvinit node` (PID 1 of a PID namespace), all on 127.0.0.1: the host's redis-server,
or the server of the matrix that --server names (conftest.SERVER)."""

import hashlib
import inspect
import os
import pwd
import random
import socket
import subprocess
from pathlib import Path

import redis

from conftest import LONG, SHORT, KVINIT_BIN, SERVER, descendants, wait_until

PASSWORD = "s3cr3t with spaces & \"quotes\" and \\ backslash"
REDIS_UID = pwd.getpwnam("redis").pw_uid


_handed_out = set()


def free_port():
    """A port p with p and p + 10000 (the cluster bus) both free on 127.0.0.1, never handed out twice in a run
    (a node that has not bound its port yet must not get a twin). Both stay below 32768, where Linux's ephemeral
    ports begin: a client connection made between the pick and the server's bind could take a port up there."""
    for _ in range(200):
        port = random.randint(10000, 22767)
        ok = port not in _handed_out and port + 10000 not in _handed_out
        for p in (port, port + 10000):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            _handed_out.update((port, port + 10000))
            return port
    raise AssertionError("no free port pair")


def secret_file(workdir, value=PASSWORD, name="redis_password", mode=0o400):
    """The password file, written atomically: nodes starting at the same moment must never see it half-written."""
    path = Path(workdir) / name
    tmp = path.with_name(f".{name}.{os.getpid()}.{random.randrange(1 << 30)}")
    tmp.write_text(value + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def node_env(workdir, port, **extra):
    env = {
        "REDIS_PASSWORD_FILE": secret_file(workdir),
        "REDIS_PORT_NUMBER": port,
        "REDIS_BIND": "127.0.0.1",
        "REDIS_DATA_DIR": Path(workdir) / f"data-{port}",
        "KVINIT_RENDERED_CONFIG": Path(workdir) / f"run-{port}" / "redis.conf",
        "REDIS_CLUSTER_ANNOUNCE_IP": "127.0.0.1",
        "REDIS_BASE_CONFIG": "/nonexistent/redis.conf",
        "KVINIT_STOP_GRACE": "8s",
        **SERVER.env,
    }
    env.update(extra)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def client(port, password=PASSWORD, **kw):
    return redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2, socket_connect_timeout=2, **kw)


def sha(password):
    """The sha256 hex of a password, as ACL rules and kvinit's log lines (#<first 8>) name it."""
    return hashlib.sha256(password.encode()).hexdigest()


# redis-py 5 and later (trixie's, on the matrix runs) send CLIENT SETINFO when they connect, before anything else: a
# server that knows it (Redis >= 7.2, Valkey) answers NOAUTH on a connection not yet authenticated, and the client
# gives up. accepts() authenticates by hand, so its connection must not send it.
NO_CLIENT_SETINFO = ({"lib_name": None, "lib_version": None}
                     if "lib_name" in inspect.signature(redis.Redis.__init__).parameters else {})


def health(workdir, node, *args, timeout=SHORT):
    """`kvinit health ARGS` with the node's own environment, as the image's HEALTHCHECK runs it (in the node's
    network namespace when it has one, netns.start_node_in): (exit code, the line it printed)."""
    env = dict(os.environ)
    for k, v in node_env(workdir, node.port, **node.env_extra).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    argv = [str(KVINIT_BIN), "health", *args]
    if getattr(node, "ns", None):
        argv = node.ns.wrap(argv)
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout.strip()


def accepts(port, password, host="127.0.0.1", user=None):
    """True when the server (a node or a Sentinel) answers OK to AUTH with `password` (as ACL user `user` when
    given), False when it refuses it (WRONGPASS). A server that does not answer at all fails the test: it must not
    pass for one that refuses."""
    c = redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2, **NO_CLIENT_SETINFO)
    try:
        return bool(c.execute_command("AUTH", *([user] if user else []), password))
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError):
        return False
    except redis.exceptions.ResponseError as e:
        if str(e).startswith("WRONGPASS"):
            return False
        raise
    finally:
        c.close()


def answers(port, password=PASSWORD):
    try:
        return client(port, password).ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
        return False


def server_pid(launched):
    """Host pid of the server (redis-server or valkey-server) below the namespace."""

    def find():
        for info in descendants(launched.ns_init()):
            if info.get("name") == SERVER.process_name and info.get("state") not in ("Z", "X"):
                return info["pid"]
        return None

    return wait_until(find, LONG, f"{SERVER.process_name} to start", launched=launched)


def make_start_node(launch, workdir):
    def _start(port=None, wait=True, password=PASSWORD, **extra):
        port = port or free_port()
        launched = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, **extra))
        launched.port = port
        launched.env_extra = extra
        if wait:
            wait_until(lambda: answers(port, password), LONG, f"node on {port} to answer PING", launched=launched)
        return launched

    return _start


def cluster_ok(c):
    return c.execute_command("CLUSTER INFO").get("cluster_state") == "ok"


def own_all_slots(port):
    """A lone cluster node that serves every slot, so it takes writes."""
    c = client(port)
    c.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
    wait_until(lambda: cluster_ok(c), LONG,
               "the lone node's cluster_state:ok")
    return c


