"""The child's privileges and starting state: capabilities, NoNewPrivs, seccomp deny list, --user, signal mask and
dispositions, file descriptors, process group."""

import grp
import os
import platform
import pwd
import signal
import subprocess

import pytest

from conftest import SHORT, init_params, others, parse_kv

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

DENIED_EPERM = [
    "mount",
    "umount2",
    "pivot_root",
    "ptrace",  # PTRACE_TRACEME
    "ptrace_peek",  # PTRACE_PEEKDATA of a pid that does not exist
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "unshare",  # CLONE_NEWUTS
    "unshare_user",  # CLONE_NEWUSER, which needs no capability
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "open_by_handle_at",
    "userfaultfd",
    "clone_newuser",
    "clone_newns",
    "clone_newpid",
    "clone_newnet",
    "clone_newuts",
    "clone_newipc",
    "clone_newcgroup",
]
ALLOWED = ["fork", "clone_plain", "thread"]  # fork(), clone() without namespace flags, pthread_create()

# Calls whose arguments are rejected before any permission check (EFAULT, EINVAL, EBADF ...): they show that
# the probe's call reaches the kernel, so the EPERM above comes from the filter.
REACH_KERNEL = ["mount", "umount2", "bpf", "setns", "keyctl", "add_key", "process_vm_readv", "perf_event_open",
                "userfaultfd", "clone3"]

_syscall_cache = {}


def syscall_results(run, init, probe, kvinit=()):
    key = (init.name, tuple(kvinit))
    if key not in _syscall_cache:
        r = run(init.argv([probe, "syscalls"], kvinit=list(kvinit)), timeout=30)
        assert r.returncode == 0, r.describe()
        _syscall_cache[key] = r.kv
    return _syscall_cache[key]


@pytest.mark.parametrize("name", DENIED_EPERM)
@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_denied_syscall_gets_eperm(init, probe, run, name):
    assert syscall_results(run, init, probe).get(name) == "EPERM"


@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_clone3_gets_enosys(init, probe, run):
    assert syscall_results(run, init, probe).get("clone3") == "ENOSYS"


@pytest.mark.parametrize("name", ALLOWED)
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_fork_and_threads_still_work(init, probe, run, name):
    """Plain clone()/fork() and pthread_create() (glibc tries clone3 first, then falls back to clone)."""
    assert syscall_results(run, init, probe).get(name) == "OK"


def _i386_abi_usable(probe):
    if platform.machine() != "x86_64":
        return False
    out = subprocess.run([probe, "syscalls", "i386_getpid", "i386_mount"], capture_output=True, text=True,
                         timeout=SHORT).stdout
    kv = parse_kv(out)
    return kv.get("i386_getpid") == "OK" and kv.get("i386_mount") == "EFAULT"


@pytest.mark.parametrize("name", ["i386_mount", "i386_unshare"])
@pytest.mark.parametrize("init", init_params(xfail=others("has no seccomp filter")), indirect=True)
def test_denied_syscall_via_i386_abi_is_blocked_too(init, probe, run, name):
    """mount/unshare through `int $0x80` (the i386 ABI, other syscall numbers) must not reach the kernel."""
    if not _i386_abi_usable(probe):
        pytest.skip("the i386 syscall ABI is not available on this kernel")
    got = syscall_results(run, init, probe).get(name)
    assert got in ("EPERM", "ENOSYS") or got.startswith("SIGNAL-"), f"{name} got through: {got}"


@pytest.mark.parametrize("name", REACH_KERNEL)
def test_without_seccomp_the_probe_calls_reach_the_kernel(kvinit, probe, run, name):
    """Control for the deny-list tests: with --seccomp=no the same calls fail with their argument errors."""
    got = syscall_results(run, kvinit, probe, kvinit=["--seccomp=no"]).get(name)
    assert got not in (None, "EPERM"), f"{name}: {got}"


# ------------------------------------------------------------------ --user

REDIS = pwd.getpwnam("redis")
REDIS_GROUPS = {REDIS.pw_gid} | {g.gr_gid for g in grp.getgrall() if "redis" in g.gr_mem}


def _root_supplementary_groups():
    # the init inherits root's supplementary groups; the child must not keep them
    os.setgroups([0, 4, 27])


def _ids(st):
    return {k: int(st[k]) for k in ("uid", "euid", "suid", "gid", "egid", "sgid")}


@pytest.mark.parametrize("init", init_params(xfail=NO_USER), indirect=True)
def test_user_by_name(init, probe, run):
    st, r = status_of(run, init, probe, kvinit=["--user", "redis"], preexec_fn=_root_supplementary_groups)
    assert _ids(st) == dict(uid=REDIS.pw_uid, euid=REDIS.pw_uid, suid=REDIS.pw_uid, gid=REDIS.pw_gid,
                            egid=REDIS.pw_gid, sgid=REDIS.pw_gid), r.describe()
    groups = {int(g) for g in st["groups"].split(",") if g}
    assert groups <= REDIS_GROUPS, f"supplementary groups {groups}, redis has {REDIS_GROUPS}"
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
