"""kvinit's options: flag > environment > INI file > default, value checking, the INI file itself.

These are kvinit-only (the other inits have none of these options), so they are not parametrized over inits.
Effects are observed through the child: `probe status` shows Seccomp (--seccomp) and the uid (--user).
"""

import errno
import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import LONG, SHORT, UNSHARE, read_text, wait_kv_file, wait_until

DEFAULT_CONFIG = Path("/etc/kvinit/kvinit.ini")
NL = "\n"


def write_ini(workdir, text, name="kvinit.ini"):
    path = workdir / name
    path.write_text(text)
    return path


def status(run, kvinit, probe, options=(), env=None, **kw):
    r = run(kvinit.argv([probe, "status"], kvinit=list(options)), env=env, **kw)
    assert r.returncode == 0, r.describe()
    return r.kv


def error_line(r):
    """The one non-empty stderr line of a configuration error."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr\n{r.describe()}"
    return lines[0]


def assert_config_error(r, *needles):
    assert r.returncode == 100, r.describe()
    line = error_line(r)
    for needle in needles:
        assert str(needle) in line, f"{needle!r} not in {line!r}"
    assert "uid=" not in r.stdout, "the child ran despite the error"
    return line


# ------------------------------------------------------------------ --help, --version, usage errors


def test_help(kvinit, run):
    r = run([kvinit.path, "--help"])
    assert r.returncode == 0, r.describe()
    assert "kvinit run" in r.stdout
    for flag in ("--user", "--restart", "--backoff-max", "--backoff-reset", "--max-restarts", "--stop-grace",
                 "--kill-group", "--seccomp", "--log-level", "--log-format", "--config"):
        assert flag in r.stdout, f"--help does not mention {flag}"


def test_version(kvinit, run):
    r = run([kvinit.path, "--version"])
    assert r.returncode == 0, r.describe()
    assert re.search(r"\b\d+\.\d+\.\d+\b", r.stdout), r.describe()


@pytest.mark.parametrize(
    "args",
    [[], ["run"], ["run", "--"], ["no-such-subcommand"], ["run", "--no-such-option", "--", "PROBE", "status"],
     ["run", "--restart"]],
    ids=["nothing", "run-without-cmd", "run-dashdash-without-cmd", "unknown-subcommand", "unknown-option",
         "missing-value"],
)
def test_usage_errors_exit_100(kvinit, probe, run, args):
    args = [probe if a == "PROBE" else a for a in args]
    r = run([kvinit.path, *args])
    assert r.returncode == 100, r.describe()
    assert r.stderr.strip() or r.stdout.strip(), "no message"
    assert "uid=" not in r.stdout


# ------------------------------------------------------------------ bad values

BAD_VALUES = [
    # option, value, something the rule must mention
    ("restart", "sometimes", r"on-failure"),
    ("backoff-max", "abc", r"duration|\d+m?s\b"),
    ("backoff-max", "5x", r"duration|\d+m?s\b"),
    ("backoff-reset", "-1s", r"duration|\d+m?s\b"),
    ("stop-grace", "soon", r"duration|\d+m?s\b"),
    ("max-restarts", "-1", r"number|integer"),
    ("max-restarts", "ten", r"number|integer"),
    ("kill-group", "maybe", r"yes|true"),
    ("seccomp", "perhaps", r"yes|true"),
    ("log-level", "verbose", r"debug"),
    ("log-format", "xml", r"json"),
]


def _names_option(line, option):
    norm = line.lower().replace("_", "-")
    return option in norm


@pytest.mark.parametrize("option,value,rule", BAD_VALUES, ids=[f"{o}={v}" for o, v, _ in BAD_VALUES])
def test_bad_flag_value(kvinit, probe, run, option, value, rule):
    r = run(kvinit.argv([probe, "status"], kvinit=[f"--{option}={value}"]))
    line = assert_config_error(r, value)
    assert _names_option(line, option), f"option not named: {line!r}"
    assert re.search(rule, line.replace(value, "")), f"no rule in {line!r}"


@pytest.mark.parametrize("option,value,rule", BAD_VALUES[:4], ids=[f"{o}={v}" for o, v, _ in BAD_VALUES[:4]])
def test_bad_env_value(kvinit, probe, run, option, value, rule):
    env = {"KVINIT_" + option.upper().replace("-", "_"): value}
    r = run(kvinit.argv([probe, "status"]), env=env)
    line = assert_config_error(r, value)
    assert _names_option(line, option), f"option not named: {line!r}"
    assert re.search(rule, line.replace(value, "")), f"no rule in {line!r}"


@pytest.mark.parametrize("option,value,rule", BAD_VALUES[:4], ids=[f"{o}={v}" for o, v, _ in BAD_VALUES[:4]])
def test_bad_ini_value(kvinit, probe, run, workdir, option, value, rule):
    ini = write_ini(workdir, f"[kvinit]\n{option} = {value}\n")
    r = run(kvinit.argv([probe, "status"], kvinit=[f"--config={ini}"]))
    line = assert_config_error(r, value)
    assert _names_option(line, option), f"option not named: {line!r}"
    assert re.search(rule, line.replace(value, "").replace(str(ini), "")), f"no rule in {line!r}"


# ------------------------------------------------------------------ the INI file


@pytest.mark.parametrize(
    "text,lineno,needle",
    [
        ("[kvinit]\n; a comment\nseccomp = no\nno-such-key = 1\n", 4, "no-such-key"),
        ("[kvinit]\nseccomp = no\n\n[no-such-section]\nuser = 1\n", 4, "no-such-section"),
        ("[kvinit]\nseccomp = no\n[other]\n", 3, "other"),
    ],
    ids=["unknown-key", "unknown-section", "unknown-empty-section"],
)
def test_unknown_ini_key_or_section_names_file_and_line(kvinit, probe, run, workdir, text, lineno, needle):
    ini = write_ini(workdir, text)
    r = run(kvinit.argv([probe, "status"], kvinit=[f"--config={ini}"]))
    line = assert_config_error(r, ini, needle)
    rest = line.replace(str(ini), "<file>", 1)
    assert re.search(rf"<file>:{lineno}\b|\bline {lineno}\b", rest), f"line {lineno} not named: {line!r}"


def test_ini_comments_and_blank_lines(kvinit, probe, run, workdir):
    ini = write_ini(workdir, "; kvinit settings\n\n[kvinit]\n; no filter\n  seccomp  =  no  \n\n")
    assert status(run, kvinit, probe, [f"--config={ini}"])["Seccomp"] == "0"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_missing_explicit_config_is_an_error(kvinit, probe, run, workdir, how):
    missing = workdir / "no-such-dir" / "kvinit.ini"
    if how == "flag":
        r = run(kvinit.argv([probe, "status"], kvinit=[f"--config={missing}"]))
    else:
        r = run(kvinit.argv([probe, "status"]), env={"KVINIT_CONFIG": missing})
    assert_config_error(r, missing)


def test_missing_default_config_is_fine(kvinit, probe, run):
    if DEFAULT_CONFIG.exists():
        pytest.skip(f"{DEFAULT_CONFIG} exists on this machine")
    st = status(run, kvinit, probe)
    assert st["Seccomp"] == "2"


def _with_private_etc(workdir, ini_text):
    """A wrapper command that runs the test in a private mount namespace whose /etc is an overlay with
    kvinit/kvinit.ini added, so the default config path can be tested without touching the real /etc."""
    upper, work = workdir / "etc-upper", workdir / "etc-work"
    (upper / "kvinit").mkdir(parents=True)
    work.mkdir()
    (upper / "kvinit" / "kvinit.ini").write_text(ini_text)
    script = (
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc || exit 99; "
        f'exec {" ".join(UNSHARE)} "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def test_default_config_file_is_read(kvinit, probe, run, workdir):
    r = run(kvinit.argv([probe, "status"]), wrap=_with_private_etc(workdir, "[kvinit]\nseccomp = no\n"))
    if r.returncode == 99:
        pytest.skip("cannot overlay /etc in a private mount namespace here")
    assert r.returncode == 0, r.describe()
    assert r.kv["Seccomp"] == "0", "the default config file was not read"


def test_explicit_config_replaces_the_default(kvinit, probe, run, workdir):
    good = write_ini(workdir, "[kvinit]\nuser = 4321\n")
    wrap = _with_private_etc(workdir, "[kvinit]\nno-such-key = 1\n")
    r = run(kvinit.argv([probe, "status"]), env={"KVINIT_CONFIG": good}, wrap=wrap)
    if r.returncode == 99:
        pytest.skip("cannot overlay /etc in a private mount namespace here")
    assert r.returncode == 0, r.describe()
    assert r.kv["uid"] == "4321"


# ------------------------------------------------------------------ a config "file" that is not a text file (issue 17)


def _not_a_text_file(workdir, kind):
    """The path KVINIT_CONFIG names, made to be `kind`."""
    if kind == "fifo":  # no writer: a blocking open would wait forever
        path = workdir / "kvinit.ini"
        os.mkfifo(path)
        return path
    if kind == "directory":
        path = workdir / "kvinit.ini"
        path.mkdir()
        return path
    if kind == "nul-byte":  # read as "user = 70", the child ran as uid 70
        path = workdir / "kvinit.ini"
        path.write_bytes(b"[kvinit]\nseccomp = yes\nuser = 70\x0000\n")
        return path
    return Path({"dev-zero": "/dev/zero", "proc-self-mem": "/proc/self/mem"}[kind])  # endless; unreadable


NOT_TEXT = [
    # kind, what the one error line says after the path
    ("fifo", "is not a regular file"),
    ("dev-zero", "is not a regular file"),
    ("directory", "is not a regular file"),
    ("proc-self-mem", "Input/output error"),  # a regular file, but reading it fails
    ("nul-byte", "line 3 contains a NUL byte"),
]


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("kind,rule", NOT_TEXT, ids=[k for k, _ in NOT_TEXT])
def test_config_that_is_not_a_text_file_is_refused(kvinit, probe, run, workdir, kind, rule, how):
    """Refused at once with one line (run's SHORT timeout turns a hang, as /dev/zero and a FIFO caused, into a
    failure), never read in part or ignored."""
    path = _not_a_text_file(workdir, kind)
    if how == "flag":
        r = run(kvinit.argv([probe, "status"], kvinit=[f"--config={path}"]))
    else:
        r = run(kvinit.argv([probe, "status"]), env={"KVINIT_CONFIG": path})
    assert r.elapsed < SHORT / 2, f"took {r.elapsed:.1f}s\n{r.describe()}"
    line = assert_config_error(r, f"'{path}'", rule)
    if kind != "proc-self-mem":
        assert f"KVINIT_CONFIG='{path}': {rule}" in line, line


def test_long_config_path_error_keeps_its_reason(kvinit, probe, run):
    """A 128 KB path (about the most one argument may hold) is shown cut, with its length, and the reason still
    ends the line."""
    path = "/nonexistent/" + "d" * 128000
    r = run(kvinit.argv([probe, "status"], kvinit=[f"--config={path}"]))
    line = assert_config_error(r, "'/nonexistent/ddd", f"({len(path)} bytes)")
    assert line.endswith(os.strerror(errno.ENAMETOOLONG)), line
    assert len(line) < 1024, f"{len(line)} bytes"


# ------------------------------------------------------------------ precedence: flag > env > INI > default

SECCOMP_CASES = [
    # INI, env, flag -> Seccomp
    (None, None, None, "2"),
    ("no", None, None, "0"),
    ("no", "yes", None, "2"),
    ("no", "yes", "no", "0"),
    (None, "no", None, "0"),
    (None, "no", "yes", "2"),
    ("yes", None, "no", "0"),
]


@pytest.mark.parametrize("ini,env,flag,want", SECCOMP_CASES, ids=[f"ini={c[0]}-env={c[1]}-flag={c[2]}" for c in
                                                                  SECCOMP_CASES])
def test_precedence_seccomp(kvinit, probe, run, workdir, ini, env, flag, want):
    options, environ = [], {}
    if ini is not None:
        options.append(f"--config={write_ini(workdir, '[kvinit]' + NL + f'seccomp = {ini}' + NL)}")
    if env is not None:
        environ["KVINIT_SECCOMP"] = env
    if flag is not None:
        options.append(f"--seccomp={flag}")
    assert status(run, kvinit, probe, options, env=environ)["Seccomp"] == want


USER_CASES = [
    (None, None, None, "0"),
    ("2001", None, None, "2001"),
    ("2001", "2002", None, "2002"),
    ("2001", "2002", "2003", "2003"),
    (None, "2002", "2003", "2003"),
    ("2001", None, "2003", "2003"),
]


@pytest.mark.parametrize("ini,env,flag,want", USER_CASES, ids=[f"ini={c[0]}-env={c[1]}-flag={c[2]}" for c in
                                                              USER_CASES])
def test_precedence_user_with_config_from_env(kvinit, probe, run, workdir, ini, env, flag, want):
    options, environ = [], {}
    if ini is not None:
        environ["KVINIT_CONFIG"] = write_ini(workdir, f"[kvinit]\nuser = {ini}\n")
    if env is not None:
        environ["KVINIT_USER"] = env
    if flag is not None:
        options.append(f"--user={flag}")
    assert status(run, kvinit, probe, options, env=environ)["uid"] == want


def test_config_flag_beats_config_env(kvinit, probe, run, workdir):
    flag_ini = write_ini(workdir, "[kvinit]\nuser = 2003\n", "flag.ini")
    env_ini = write_ini(workdir, "[kvinit]\nuser = 2002\n", "env.ini")
    st = status(run, kvinit, probe, [f"--config={flag_ini}"], env={"KVINIT_CONFIG": env_ini})
    assert st["uid"] == "2003"


def test_every_option_is_accepted_in_the_ini_file(kvinit, probe, run, workdir):
    ini = write_ini(
        workdir,
        "[kvinit]\nuser = 4321:4322\nrestart = no\nbackoff-max = 2s\nbackoff-reset = 1m\nmax-restarts = 3\n"
        "stop-grace = 500ms\nkill-group = yes\nseccomp = yes\nlog-level = warn\nlog-format = text\n",
    )
    st = status(run, kvinit, probe, [f"--config={ini}"])
    assert (st["uid"], st["gid"], st["Seccomp"]) == ("4321", "4322", "2")


def test_every_option_is_accepted_from_the_environment(kvinit, probe, run):
    env = dict(KVINIT_USER="4321:4322", KVINIT_RESTART="no", KVINIT_BACKOFF_MAX="2s", KVINIT_BACKOFF_RESET="1m",
               KVINIT_MAX_RESTARTS="3", KVINIT_STOP_GRACE="500ms", KVINIT_KILL_GROUP="yes", KVINIT_SECCOMP="no",
               KVINIT_LOG_LEVEL="error", KVINIT_LOG_FORMAT="json")
    st = status(run, kvinit, probe, env=env)
    assert (st["uid"], st["gid"], st["Seccomp"]) == ("4321", "4322", "0")


# ------------------------------------------------------------------ value syntax

BOOLEANS = [("yes", "2"), ("no", "0"), ("true", "2"), ("false", "0"), ("on", "2"), ("off", "0"), ("1", "2"),
            ("0", "0")]


@pytest.mark.parametrize("value,want", BOOLEANS, ids=[b[0] for b in BOOLEANS])
def test_boolean_spellings(kvinit, probe, run, value, want):
    assert status(run, kvinit, probe, [f"--seccomp={value}"])["Seccomp"] == want


@pytest.mark.parametrize("option", ["backoff-max", "backoff-reset", "stop-grace"])
@pytest.mark.parametrize("value", ["8s", "500ms", "2m", "3", "0"])
def test_duration_spellings_are_accepted(kvinit, probe, run, option, value):
    r = run(kvinit.argv([probe, "exit", "7"], kvinit=[f"--{option}={value}"]))
    assert r.returncode == 7, r.describe()


@pytest.mark.parametrize("value,low,high", [("300ms", 0.2, 2.5), ("2", 1.9, 6.0)], ids=["300ms", "bare-2-is-seconds"])
def test_duration_units_through_stop_grace(kvinit, probe, launch, workdir, value, low, high):
    """The child ignores SIGTERM, so the time from SIGTERM to the init's exit is the grace period."""
    pids = workdir / "pids"
    p = launch(kvinit.argv([probe, "ignore-term", pids, 60], kvinit=[f"--stop-grace={value}"]))
    wait_kv_file(pids, launched=p)
    t0 = time.monotonic()
    p.send(signal.SIGTERM)
    rc = p.wait(high + 2)
    elapsed = time.monotonic() - t0
    assert rc == 128 + signal.SIGKILL, p.describe()
    assert low <= elapsed < high, f"--stop-grace={value}: killed after {elapsed:.2f}s"


def test_flag_with_separate_value(kvinit, probe, run):
    st = status(run, kvinit, probe, ["--user", "4321", "--log-level", "warn"])
    assert st["uid"] == "4321"


@pytest.mark.parametrize("value,want", [("no", "0"), ("yes", "2")])
def test_boolean_flag_with_separate_value(kvinit, probe, run, value, want):
    """The contract has no exception for booleans: "--seccomp no" is "--name value"."""
    st = status(run, kvinit, probe, ["--seccomp", value])
    assert st["Seccomp"] == want


def test_restart_flag_with_separate_value(kvinit, probe, run, workdir):
    log = workdir / "runs.log"
    r = run(kvinit.argv([probe, "runs", log, "0:3"], kvinit=["--restart", "on-failure", "--max-restarts", "1",
                                                            "--backoff-max", "1s"]), timeout=LONG)
    assert r.returncode == 3, r.describe()
    assert read_text(log).count("start ") == 2, read_text(log)


def test_kill_group_from_environment(kvinit, probe, launch, workdir):
    ready, log = workdir / "ready", workdir / "signals.log"
    p = launch(kvinit.argv([probe, "group-signal", ready, log, 60]), env={"KVINIT_KILL_GROUP": "yes"})
    wait_kv_file(ready, launched=p)
    p.send(signal.SIGUSR1)
    wait_until(lambda: "grandchild_got=10" in read_text(log).split(), SHORT, "the grandchild to get SIGUSR1",
               launched=p)


@pytest.mark.parametrize("dashdash", [True, False], ids=["with-dashdash", "without-dashdash"])
def test_arguments_after_the_command_belong_to_the_command(kvinit, probe, run, dashdash):
    """`kvinit run [--] probe status --seccomp=no`: --seccomp=no is the child's argument, not kvinit's."""
    r = run([kvinit.path, "run", *(["--"] if dashdash else []), probe, "status", "--seccomp=no"])
    assert r.returncode == 0, r.describe()
    assert r.kv["Seccomp"] == "2", r.describe()


def test_child_gets_no_config_file_descriptor(kvinit, probe, run, workdir):
    ini = write_ini(workdir, "[kvinit]\nseccomp = yes\n")
    st = status(run, kvinit, probe, [f"--config={ini}"])
    assert st["fds"] == "0,1,2"
