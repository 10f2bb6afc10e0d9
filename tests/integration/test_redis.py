"""A real server (the host's redis-server, or the server of the matrix that --server names) under
`kvinit run --user redis` answers PING, runs unprivileged, and stops cleanly."""

import os
import pwd
import signal
import socket
import subprocess

import pytest

from conftest import LONG, SERVER, descendants, init_params, others, read_proc, wait_until


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port):
    try:
        r = subprocess.run([SERVER.cli, "-h", "127.0.0.1", "-p", str(port), "ping"], capture_output=True, text=True,
                           timeout=5)
    except subprocess.TimeoutExpired:
        return ""
    return r.stdout.strip()


@pytest.mark.matrix
@pytest.mark.parametrize("init", init_params(xfail=others("has no --user option: redis-server runs as root")),
                         indirect=True)
def test_redis_server_under_user_redis(init, launch, workdir):
    if not (os.access(SERVER.server, os.X_OK) and os.access(SERVER.cli, os.X_OK)):
        pytest.skip(f"{SERVER.server} or {SERVER.cli} not installed")
    redis = pwd.getpwnam("redis")
    data = workdir / "redis-data"
    data.mkdir()
    os.chown(data, redis.pw_uid, redis.pw_gid)
    os.chmod(data, 0o700)
    port = free_port()
    p = launch(
        init.argv(
            [SERVER.server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", data],
            kvinit=["--user", "redis"],
        )
    )
    wait_until(lambda: ping(port) == "PONG", LONG, f"{SERVER.process_name} to answer PING on 127.0.0.1:{port}",
               interval=0.1, launched=p)

    top = p.ns_init()
    servers = [i for i in descendants(top) if i.get("name") == SERVER.process_name]
    assert len(servers) == 1, servers
    st = read_proc(servers[0]["pid"])
    assert st["uid"] == [redis.pw_uid] * 4, f"redis-server uids {st['uid']}"
    assert st["CapEff"] == "0000000000000000"
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"

    p.send(signal.SIGTERM)
    rc = p.wait(LONG)
    assert rc == 0, p.describe()
