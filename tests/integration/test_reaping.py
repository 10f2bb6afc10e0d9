"""Zombie reaping: as PID 1 and, not being PID 1, as a subreaper under a parent that never reaps."""

import signal

import pytest

from conftest import (
    LONG,
    SHORT,
    descendants,
    fmt_procs,
    init_params,
    parse_kv,
    read_text,
    wait_kv_file,
    wait_until,
    zombies,
)

N_ORPHANS = 100


def _reparent_lines(log):
    return [parse_kv(line.replace(" ", "\n")) for line in read_text(log).splitlines() if line.startswith("reparent=")]


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_orphans_reaped_as_pid1(init, probe, launch, workdir):
    """100 grandchildren orphaned below PID 1 are all reaped while the child keeps running: no <defunct> left."""
    log, ready = workdir / "orphans.log", workdir / "ready"
    # each orphan lives 300 ms after being orphaned; the probe itself stays up 60 s
    p = launch(init.argv([probe, "orphans", N_ORPHANS, 300, 60, log, ready]))
    info = wait_kv_file(ready, launched=p)
    probe_ns_pid = int(info["pid"])
    top = p.ns_init()

    # every orphan was reparented to PID 1 of the namespace (the init)
    lines = wait_until(
        lambda: (lambda ls: ls if len(ls) >= N_ORPHANS else None)(_reparent_lines(log)),
        LONG,
        f"{N_ORPHANS} orphans to report their new parent",
        launched=p,
    )
    assert len(lines) == N_ORPHANS
    assert {int(entry["reparent"]) for entry in lines} == {1}

    # ... and all of them are gone, not left as zombies: only the probe remains below the init
    def only_probe_left():
        rest = [i for i in descendants(top) if i["nspid"][-1] != probe_ns_pid]
        return not rest

    try:
        wait_until(only_probe_left, LONG, "the orphans to be reaped", launched=p)
    except AssertionError:
        rest = [i for i in descendants(top) if i["nspid"][-1] != probe_ns_pid]
        raise AssertionError(f"{len(zombies(rest))} zombies / {len(rest)} left: {fmt_procs(rest[:10])}") from None
    assert p.poll() is None, "the init exited while its child was still running"

    p.send(signal.SIGTERM)
    rc = p.wait(SHORT)
    assert rc == 128 + signal.SIGTERM, p.describe()


@pytest.mark.parametrize(
    "init",
    init_params(
        xfail={
            "dumb-init": "dumb-init does not set PR_SET_CHILD_SUBREAPER: orphans go to the non-reaping PID 1",
        }
    ),
    indirect=True,
)
def test_subreaper_under_nonreaping_parent(init, probe, launch_nonpid1, workdir):
    """Not PID 1: orphans are reparented to the init (PR_SET_CHILD_SUBREAPER) and reaped by it, although the
    real PID 1 above it never reaps anything."""
    log, ready = workdir / "orphans.log", workdir / "ready"
    n = 50
    p, status = launch_nonpid1(init.argv([probe, "orphans", n, 300, 60, log, ready]))
    info = wait_kv_file(ready, launched=p)
    probe_ns_pid, init_ns_pid = int(info["pid"]), int(info["ppid"])
    top = p.ns_init()
    init_host = p.inner()
    assert init_ns_pid != 1, "the init was expected to run as PID 2 below noreap-parent"

    lines = wait_until(
        lambda: (lambda ls: ls if len(ls) >= n else None)(_reparent_lines(log)),
        LONG,
        f"{n} orphans to report their new parent",
        launched=p,
    )
    parents = {int(entry["reparent"]) for entry in lines}
    assert parents == {init_ns_pid}, f"orphans were reparented to {parents}, not to the init ({init_ns_pid})"

    def clean():
        rest = [i for i in descendants(top) if i["pid"] != init_host and i["nspid"][-1] != probe_ns_pid]
        return not rest

    try:
        wait_until(clean, LONG, "the orphans to be reaped", launched=p)
    except AssertionError:
        rest = [i for i in descendants(top) if i["pid"] != init_host and i["nspid"][-1] != probe_ns_pid]
        raise AssertionError(f"{len(zombies(rest))} zombies / {len(rest)} left: {fmt_procs(rest[:10])}") from None

    p.send(signal.SIGTERM, pid=init_host)
    st = wait_kv_file(status, SHORT, launched=p, what="the init to exit")
    assert int(st["exit"]) == 128 + signal.SIGTERM
