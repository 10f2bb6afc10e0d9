"""Restart policy: on-failure/always, backoff 0, 1s, 2s, ... capped at --backoff-max, reset after --backoff-reset,
give up after --max-restarts, signals while waiting to restart, and no restart after a forwarded signal.

The child is `probe runs LOG SPEC`: every start appends "start I T PID" and "exit I T CODE" to LOG (T is
CLOCK_MONOTONIC), so the delays between an exit and the next start can be measured.
"""

import signal

import pytest

from conftest import LONG, SHORT, descendants, init_params, others, read_text, signum, wait_until

NO_RESTART = others("has no restart policy")

# Delays: "immediate" must be below IMMEDIATE; a delay of D seconds must lie in [D - EARLY, D + LATE).
IMMEDIATE = 0.8
EARLY = 0.1
LATE = 0.9


def runs(log):
    """[(start_time, exit_time or None)] per run, from the probe's log."""
    starts, exits = {}, {}
    for line in read_text(log).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("start", "exit"):
            (starts if parts[0] == "start" else exits)[int(parts[1])] = float(parts[2])
    return [(starts[i], exits.get(i)) for i in sorted(starts)]


def gaps(log):
    """Delay between the exit of run i and the start of run i+1."""
    r = runs(log)
    return [r[i + 1][0] - r[i][1] for i in range(len(r) - 1)]


def assert_delay(gap, seconds, what):
    if seconds == 0:
        assert gap < IMMEDIATE, f"{what}: expected an immediate restart, waited {gap:.2f}s"
    else:
        assert seconds - EARLY <= gap < seconds + LATE, f"{what}: expected a {seconds}s delay, waited {gap:.2f}s"


@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_backoff_doubles_is_capped_and_gives_up_after_max_restarts(init, probe, run, workdir):
    """--max-restarts=4 --backoff-max=2s, child always exits 3: delays 0, 1s, 2s, 2s (capped, not 4s), then the
    5th failure in a row gives up with the last status, 3."""
    log = workdir / "runs.log"
    r = run(
        init.argv(
            [probe, "runs", log, "0:3"],
            kvinit=["--restart=on-failure", "--max-restarts=4", "--backoff-max=2s", "--backoff-reset=60s"],
        ),
        timeout=LONG,
    )
    assert len(runs(log)) == 5, f"expected 1 start + 4 restarts, got {len(runs(log))}\n{r.describe()}"
    g = gaps(log)
    assert_delay(g[0], 0, "1st restart")
    assert_delay(g[1], 1, "2nd restart")
    assert_delay(g[2], 2, "3rd restart")
    assert_delay(g[3], 2, "4th restart (capped by --backoff-max=2s)")
    assert r.returncode == 3, r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_on_failure_stops_restarting_after_success(init, probe, run, workdir):
    log = workdir / "runs.log"
    r = run(init.argv([probe, "runs", log, "0:5,0:0"], kvinit=["--restart=on-failure", "--backoff-max=1s"]))
    assert len(runs(log)) == 2, r.describe()
    assert r.returncode == 0, r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_always_restarts_after_success_too(init, probe, run, workdir):
    log = workdir / "runs.log"
    r = run(
        init.argv([probe, "runs", log, "0:0"], kvinit=["--restart=always", "--max-restarts=2", "--backoff-max=500ms"]),
        timeout=LONG,
    )
    assert len(runs(log)) == 3, r.describe()
    assert r.returncode == 0, r.describe()


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_no_restart_by_default(init, probe, run, workdir):
    log = workdir / "runs.log"
    r = run(init.argv([probe, "runs", log, "0:3"]))
    assert len(runs(log)) == 1, r.describe()
    assert r.returncode == 3, r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_backoff_reset_after_a_long_enough_run(init, probe, run, workdir):
    """--max-restarts=2 --backoff-reset=1s: runs 0 and 1 fail at once, run 2 stays up 2s and then fails. That
    resets delay and count, so run 3 starts immediately, run 4 after 1s, and only run 4's failure (the 3rd
    restart in a row since the reset) gives up. Without the reset it would give up after run 2."""
    log = workdir / "runs.log"
    r = run(
        init.argv(
            [probe, "runs", log, "0:1,0:1,2000:1,0:1,0:1"],
            kvinit=["--restart=on-failure", "--max-restarts=2", "--backoff-max=1s", "--backoff-reset=1s"],
        ),
        timeout=LONG,
    )
    assert len(runs(log)) == 5, f"expected 5 runs, got {len(runs(log))}\n{r.describe()}"
    g = gaps(log)
    assert_delay(g[0], 0, "1st restart")
    assert_delay(g[1], 1, "2nd restart")
    assert_delay(g[2], 0, "restart after a run longer than --backoff-reset")
    assert_delay(g[3], 1, "2nd restart after the reset")
    assert r.returncode == 1, r.describe()


@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_max_restarts_zero_means_no_limit(init, probe, launch, workdir):
    log = workdir / "runs.log"
    p = launch(
        init.argv([probe, "runs", log, "0:7"], kvinit=["--restart=always", "--max-restarts=0", "--backoff-max=100ms"])
    )
    wait_until(lambda: len(runs(log)) >= 15, LONG, "15 starts", launched=p)
    p.send(signal.SIGTERM)
    rc = p.wait(SHORT)
    # SIGTERM lands either while a child runs (forwarded: 143) or while waiting to restart (last status: 7)
    assert rc in (7, 128 + signal.SIGTERM), p.describe()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_stop_signal_while_waiting_to_restart_exits_at_once(init, probe, launch, workdir, sig):
    """Delays 0, 1s, 2s, then 4s: during the 4s wait SIGTERM/SIGINT ends the init at once with the last
    child status, 7, and no further start."""
    log = workdir / "runs.log"
    p = launch(
        init.argv(
            [probe, "runs", log, "0:7"],
            kvinit=["--restart=on-failure", "--max-restarts=10", "--backoff-max=30s", "--backoff-reset=60s"],
        )
    )

    def fourth_run_over():
        r = runs(log)
        if len(r) >= 4 and r[3][1] is not None:
            top = p.ns_init()
            return not descendants(top)  # the 4th child is gone and reaped: the init is waiting
        return False

    wait_until(fourth_run_over, LONG, "the 4th run to end", launched=p)
    p.send(signum(sig))
    rc = p.wait(3.0)  # far less than the 4s delay
    assert rc == 7, p.describe()
    assert len(runs(log)) == 4


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGUSR1"])
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_child_killed_by_forwarded_signal_is_not_restarted(init, probe, launch, workdir, sig):
    """--restart=always, but the child dies of the very signal the init forwarded to it: no restart."""
    log = workdir / "runs.log"
    p = launch(init.argv([probe, "runs", log, "60000:0"], kvinit=["--restart=always", "--backoff-max=100ms"]))
    wait_until(lambda: runs(log), SHORT, "the child to start", launched=p)
    n = signum(sig)
    p.send(n)
    rc = p.wait(SHORT)
    assert rc == 128 + n, p.describe()
    assert len(runs(log)) == 1


@pytest.mark.parametrize("init", init_params(xfail=NO_RESTART), indirect=True)
def test_child_killed_by_other_signal_is_restarted(init, probe, run, workdir):
    """A child that dies of a signal nobody forwarded (here SIGKILL by itself) is a failure: restarted."""
    log = workdir / "runs.log"
    r = run(
        init.argv([probe, "runs", log, "0:k9"], kvinit=["--restart=on-failure", "--max-restarts=1", "--backoff-max=1s"])
    )
    assert len(runs(log)) == 2, r.describe()
    assert r.returncode == 128 + signal.SIGKILL, r.describe()
