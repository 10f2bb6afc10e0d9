"""Exit status: the child's status passes through; 127 command not found; 126 not executable. The node role's own
codes: 127 no server to run, 100 a setting or a server that cannot work, 111 a system call failed before the start."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import KVINIT_BIN, SHORT, init_params
from nodes import free_port, node_env


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_exit_codes_0_to_255_pass_through(init, probe, run):
    wrong = {}
    for code in range(256):
        r = run(init.argv([probe, "exit", code]))
        if r.returncode != code:
            wrong[code] = r.returncode
    assert not wrong, f"child exit status -> init exit status mismatches: {wrong}"


@pytest.mark.parametrize("cmd", ["/nonexistent/kvinit-no-such-cmd", "kvinit-no-such-cmd-in-path"])
@pytest.mark.parametrize(
    "init",
    init_params(
        xfail={
            "dumb-init": "dumb-init exits 2 when exec fails",
            "catatonit": "catatonit reports a failed exec as exit 1",
        }
    ),
    indirect=True,
)
def test_command_not_found_gives_127(init, run, cmd):
    r = run(init.argv([cmd]))
    assert r.returncode == 127, r.describe()


@pytest.mark.parametrize("kind", ["no-exec-bit", "directory"])
@pytest.mark.parametrize(
    "init",
    init_params(
        xfail={
            "dumb-init": "dumb-init exits 2 when exec fails",
            "catatonit": "catatonit reports a failed exec as exit 1",
        }
    ),
    indirect=True,
)
def test_not_executable_gives_126(init, run, workdir, kind):
    if kind == "directory":
        target = workdir / "adir"
        target.mkdir()
    else:
        target = workdir / "script"
        target.write_text("#!/bin/sh\nexit 0\n")
        os.chmod(target, 0o644)
    r = run(init.argv([target]))
    assert r.returncode == 126, r.describe()


# --------------------------------------------------------------------------- the node role's own codes


def node_exits(run, workdir, **extra):
    """Runs `kvinit node` to its end; returns the result, its error lines and the port."""
    port = free_port()
    r = run([KVINIT_BIN, "node"], env=node_env(workdir, port, **extra))
    errors = [line for line in r.stderr.splitlines() if line.startswith("error kvinit")]
    return r, errors, port


def fake_server(workdir, version_line):
    """An executable that answers --version like a server would (or with nothing, for None)."""
    path = Path(workdir) / "fake-server"
    text = "#!/bin/sh\n" + (f"echo '{version_line}'\n" if version_line else "") + "exit 0\n"
    path.write_text(text)
    os.chmod(path, 0o755)
    return path


def nothing_written(workdir, port):
    return not (Path(workdir) / f"run-{port}").exists() and not (Path(workdir) / f"data-{port}").exists()


def test_node_without_its_server_gives_127(run, workdir):
    missing = Path(workdir) / "no-such" / "redis-server"
    r, errors, port = node_exits(run, workdir, REDIS_SERVER_BIN=missing)
    assert r.returncode == 127, r.describe()
    assert errors == [f"error kvinit[1]: REDIS_SERVER_BIN='{missing}': No such file or directory"], r.stderr
    assert nothing_written(workdir, port)


@pytest.mark.parametrize("role", ["render", "node"])
def test_no_server_on_path_gives_127(workdir, role):
    port = free_port()
    env = {k: v for k, v in node_env(workdir, port).items() if v is not None}
    env["PATH"] = str(workdir)  # an empty directory: no valkey-server, no redis-server
    r = subprocess.run([str(KVINIT_BIN), role], env=env, capture_output=True, text=True, timeout=SHORT)
    assert r.returncode == 127, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error kvinit")]
    assert len(errors) == 1 and "neither valkey-server nor redis-server is on PATH" in errors[0], r.stderr
    assert nothing_written(workdir, port)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("not-executable", "': Permission denied"),
        ("says-nothing", "--version' did not say which server it is"),
        ("too-old", "is version 5.0.14: kvinit needs 6.0 or later"),
        ("lacks-a-directive", "REDIS_CLUSTER_ANNOUNCE_HOSTNAME needs cluster-announce-hostname, which Redis 6.0.16 "
                              "does not know"),
    ],
)
def test_node_with_a_server_that_cannot_work_gives_100(run, workdir, kind, message):
    extra = {}
    if kind == "not-executable":
        server = fake_server(workdir, "Redis server v=7.0.15 sha=00000000:0 malloc=libc bits=64 build=0")
        os.chmod(server, 0o644)
    elif kind == "says-nothing":
        server = fake_server(workdir, None)
    elif kind == "too-old":
        server = fake_server(workdir, "Redis server v=5.0.14 sha=00000000:0 malloc=libc bits=64 build=0")
    else:
        server = fake_server(workdir, "Redis server v=6.0.16 sha=00000000:0 malloc=libc bits=64 build=0")
        extra["REDIS_CLUSTER_ANNOUNCE_HOSTNAME"] = "node-0"
    r, errors, port = node_exits(run, workdir, REDIS_SERVER_BIN=server, **extra)
    assert r.returncode == 100, r.describe()
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert nothing_written(workdir, port)


@pytest.mark.parametrize("var", ["REDIS_DATA_DIR", "KVINIT_RENDERED_CONFIG"])
def test_node_whose_directory_cannot_be_made_gives_111(run, workdir, var):
    """A missing parent directory: ENOENT from mkdir is a failed system call (111), not a missing server (127)."""
    path = Path(workdir) / "no-such" / ("data" if var == "REDIS_DATA_DIR" else "run/redis.conf")
    r, errors, _ = node_exits(run, workdir, **{var: path})
    assert r.returncode == 111, r.describe()
    what = "cannot create it" if var == "REDIS_DATA_DIR" else "cannot create its directory"
    assert errors == [f"error kvinit[1]: {var}='{path}': {what}: No such file or directory"], r.stderr
