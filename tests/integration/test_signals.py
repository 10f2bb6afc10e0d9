"""Signal forwarding: each forwarded signal ends the child and the init exits 128+N; --kill-group."""

import signal
import time

import pytest

from conftest import FORWARDED, SHORT, init_params, read_text, signum, wait_kv_file, wait_until


@pytest.mark.parametrize("sig", FORWARDED)
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_forwarded_signal_ends_child_with_128_plus_n(init, probe, launch, workdir, sig):
    """The init forwards SIG to the child; the child reports it and dies by it (SIGWINCH, whose default action
    is to ignore, makes the probe exit 128+28); the init exits 128+N."""
    ready = workdir / "ready"
    p = launch(init.argv([probe, "wait-signal", ready, 60]))
    wait_kv_file(ready, launched=p)
    n = signum(sig)
    p.send(n)
    rc = p.wait(SHORT)
    assert f"signal={n}" in p.stdout.split(), f"the child did not receive {sig}\n{p.describe()}"
    assert rc == 128 + n, p.describe()


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGSEGV", "SIGABRT"])
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_child_killed_by_signal_gives_128_plus_n(init, probe, run, sig):
    n = signum(sig)
    r = run(init.argv([probe, "kill-self", n]))
    assert r.returncode == 128 + n, r.describe()


KILL_GROUP = dict(kvinit=["--kill-group=yes"], tini=["-g"], catatonit=["-g"])  # dumb-init: the default
SINGLE_CHILD = dict(dumb_init=["-c"])  # the others: the default


def _start_group_probe(init, probe, launch, workdir, options):
    ready, log = workdir / "ready", workdir / "signals.log"
    p = launch(init.argv([probe, "group-signal", ready, log, 60], **options))
    wait_kv_file(ready, launched=p)
    return p, log


@pytest.mark.parametrize("sig", ["SIGUSR1", "SIGHUP"])
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_kill_group_forwards_to_the_process_group(init, probe, launch, workdir, sig):
    """With --kill-group a forwarded signal reaches the grandchild in the child's process group too."""
    p, log = _start_group_probe(init, probe, launch, workdir, KILL_GROUP)
    n = signum(sig)
    p.send(n)
    want = {f"child_got={n}", f"grandchild_got={n}"}
    wait_until(lambda: want <= set(read_text(log).split()), SHORT, f"{want} in the log", launched=p)
    assert p.poll() is None


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_without_kill_group_only_the_child_gets_the_signal(init, probe, launch, workdir):
    p, log = _start_group_probe(init, probe, launch, workdir, SINGLE_CHILD)
    p.send(signal.SIGUSR1)
    wait_until(lambda: "child_got=10" in read_text(log).split(), SHORT, "the child to get SIGUSR1", launched=p)
    time.sleep(1.0)  # a negative check: give a wrongly forwarded signal time to arrive
    assert "grandchild_got=10" not in read_text(log).split(), read_text(log)
    assert p.poll() is None
