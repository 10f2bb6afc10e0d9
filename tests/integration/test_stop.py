"""Stop: forward SIGTERM/SIGINT, wait --stop-grace, SIGKILL the child's whole process group, reap, exit."""

import signal
import time

import pytest

from conftest import SHORT, descendants, fmt_procs, host_pid_of, init_params, is_alive, others, wait_kv_file

GRACE = dict(kvinit=["--stop-grace=1s"])
NO_GRACE_KILL = others("has no stop grace period: a child ignoring SIGTERM is never killed")

# Upper bound for "killed after the 1 s grace": far below kvinit's 8 s default, so an ignored
# --stop-grace fails too.
GRACE_DEADLINE = 5.0


def assert_nothing_left(top):
    """Once the init has exited, nothing may remain below the non-reaping PID 1, not even a zombie: the init
    must have reaped everything it killed before exiting."""
    left = descendants(top)
    if left:
        raise AssertionError(f"left behind under the non-reaping PID 1 after the init exited: {fmt_procs(left)}")


@pytest.mark.parametrize("init", init_params(xfail=NO_GRACE_KILL), indirect=True)
def test_child_ignoring_sigterm_is_killed_after_grace(init, probe, launch, workdir):
    """PID 1: the child and its grandchild ignore SIGTERM; after the grace both are SIGKILLed and the init
    exits 128+9."""
    pids = workdir / "pids"
    p = launch(init.argv([probe, "ignore-term", pids, 60], **GRACE))
    wait_kv_file(pids, launched=p)
    t0 = time.monotonic()
    p.send(signal.SIGTERM)
    rc = p.wait(GRACE_DEADLINE)
    elapsed = time.monotonic() - t0
    assert rc == 128 + signal.SIGKILL, p.describe()
    assert elapsed >= 0.9, f"killed after {elapsed:.2f}s, before the 1s grace period"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("init", init_params(xfail=NO_GRACE_KILL), indirect=True)
def test_grace_kill_takes_grandchildren_and_reaps_them(init, probe, launch_nonpid1, workdir, sig):
    """Not PID 1 (so the namespace does not clean up for it): after the grace the child's grandchild is dead
    too, and nothing is left behind, not even a zombie, when the init exits."""
    pids = workdir / "pids"
    p, status = launch_nonpid1(init.argv([probe, "ignore-term", pids, 60], **GRACE))
    names = wait_kv_file(pids, launched=p)
    top, target = p.ns_init(), p.inner()
    child = host_pid_of(names["child"], top)
    grandchild = host_pid_of(names["grandchild"], top)
    assert child and grandchild, fmt_procs(descendants(top))
    t0 = time.monotonic()
    p.send(getattr(signal, sig), pid=target)
    st = wait_kv_file(status, GRACE_DEADLINE, launched=p, what="the init to exit")
    elapsed = time.monotonic() - t0
    assert int(st["exit"]) == 128 + signal.SIGKILL, p.describe()
    assert elapsed >= 0.9, f"killed after {elapsed:.2f}s, before the 1s grace period"
    assert not is_alive(child)
    assert not is_alive(grandchild), "the grandchild in the child's process group survived"
    assert_nothing_left(top)


@pytest.mark.parametrize(
    "init",
    init_params(
        xfail=others("does not kill the child's process group when the child exits: the grandchild survives")
    ),
    indirect=True,
)
def test_child_exit_kills_its_process_group(init, probe, launch_nonpid1, workdir):
    """The child exits 0 on SIGTERM but leaves a grandchild (same process group) that ignores SIGTERM: the init
    SIGKILLs the group right away (not after the 30 s grace), reaps it, and exits 0."""
    pids = workdir / "pids"
    p, status = launch_nonpid1(init.argv([probe, "term-leave", pids, 60], kvinit=["--stop-grace=30s"]))
    names = wait_kv_file(pids, launched=p)
    top, target = p.ns_init(), p.inner()
    grandchild = host_pid_of(names["grandchild"], top)
    assert grandchild, fmt_procs(descendants(top))
    p.send(signal.SIGTERM, pid=target)
    st = wait_kv_file(status, SHORT, launched=p, what="the init to exit")
    assert int(st["exit"]) == 0, p.describe()
    assert not is_alive(grandchild), "the grandchild in the child's process group survived"
    assert_nothing_left(top)
