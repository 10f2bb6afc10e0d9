"""Shared fixtures and helpers for the kvinit integration tests.

Every test runs its init inside a fresh PID namespace:

    unshare --pid --fork --mount-proc <init> ...

so the init under test is PID 1 there, and killing that PID 1 with SIGKILL (from
this, the parent, namespace) tears down everything the test started.  Tests that
need the init *not* to be PID 1 put `probe noreap-parent` in front of it: that
becomes PID 1 of the namespace, reaps only its direct child and never anything
else, so orphans that are not collected by a subreaper stay visible as zombies.

The behaviour tests are parametrized over kvinit and the Debian packages of tini,
dumb-init and catatonit (see INITS).  Where another init lacks a feature the test
is marked xfail(strict=True) for it, so the suite shows it can fail.

The server: the host's redis-server (Debian 12's) by default. `--server NAME` (or KVINIT_SERVER=NAME) runs the
tests against a server of the matrix instead, unpacked from its Debian suite by `make servers` (images/servers.sh:
redis-7.0, redis-8.0, valkey-8.0, valkey-8.1, valkey-9) and started through that suite's loader. The tests marked
`matrix` are the subset `make matrix` (tests/matrix.sh) runs against every server: `-m matrix --server NAME`.

Binaries: KVINIT_BIN (default build/kvinit), KVINIT_PROBE (default build/tests/probe), KVINIT_SERVERS (the
unpacked servers, default build/servers).
Run with:  /usr/bin/python3 -m pytest tests/integration
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import sys

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pylib"))  # helpers shared with the other suite


def _path_from_env(var, default):
    value = os.environ.get(var)
    return Path(value) if value else REPO / default


KVINIT_BIN = _path_from_env("KVINIT_BIN", "build/kvinit")
PROBE_BIN = _path_from_env("KVINIT_PROBE", "build/tests/probe")
SERVERS_DIR = _path_from_env("KVINIT_SERVERS", "build/servers")

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]

# Generous bounds: the machine is shared and noisy.  Every wait is bounded by one of these.
SHORT = 10.0  # something that should take milliseconds
LONG = 30.0  # something that involves a real program starting (redis) or many processes

# Largest file anything a test starts may write (stdout/stderr are files).
OUTPUT_LIMIT = 64 * 1024 * 1024

# The forwarded signals of the contract.
FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"]


# --------------------------------------------------------------------------- the server


class Server:
    """The server the tests start: `host` (the host's redis-server and redis-cli, as found on PATH) or a server of
    the matrix (build/servers/NAME/server, written by images/build-rootfs.sh: its wrappers, flavor and version).
    One object for the whole run; select() is called once, from pytest_configure."""

    def __init__(self):
        self.select("host")

    def select(self, name):
        self.name = name
        self._release = None
        if name == "host":
            self.flavor, self.suite, self.version = "redis", "host", None
            self.server = shutil.which("redis-server") or "/usr/bin/redis-server"
            self.cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
            return
        info = SERVERS_DIR / name / "server"
        if not info.is_file():
            known = sorted(p.parent.name for p in SERVERS_DIR.glob("*/server"))
            raise pytest.UsageError(f"--server={name}: no {info} (`make servers` unpacks the matrix; unpacked here: "
                                    f"{', '.join(known) or 'none'})")
        kv = parse_kv(info.read_text())
        self.flavor, self.suite, self.version = kv["flavor"], kv["suite"], kv["version"]
        self.server, self.cli = kv["server"], kv["cli"]

    @property
    def release(self):
        """(major, minor, patch) as the server says it (`--version`: "v=9.1.2"), read once; (0, 0, 0) when it
        cannot say."""
        if self._release is None:
            try:
                out = subprocess.run([self.server, "--version"], capture_output=True, text=True, timeout=SHORT).stdout
            except OSError:
                out = ""
            m = re.search(r" v=(\d+)\.(\d+)\.(\d+)", out)
            self._release = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
        return self._release

    def knows(self, valkey=None, redis=None):
        """True when this server is at least the given release of its flavor (None: no release of it knows)."""
        first = valkey if self.flavor == "valkey" else redis
        return first is not None and self.release >= first

    @property
    def is_host(self):
        return self.name == "host"

    @property
    def process_name(self):
        """The server process's name (/proc/PID/comm): redis-server or valkey-server, wrappers included."""
        return os.path.basename(self.server)

    @property
    def env(self):
        """What a node's environment needs to start this server: nothing for the host's (kvinit finds it)."""
        return {} if self.is_host else {"REDIS_SERVER_BIN": self.server}

    def __repr__(self):
        return f"Server({self.name}: {self.server}{'' if self.is_host else f', {self.version} from {self.suite}'})"


SERVER = Server()


def pytest_addoption(parser):
    parser.addoption("--server", default=os.environ.get("KVINIT_SERVER") or "host",
                     help="the server the tests start: host (default: the host's redis-server) or a name of the "
                          "matrix unpacked by `make servers` (redis-7.0, redis-8.0, valkey-8.0, valkey-8.1, valkey-9)")


def pytest_configure(config):
    config.addinivalue_line("markers", "matrix: run against every server of the matrix (make matrix)")
    SERVER.select(config.getoption("--server"))


def pytest_report_header(config):
    return f"server: {SERVER!r}"


# --------------------------------------------------------------------------- the inits


class Init:
    """One init implementation and how to put a command under it."""

    def __init__(self, name, path):
        self.name = name
        self.path = str(path)

    @property
    def is_kvinit(self):
        return self.name == "kvinit"

    def argv(self, cmd, *, kvinit=(), tini=(), dumb_init=(), catatonit=()):
        """The command line running `cmd` under this init; the keyword lists are extra options per init."""
        cmd = [str(c) for c in cmd]
        if self.name == "kvinit":
            return [self.path, "run", *kvinit, "--", *cmd]
        if self.name == "tini":
            return [self.path, "-s", *tini, "--", *cmd]
        if self.name == "dumb-init":
            return [self.path, *dumb_init, *cmd]
        if self.name == "catatonit":
            return [self.path, *catatonit, "--", *cmd]
        raise AssertionError(self.name)

    def __repr__(self):
        return f"Init({self.name})"


INITS = {
    "kvinit": KVINIT_BIN,
    "tini": Path("/usr/bin/tini"),
    "dumb-init": Path("/usr/bin/dumb-init"),
    "catatonit": Path("/usr/bin/catatonit"),
}


def init_params(xfail=None, skip=None):
    """pytest params for the `init` fixture.

    xfail: {init name: reason} -> xfail(strict=True); use only where the failure was observed.
    skip:  {init name: reason} -> skip; the behaviour does not apply to that init.
    """
    xfail = xfail or {}
    skip = skip or {}
    for name in list(xfail) + list(skip):
        assert name in INITS, name
    params = []
    for name in INITS:
        marks = []
        if name in xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=xfail[name]))
        if name in skip:
            marks.append(pytest.mark.skip(reason=skip[name]))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


OTHERS = ("tini", "dumb-init", "catatonit")


def others(reason):
    """{name: reason} for the three other inits."""
    return {name: reason for name in OTHERS}


def kvinit_only(reason="kvinit-only option"):
    return init_params(skip=others(reason))


@pytest.fixture
def init(request):
    name = getattr(request, "param", "kvinit")
    path = INITS[name]
    if not (path.is_file() and os.access(path, os.X_OK)):
        if name == "kvinit":
            pytest.fail(f"kvinit binary not found at {path} (run make, or set KVINIT_BIN)")
        pytest.skip(f"{name} not installed at {path}")
    return Init(name, path)


@pytest.fixture
def kvinit():
    if not (KVINIT_BIN.is_file() and os.access(KVINIT_BIN, os.X_OK)):
        pytest.fail(f"kvinit binary not found at {KVINIT_BIN} (run make, or set KVINIT_BIN)")
    return Init("kvinit", KVINIT_BIN)


# --------------------------------------------------------------------------- files and dirs


@pytest.fixture(scope="session")
def public_base():
    """A world-traversable temporary directory, so children running as another user can reach it."""
    base = Path(tempfile.mkdtemp(prefix="kvinit-it-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def probe(public_base):
    """Path of the probe helper, copied where every user can execute it."""
    if not (PROBE_BIN.is_file() and os.access(PROBE_BIN, os.X_OK)):
        pytest.fail(f"probe helper not found at {PROBE_BIN} (run make, or set KVINIT_PROBE)")
    bindir = public_base / "bin"
    bindir.mkdir(exist_ok=True)
    os.chmod(bindir, 0o755)
    dst = bindir / "probe"
    shutil.copy2(PROBE_BIN, dst)
    os.chmod(dst, 0o755)
    return str(dst)


_counter = [0]


@pytest.fixture
def workdir(public_base, request):
    """Per-test directory, writable by every user (children may run as another uid)."""
    if os.geteuid() != 0:
        pytest.skip("the integration tests need root (PID namespaces, --user, capabilities)")
    _counter[0] += 1
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:80]
    d = public_base / f"{_counter[0]:04d}-{name}"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


def parse_kv(text):
    """key=value lines -> dict (last one wins); other lines are ignored."""
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def read_text(path):
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------- /proc


def read_proc(pid):
    """Fields of /proc/PID/status we need, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    info = {"pid": int(pid)}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "Name":
            info["name"] = value
        elif key == "State":
            info["state"] = value.split()[0] if value else "?"
        elif key == "PPid":
            info["ppid"] = int(value)
        elif key == "NSpid":
            info["nspid"] = [int(x) for x in value.split()]
        elif key in ("Uid", "Gid"):
            info[key.lower()] = [int(x) for x in value.split()]
        elif key.startswith("Cap") or key in ("NoNewPrivs", "Seccomp", "SigBlk", "SigIgn"):
            info[key] = value
    return info


def proc_table():
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_proc(entry)
            if info is not None and "ppid" in info:
                table[info["pid"]] = info
    return table


def descendants(root, table=None):
    """All processes below host pid `root` (zombies included), as read_proc dicts."""
    table = proc_table() if table is None else table
    children = {}
    for info in table.values():
        children.setdefault(info["ppid"], []).append(info)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child["pid"])
    return out


def children_of(pid, table=None):
    table = proc_table() if table is None else table
    return [info for info in table.values() if info["ppid"] == pid]


def host_pid_of(ns_pid, root):
    """Host pid of the process with innermost pid `ns_pid` below host pid `root`, or None."""
    for info in descendants(root):
        if info.get("nspid") and info["nspid"][-1] == int(ns_pid):
            return info["pid"]
    return None


def is_alive(host_pid):
    """True when the process exists and is not a zombie."""
    info = read_proc(host_pid)
    return info is not None and info.get("state") not in ("Z", "X")


# --------------------------------------------------------------------------- waiting


def wait_until(predicate, timeout, what, interval=0.02, launched=None):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds.

    With `launched`, also fail early (with its output) when that process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if launched is not None and launched.poll() is not None:
            value = predicate()
            if value:
                return value
            raise AssertionError(
                f"{what}: the init exited first with {launched.returncode}\n{launched.describe()}"
            )
        if time.monotonic() > deadline:
            extra = f"\n{launched.describe()}" if launched is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def wait_kv_file(path, timeout=SHORT, launched=None, what=None):
    """Wait for a key=value file written atomically by the probe and parse it."""
    path = Path(path)
    wait_until(path.exists, timeout, what or f"{path.name} to appear", launched=launched)
    return parse_kv(path.read_text())


# --------------------------------------------------------------------------- launching


class Launched:
    """A command started under `unshare --pid --fork --mount-proc`, with stdout/stderr in files."""

    def __init__(self, argv, workdir, index, *, env=None, pass_fds=(), preexec_fn=None, wrap=None):
        self.argv = [str(a) for a in argv]
        wrap = UNSHARE if wrap is None else wrap
        self.full_argv = [*wrap, *self.argv]
        self.stdout_path = Path(workdir) / f"launch{index}.stdout"
        self.stderr_path = Path(workdir) / f"launch{index}.stderr"
        self._ns_init = None
        run_env = dict(os.environ)
        for key in list(run_env):
            if key.startswith("KVINIT_") and key not in ("KVINIT_BIN", "KVINIT_PROBE"):
                del run_env[key]
        if env:
            for key, value in env.items():
                if value is None:
                    run_env.pop(key, None)
                else:
                    run_env[key] = str(value)
        def preexec():
            # A runaway child (say, one that prints forever) must not fill the disk: writes past the limit
            # raise SIGXFSZ.  The limit is inherited through the init by everything the test starts.
            resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
            if preexec_fn is not None:
                preexec_fn()

        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.full_argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=run_env,
                pass_fds=tuple(pass_fds),
                preexec_fn=preexec,
                start_new_session=True,
                close_fds=True,
            )
        self.started = time.monotonic()
        self.ended = None

    # -- state
    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        rc = self.proc.poll()
        if rc is not None and self.ended is None:
            self.ended = time.monotonic()
        return rc

    @property
    def stdout(self):
        return read_text(self.stdout_path)

    @property
    def stderr(self):
        return read_text(self.stderr_path)

    def describe(self):
        return (
            f"command: {' '.join(self.full_argv)}\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )

    # -- the namespace's PID 1 (the init under test, or noreap-parent)
    def ns_init(self, timeout=SHORT):
        """Host pid of PID 1 of the new namespace (the child of unshare)."""
        if self._ns_init is None:

            def find():
                kids = children_of(self.proc.pid)
                return kids[0]["pid"] if kids else None

            self._ns_init = wait_until(find, timeout, "unshare to fork the namespace init", launched=self)
        return self._ns_init

    def inner(self, timeout=SHORT):
        """Host pid of the first child of the namespace's PID 1, which has pid 2 in the namespace (the init
        when run under noreap-parent)."""
        top = self.ns_init()

        def find():
            for kid in children_of(top):
                if kid.get("nspid", [0])[-1] == 2:
                    return kid["pid"]
            return None

        return wait_until(find, timeout, "the namespace init's child", launched=self)

    def send(self, sig, pid=None):
        pid = self.ns_init() if pid is None else pid
        os.kill(pid, sig)

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"did not exit within {timeout:.0f}s\n{self.describe()}"
            ) from None
        if self.ended is None:
            self.ended = time.monotonic()
        return rc

    def kill(self):
        """SIGKILL the namespace (by its PID 1's pid), then unshare; reap.  Safe to call twice."""
        if self.proc.poll() is None:
            try:
                kids = children_of(self.proc.pid)
            except OSError:
                kids = []
            for kid in kids:
                try:
                    os.kill(kid["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=SHORT)
        except subprocess.TimeoutExpired:
            pass


class Result:
    def __init__(self, launched, returncode):
        self.launched = launched
        self.returncode = returncode
        self.stdout = launched.stdout
        self.stderr = launched.stderr
        self.elapsed = (launched.ended or time.monotonic()) - launched.started

    @property
    def kv(self):
        return parse_kv(self.stdout)

    def describe(self):
        return f"exit {self.returncode}\n{self.launched.describe()}"


@pytest.fixture
def launch(workdir):
    """launch(argv, **kw) -> Launched; everything launched is killed and reaped at teardown."""
    started = []

    def _launch(argv, **kw):
        launched = Launched(argv, workdir, len(started), **kw)
        started.append(launched)
        return launched

    yield _launch
    for launched in started:
        launched.kill()


@pytest.fixture
def run(launch):
    """run(argv, timeout=SHORT, **kw) -> Result, for commands that end by themselves."""

    def _run(argv, timeout=SHORT, **kw):
        launched = launch(argv, **kw)
        rc = launched.wait(timeout)
        return Result(launched, rc)

    return _run


@pytest.fixture
def launch_nonpid1(launch, probe, workdir):
    """launch_nonpid1(init_argv) -> (Launched, status_path): the init runs as PID 2 under a parent that
    never reaps anything but it; status_path receives `exit=N` when the init exits."""

    def _launch(argv, linger=300, **kw):
        status = workdir / f"noreap-status-{time.monotonic_ns()}"
        launched = launch([probe, "noreap-parent", status, str(linger), "--", *argv], **kw)
        return launched, status

    return _launch


def signum(name):
    return int(getattr(signal, name))


def zombies(infos):
    return [i for i in infos if i.get("state") == "Z"]


def fmt_procs(infos):
    return ", ".join(
        f"pid {i['pid']} (pid {i.get('nspid', [0])[-1]} in its namespace, {i.get('name')}, state {i.get('state')}, "
        f"ppid {i.get('ppid')})"
        for i in infos
    )
