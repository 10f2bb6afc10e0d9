"""The child's privileges and starting state: capabilities, NoNewPrivs, seccomp deny list, --user, signal mask and
dispositions, file descriptors, process group."""

import grp
import os
import platform
import pwd
import re
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import SHORT, UNSHARE, init_params, others, parse_kv

ZERO_CAPS = "0000000000000000"
CAP_FIELDS = ["CapPrm", "CapEff", "CapInh", "CapBnd", "CapAmb"]
NO_HARDENING = others("does not drop privileges")
NO_USER = others("has no --user option: the child stays root")


def status_of(run, init, probe, kvinit=(), **kw):
    r = run(init.argv([probe, "status"], kvinit=list(kvinit)), **kw)
    assert r.returncode == 0, r.describe()
    return r.kv, r


# ------------------------------------------------------------------ capabilities, NoNewPrivs, seccomp


@pytest.mark.parametrize("init", init_params(xfail=NO_HARDENING), indirect=True)
def test_child_has_no_capabilities(init, probe, run):
    st, r = status_of(run, init, probe)
    assert {k: st[k] for k in CAP_FIELDS} == {k: ZERO_CAPS for k in CAP_FIELDS}, r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_HARDENING), indirect=True)
def test_child_has_no_new_privs(init, probe, run):
    st, r = status_of(run, init, probe)
    assert st["NoNewPrivs"] == "1", r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_HARDENING), indirect=True)
def test_child_has_a_seccomp_filter(init, probe, run):
    st, r = status_of(run, init, probe)
    assert st["Seccomp"] == "2", r.describe()


def test_seccomp_no_keeps_the_rest_and_warns(kvinit, probe, run):
    st, r = status_of(run, kvinit, probe, kvinit=["--seccomp=no"])
    assert st["Seccomp"] == "0", r.describe()
    assert {k: st[k] for k in CAP_FIELDS} == {k: ZERO_CAPS for k in CAP_FIELDS}, r.describe()
    assert st["NoNewPrivs"] == "1", r.describe()
    assert any(line.startswith("warn") for line in r.stderr.splitlines()), f"no warning\n{r.describe()}"


# ------------------------------------------------------------------ the deny list
#
# `probe seccomp-reach NAME` tells whether a call gets past the filters the child runs under: it stacks a filter of
# its own that hands the call to the probe (SECCOMP_RET_USER_NOTIF), which an earlier filter's ERRNO or KILL
# overrides. So a call the probe sees is one kvinit's filter let through, whatever the child's capabilities: a
# child without CAP_SYS_ADMIN gets EPERM from pivot_root with no filter at all, but the probe still sees that call.

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_deny_list():
    """The system calls the README promises EPERM for: the backquoted words after "answers EPERM to:"."""
    text = " ".join(README.read_text().split())
    m = re.search(r"The seccomp filter answers EPERM to: `([a-z0-9_ ]+)`, and to `clone` with any namespace flag",
                  text)
    assert m, "the README's deny list was not found (Hardening section)"
    names = m.group(1).split()
    assert len(names) >= 40, names
    return names


DENIED = readme_deny_list()
CLONE_NAMESPACES = ["clone_newuser", "clone_newns", "clone_newpid", "clone_newnet", "clone_newuts", "clone_newipc",
                    "clone_newcgroup"]
ALLOWED_CALLS = ["getpid", "clone_plain"]
ALLOWED = ["fork", "clone_plain", "thread"]  # fork(), clone() without namespace flags, pthread_create()
NOT_ON_ARCH = "NOT-ON-ARCH"

_reach_cache = {}


def reach_results(run, init, probe, kvinit=()):
    """{name: REACHED | EPERM | ENOSYS | SIGNAL-N | NOT-ON-ARCH | ...} for every call below, in one run."""
    key = (init.name, tuple(kvinit))
    if key not in _reach_cache:
        names = [*DENIED, *CLONE_NAMESPACES, *ALLOWED_CALLS, "clone3"]
        r = run(init.argv([probe, "seccomp-reach", *names], kvinit=list(kvinit)), timeout=60)
        assert r.returncode == 0, r.describe()
        got = r.kv
        assert set(got) >= set(names), f"the probe answered nothing for {set(names) - set(got)}\n{r.describe()}"
        unknown = [n for n in names if got[n] == "UNKNOWN" or got[n].startswith("NO-LISTENER")]
        assert not unknown, f"tests/helpers/probe.c cannot probe {unknown}: {[got[n] for n in unknown]}"
        _reach_cache[key] = got
    return _reach_cache[key]


def _skip_if_not_on_arch(got, name):
    if got == NOT_ON_ARCH:
        pytest.skip(f"{name} is not a system call on {platform.machine()}")


@pytest.mark.parametrize("name", DENIED + CLONE_NAMESPACES)
@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_denied_syscall_is_stopped_by_the_filter(init, probe, run, name):
    """Every call of the README's deny list, and clone with each namespace flag, gets EPERM from the filter
    itself: it never gets past it (with no filter the probe sees it, see the control below)."""
    got = reach_results(run, init, probe).get(name)
    _skip_if_not_on_arch(got, name)
    assert got == "EPERM", f"{name}: {got} (REACHED: the filter let it through)"


@pytest.mark.parametrize("name", DENIED + CLONE_NAMESPACES + ALLOWED_CALLS + ["clone3"])
def test_without_seccomp_every_probed_call_gets_through(kvinit, probe, run, name):
    """Control: with --seccomp=no the very same probe sees every call, so an EPERM above is the filter's."""
    got = reach_results(run, kvinit, probe, kvinit=["--seccomp=no"]).get(name)
    _skip_if_not_on_arch(got, name)
    assert got == "REACHED", f"{name}: {got}"


@pytest.mark.parametrize("name", ALLOWED_CALLS)
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_allowed_syscall_gets_through_the_filter(init, probe, run, name):
    """The filter is a deny list: getpid and clone without a namespace flag pass it."""
    assert reach_results(run, init, probe).get(name) == "REACHED"


@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_clone3_gets_enosys(init, probe, run):
    assert reach_results(run, init, probe).get("clone3") == "ENOSYS"


_syscall_cache = {}


def syscall_results(run, init, probe, kvinit=()):
    key = (init.name, tuple(kvinit))
    if key not in _syscall_cache:
        r = run(init.argv([probe, "syscalls", *ALLOWED, "x32_getpid", "i386_mount", "i386_unshare"],
                          kvinit=list(kvinit)), timeout=30)
        assert r.returncode == 0, r.describe()
        _syscall_cache[key] = r.kv
    return _syscall_cache[key]


@pytest.mark.parametrize("name", ALLOWED)
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_fork_and_threads_still_work(init, probe, run, name):
    """Plain clone()/fork() and pthread_create() (glibc tries clone3 first, then falls back to clone)."""
    assert syscall_results(run, init, probe).get(name) == "OK"


SIGSYS = f"SIGNAL-{int(signal.SIGSYS)}"


def _i386_abi_usable(probe):
    if platform.machine() != "x86_64":
        return False
    out = subprocess.run([probe, "syscalls", "i386_getpid", "i386_mount"], capture_output=True, text=True,
                         timeout=SHORT).stdout
    kv = parse_kv(out)
    return kv.get("i386_getpid") == "OK" and kv.get("i386_mount") == "EFAULT"


@pytest.mark.parametrize("name", ["i386_mount", "i386_unshare"])
@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_denied_syscall_via_i386_abi_kills_the_process(init, probe, run, name):
    """mount/unshare through `int $0x80` (the i386 ABI, other syscall numbers): the README promises the process is
    killed (SIGSYS), not merely refused."""
    if not _i386_abi_usable(probe):
        pytest.skip("the i386 syscall ABI is not available on this kernel")
    got = syscall_results(run, init, probe).get(name)
    assert got == SIGSYS, f"{name}: {got}, not killed"


@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_x32_abi_call_kills_the_process(init, probe, run):
    """A call with the x32 bit set (x86_64's other foreign ABI; the kernel need not support x32 for the filter to
    see it) kills the process; without the filter the kernel answers it (ENOSYS when x32 is not built in)."""
    if platform.machine() != "x86_64":
        pytest.skip(f"the x32 ABI exists on x86_64 only, not on {platform.machine()}")
    got = syscall_results(run, init, probe).get("x32_getpid")
    assert got == SIGSYS, f"x32 getpid: {got}, not killed"
    if init.is_kvinit:
        assert syscall_results(run, init, probe, kvinit=["--seccomp=no"]).get("x32_getpid") != SIGSYS


# ------------------------------------------------------------------ --user

REDIS = pwd.getpwnam("redis")
REDIS_GROUPS = {REDIS.pw_gid} | {g.gr_gid for g in grp.getgrall() if "redis" in g.gr_mem}


def _root_supplementary_groups():
    # the init inherits root's supplementary groups; the child must not keep them
    os.setgroups([0, 4, 27])


def _ids(st):
    return {k: int(st[k]) for k in ("uid", "euid", "suid", "gid", "egid", "sgid")}


EXTRA_GROUPS = {4401: "kvinit-test-a", 4402: "kvinit-test-b"}


def _etc_with_extra_groups(workdir):
    """A wrapper command that runs the test in a private mount namespace whose /etc is an overlay where the redis
    user is also a member of two more groups (one of them shared with another user), so the promise "with that
    user's supplementary groups" is checked on more than the primary group."""
    upper, work = workdir / "etc-upper", workdir / "etc-work"
    upper.mkdir()
    work.mkdir()
    lines = Path("/etc/group").read_text().rstrip("\n").split("\n")
    lines += [f"{EXTRA_GROUPS[4401]}:x:4401:redis", f"{EXTRA_GROUPS[4402]}:x:4402:daemon,redis,nobody"]
    (upper / "group").write_text("\n".join(lines) + "\n")
    script = (
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc || exit 99; "
        f'exec {" ".join(UNSHARE)} "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.mark.parametrize("init", init_params(xfail=NO_USER), indirect=True)
def test_user_by_name(init, probe, run, workdir):
    st, r = status_of(run, init, probe, kvinit=["--user", "redis"], preexec_fn=_root_supplementary_groups,
                      wrap=_etc_with_extra_groups(workdir))
    assert _ids(st) == dict(uid=REDIS.pw_uid, euid=REDIS.pw_uid, suid=REDIS.pw_uid, gid=REDIS.pw_gid,
                            egid=REDIS.pw_gid, sgid=REDIS.pw_gid), r.describe()
    groups = {int(g) for g in st["groups"].split(",") if g}
    want = REDIS_GROUPS | set(EXTRA_GROUPS)
    assert groups == want, f"supplementary groups {sorted(groups)}, redis has {sorted(want)} in the overlaid /etc/group"
    assert {k: st[k] for k in CAP_FIELDS} == {k: ZERO_CAPS for k in CAP_FIELDS}, r.describe()
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_USER), indirect=True)
def test_user_by_uid_and_gid(init, probe, run):
    st, r = status_of(run, init, probe, kvinit=["--user=4321:4322"], preexec_fn=_root_supplementary_groups)
    assert _ids(st) == dict(uid=4321, euid=4321, suid=4321, gid=4322, egid=4322, sgid=4322), r.describe()
    groups = {int(g) for g in st["groups"].split(",") if g}
    assert groups <= {4322}, f"supplementary groups {groups}"
    assert {k: st[k] for k in CAP_FIELDS} == {k: ZERO_CAPS for k in CAP_FIELDS}, r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_USER), indirect=True)
def test_user_by_uid_only(init, probe, run):
    st, r = status_of(run, init, probe, kvinit=["--user=4321"], preexec_fn=_root_supplementary_groups)
    assert (st["uid"], st["euid"], st["suid"]) == ("4321",) * 3, r.describe()
    groups = {int(g) for g in st["groups"].split(",") if g}
    assert not groups & {0, 4, 27}, f"root's supplementary groups were kept: {groups}"


@pytest.mark.parametrize("user", ["kvinit-no-such-user", "12x", "1:2:3"])
def test_bad_user_is_a_configuration_error(kvinit, probe, run, user):
    r = run(kvinit.argv([probe, "status"], kvinit=[f"--user={user}"]))
    assert r.returncode == 100, r.describe()
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "user" in lines[0] and user in lines[0], r.describe()
    assert "uid=" not in r.stdout, "the child ran"


# ------------------------------------------------------------------ signal mask, dispositions, fds, pgid


_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}.get(platform.machine())


def _ignore_glibc_internal_signals():
    """Leaves signals 32 and 33 ignored, as some launchers do: glibc's signal() refuses to touch them, so an init
    has to reset them with the raw system call."""
    if _RT_SIGACTION is None:
        return
    import ctypes

    class KSigaction(ctypes.Structure):
        _fields_ = [("handler", ctypes.c_void_p), ("flags", ctypes.c_ulong), ("restorer", ctypes.c_void_p),
                    ("mask", ctypes.c_uint64)]

    libc = ctypes.CDLL(None, use_errno=True)
    for sig in (32, 33):
        ksa = KSigaction(handler=1)  # SIG_IGN
        libc.syscall(_RT_SIGACTION, sig, ctypes.byref(ksa), None, 8)


def _dirty_signals():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGALRM})
    for s in (signal.SIGHUP, signal.SIGPIPE, signal.SIGALRM, signal.SIGTTOU):
        signal.signal(s, signal.SIG_IGN)
    _ignore_glibc_internal_signals()


@pytest.mark.parametrize(
    "init",
    init_params(
        xfail={
            "tini": "tini gives the child the signal mask it was started with",
            "catatonit": "catatonit leaves signals blocked in the child",
        }
    ),
    indirect=True,
)
def test_child_signal_mask_is_empty(init, probe, run):
    st, r = status_of(run, init, probe, preexec_fn=_dirty_signals)
    assert st["SigBlk"] == ZERO_CAPS, r.describe()


@pytest.mark.parametrize(
    "init",
    init_params(
        xfail={
            "tini": "tini passes signals it was started with ignored on to the child",
            "catatonit": "catatonit passes signals it was started with ignored on to the child",
            "dumb-init": "dumb-init resets with glibc's sigaction, which cannot reset signals 32 and 33",
        }
    ),
    indirect=True,
)
def test_child_signal_dispositions_are_default(init, probe, run):
    st, r = status_of(run, init, probe, preexec_fn=_dirty_signals)
    assert st["SigIgn"] == ZERO_CAPS, r.describe()


@pytest.mark.parametrize(
    "init",
    init_params(xfail=others("passes inherited file descriptors on to the child")),
    indirect=True,
)
def test_child_sees_only_fds_0_1_2(init, probe, run):
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        st, r = status_of(run, init, probe, pass_fds=[fd])
    finally:
        os.close(fd)
    assert st["fds"] == "0,1,2", r.describe()


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_child_is_its_own_process_group_leader(init, probe, run):
    st, r = status_of(run, init, probe)
    assert st["pgid"] == st["pid"], r.describe()
