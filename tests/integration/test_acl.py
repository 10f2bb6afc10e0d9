"""ACL users from a users file (REDIS_ACLFILE) on real servers under `kvinit node` on 127.0.0.1: the exporter's user
scrapes and cannot write, an application user stays within its keys, a change of the file applies live (a new
user, a removed one refused, a changed password), a bad file is ignored loudly, and a restart keeps the users."""

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from conftest import LONG, SHORT, KVINIT_BIN, wait_until
from nodes import accepts, answers, free_port, node_env, own_all_slots, server_pid
from test_cluster import start_node  # noqa: F401 (fixture)

LAYOUT_USERS = Path(__file__).resolve().parents[2] / "compose" / "config" / "redis_users"

# as for the password (test_rotation.py): the README says a change applies well within this
AT_ONCE = 2.0

# what the exporter runs (oliver006/redis_exporter: INFO, CLUSTER INFO, SLOWLOG, LATENCY LATEST, CLIENT SETNAME,
# PING); CONFIG GET is left out on purpose: CONFIG GET * would hand it masterauth, the default user's password
EXPORTER_RULES = "on {pw} +ping +info +cluster|info +cluster|nodes +slowlog|get +slowlog|len +latency|latest " \
                 "+client|setname"
EXPORTER_PW = "exp0rter pass"
APP_PW = "app pass 1"
APP_PW2 = "app pass 2"
NEW_PW = "new user pass"


def sha(password):
    return hashlib.sha256(password.encode()).hexdigest()


def write_in_place(path, text):
    """Through the file's own inode, as a compose secret must be written."""
    with open(path, "r+" if path.exists() else "w") as f:
        f.truncate(0)
        f.write(text)
    return time.monotonic()


def users_dir(workdir):
    d = workdir / "users"
    d.mkdir()
    (d / "exporter_password").write_text(EXPORTER_PW + "\n")
    (d / "app_password").write_text(APP_PW + "\n")
    os.chmod(d / "exporter_password", 0o400)
    os.chmod(d / "app_password", 0o400)
    return d


def users_text(*extra, app=True):
    lines = ["# the exporter: reads, never writes", "user exporter " + EXPORTER_RULES.format(pw="<exporter_password")]
    if app:
        lines.append("user app on <app_password ~app:* &app:* +@read +@write +@connection -@dangerous")
    return "\n".join(lines + list(extra)) + "\n"


def as_user(port, user, password):
    return redis.Redis(host="127.0.0.1", port=port, username=user, password=password, socket_timeout=2,
                       socket_connect_timeout=2)


def refused(call):
    try:
        call()
    except redis.exceptions.NoPermissionError:
        return True
    except redis.exceptions.ResponseError as e:
        return str(e).startswith("NOPERM")
    return False


def timed(predicate, since, what, node):
    try:
        done = wait_until(predicate, LONG, what, launched=node)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- kvinit ---\n{node.stderr[-3000:]}") from None
    return time.monotonic() - since if done else None


def assert_exporter_scrapes(port):
    e = as_user(port, "exporter", EXPORTER_PW)
    assert e.ping()
    assert "redis_version" in e.info()
    assert e.execute_command("CLUSTER", "INFO")
    assert e.execute_command("CLUSTER", "NODES")
    e.execute_command("SLOWLOG", "GET", "1")
    e.execute_command("LATENCY", "LATEST")
    e.execute_command("CLIENT", "SETNAME", "redis_exporter")
    assert refused(lambda: e.set("app:1", "x")), "the exporter wrote a key"
    assert refused(lambda: e.get("app:1")), "the exporter read a key"
    assert refused(lambda: e.config_get("masterauth")), "the exporter read the config (masterauth)"
    assert refused(lambda: e.execute_command("ACL", "LIST")), "the exporter listed the users"
    e.close()


@pytest.mark.matrix
def test_users_file_live(start_node, workdir):  # noqa: F811
    d = users_dir(workdir)
    users = d / "users"
    write_in_place(users, users_text())
    node = start_node(REDIS_ACLFILE=users)
    port = node.port
    own_all_slots(port)
    assert "the users file '" in node.stderr and "': 2 users" in node.stderr

    # the exporter scrapes and cannot write; the application stays within its keys
    assert_exporter_scrapes(port)
    app = as_user(port, "app", APP_PW)
    assert app.set("app:1", "v") and app.get("app:1") == b"v"
    assert refused(lambda: app.set("other", "v")), "the application wrote outside its keys"
    assert refused(lambda: app.execute_command("FLUSHALL")), "the application ran a dangerous command"
    # the password files' hashes only: no password in the rendered config, none in the log
    conf = (workdir / f"run-{port}" / "redis.conf").read_text()
    assert f"#{sha(EXPORTER_PW)}" in conf and EXPORTER_PW not in conf and APP_PW not in conf
    assert EXPORTER_PW not in node.stderr and APP_PW not in node.stderr

    # a new user works, live
    (d / "new_password").write_text(NEW_PW + "\n")
    t0 = write_in_place(users, users_text("user new on <new_password ~new:* +@all"))
    took = timed(lambda: accepts(port, NEW_PW, user="new"), t0, "the new user to log in", node)
    print(f"\nnew user accepted after {took * 1000:.0f} ms")
    assert took < AT_ONCE

    # a removed user is refused, and its open connection is closed
    conn = redis.connection.Connection(host="127.0.0.1", port=port, username="app", password=APP_PW,
                                       socket_timeout=2)
    conn.connect()
    conn.send_command("PING")
    assert conn.read_response() in (b"PONG", "PONG")
    t0 = write_in_place(users, users_text("user new on <new_password ~new:* +@all", app=False))
    took = timed(lambda: not accepts(port, APP_PW, user="app"), t0, "the removed user to be refused", node)
    print(f"removed user refused after {took * 1000:.0f} ms")
    assert took < AT_ONCE
    with pytest.raises(redis.exceptions.ConnectionError):
        conn.send_command("PING")
        conn.read_response()
    conn.disconnect()
    assert accepts(port, NEW_PW, user="new") and accepts(port, EXPORTER_PW, user="exporter")

    # a changed password applies: written in the password file the users file names
    t0 = write_in_place(d / "new_password", "changed pass\n")
    took = timed(lambda: accepts(port, "changed pass", user="new"), t0, "the changed password", node)
    print(f"changed password accepted after {took * 1000:.0f} ms")
    assert took < AT_ONCE
    assert not accepts(port, NEW_PW, user="new")

    # a bad file is ignored loudly: the running users stay
    before = node.stderr.count("the file is ignored, the running users stay")
    write_in_place(users, users_text("user new on >plaintext ~new:*"))
    wait_until(lambda: node.stderr.count("the file is ignored, the running users stay") > before, SHORT,
               "the bad file's line", launched=node)
    assert "line 4: '>...': a password in plain text" in node.stderr, node.stderr[-2000:]
    assert "plaintext" not in node.stderr
    time.sleep(0.3)
    assert accepts(port, "changed pass", user="new") and accepts(port, EXPORTER_PW, user="exporter")
    # one the server refuses (no such command) changes nothing either
    write_in_place(users, users_text("user new on <new_password ~new:* +nosuchcommand", app=False))
    wait_until(lambda: "the server refuses user 'new'" in node.stderr, SHORT, "the server's refusal", launched=node)
    assert accepts(port, "changed pass", user="new") and accepts(port, EXPORTER_PW, user="exporter")
    as_user(port, "new", "changed pass").set("new:1", "x")

    # a good file again; then a restart of the server starts with the users of the file
    t0 = write_in_place(users, users_text("user new on <new_password ~new:* +@all", app=False))
    first = server_pid(node)
    time.sleep(1.2)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: server_pid(node) != first and answers(port), LONG, "the restarted server", launched=node)
    assert accepts(port, "changed pass", user="new") and accepts(port, EXPORTER_PW, user="exporter")
    assert not accepts(port, APP_PW, user="app")
    assert_exporter_scrapes(port)
    assert node.poll() is None


@pytest.mark.parametrize(
    "text,message",
    [
        ("user app on >hunter2 ~*\n", "line 1: '>...': a password in plain text"),
        ("# kvinit's\nuser default on nopass ~* +@all\n", "line 2: user 'default': the default user is kvinit's"),
        ("user app on ~a\nuser app on ~b\n", "line 2: user 'app' is already defined on line 1"),
        ("user app on <missing\n", "line 1: the password file '"),
    ],
)
def test_bad_users_file_exits_100(launch, workdir, text, message):
    users = workdir / "users"
    users.write_text(text)
    port = free_port()
    p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, REDIS_ACLFILE=users))
    assert p.wait(SHORT) == 100, p.describe()
    lines = [line for line in p.stderr.splitlines() if line.startswith("error kvinit")]
    assert len(lines) == 1 and message in lines[0] and f"REDIS_ACLFILE: the users file '{users}'" in lines[0], \
        p.stderr
    assert "hunter2" not in p.stderr.replace(str(workdir), "")  # the test's directory is named after it


def test_missing_users_file_exits_100(launch, workdir):
    port = free_port()
    p = launch([KVINIT_BIN, "node"], env=node_env(workdir, port, REDIS_ACLFILE=workdir / "nothere"))
    assert p.wait(SHORT) == 100, p.describe()
    assert "REDIS_ACLFILE: the users file '" in p.stderr and "nothere'" in p.stderr


def test_render_redacts_the_users(workdir):
    d = users_dir(workdir)
    (d / "users").write_text(users_text())
    env = {k: v for k, v in node_env(workdir, free_port(), REDIS_ACLFILE=d / "users").items() if v is not None}
    out = subprocess.run([KVINIT_BIN, "render"], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=SHORT)
    assert out.returncode == 0, out.stderr
    assert "user exporter on \"#<redacted>\" +ping" in out.stdout or "user exporter on #<redacted> +ping" in out.stdout
    assert sha(EXPORTER_PW) not in out.stdout


def test_the_layouts_users_file(start_node, workdir):  # noqa: F811
    """compose/config/redis_users, as `make up` installs it, with its commented application user put in: the
    exporter scrapes what redis_exporter asks and nothing else; the application stays within app:*."""
    d = workdir / "secrets"
    d.mkdir()
    (d / "redis_exporter_password").write_text(EXPORTER_PW + "\n")
    text = LAYOUT_USERS.read_text()
    example = "# user app on #<sha256> "
    assert example in text
    (d / "redis_users").write_text(text.replace(example, f"user app on #{sha(APP_PW)} "))
    node = start_node(REDIS_ACLFILE=d / "redis_users")
    own_all_slots(node.port)
    assert_exporter_scrapes(node.port)
    app = as_user(node.port, "app", APP_PW)
    assert app.set("app:1", "v") and app.get("app:1") == b"v"
    assert app.execute_command("CLUSTER", "SLOTS")
    assert refused(lambda: app.set("other", "v"))
    assert refused(lambda: app.execute_command("FLUSHALL"))
    assert refused(lambda: app.config_get("masterauth"))


def test_users_on_a_secret_volume(start_node, workdir):  # noqa: F811
    """The users file and its password file as keys of one Kubernetes Secret, updated by kubelet's ..data swap."""
    from test_rotation import SecretVolume

    vol = SecretVolume(workdir / "secret")
    users = "user app on <app_password ~app:* +@all\n"
    vol.write({"redis_users": users, "app_password": APP_PW})
    node = start_node(REDIS_ACLFILE=vol.path / "redis_users")
    port = node.port
    assert accepts(port, APP_PW, user="app")

    t0 = vol.write({"redis_users": users, "app_password": APP_PW2})
    took = timed(lambda: accepts(port, APP_PW2, user="app"), t0, "the new password of the Secret", node)
    print(f"\nnew password (..data swap) accepted after {took * 1000:.0f} ms")
    assert took < AT_ONCE and not accepts(port, APP_PW, user="app")

    t0 = vol.write({"redis_users": "# nobody\n"})
    took = timed(lambda: not accepts(port, APP_PW2, user="app"), t0, "the removed user to be refused", node)
    print(f"removed user (..data swap) refused after {took * 1000:.0f} ms")
    assert took < AT_ONCE
