"""Exit status: the child's status passes through; 127 command not found; 126 not executable."""

import os

import pytest

from conftest import init_params


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
