"""kvinit's log lines on stderr: `level kvinit[pid]: message`, JSON objects with --log-format=json, --log-level.

--seccomp=no is used to make kvinit log a warning (the contract requires one)."""

import json
import re

import pytest

from conftest import parse_kv

LEVELS = ("error", "warn", "info", "debug")
TEXT_LINE = re.compile(r"^(error|warn|info|debug) kvinit\[(\d+)\]: \S.*$")


def stderr_lines(r):
    return [line for line in r.stderr.splitlines() if line.strip()]


def run_status(run, kvinit, probe, options=(), env=None):
    r = run(kvinit.argv([probe, "status"], kvinit=list(options)), env=env)
    assert r.returncode == 0, r.describe()
    assert parse_kv(r.stdout).get("uid") == "0"
    return r


@pytest.mark.parametrize("level", ["warn", "info", "debug"])
def test_text_format(kvinit, probe, run, level):
    r = run_status(run, kvinit, probe, ["--seccomp=no", f"--log-level={level}"])
    lines = stderr_lines(r)
    bad = [line for line in lines if not TEXT_LINE.match(line)]
    assert not bad, f"lines not in the `level kvinit[pid]: message` format: {bad}"
    warns = [TEXT_LINE.match(line) for line in lines if line.startswith("warn ")]
    assert warns, f"no warning for --seccomp=no\n{r.describe()}"
    assert warns[0].group(2) == "1", "kvinit runs as PID 1 here, its log lines should say kvinit[1]"


def test_text_is_the_default_format(kvinit, probe, run):
    r = run_status(run, kvinit, probe, ["--seccomp=no"])
    lines = stderr_lines(r)
    assert lines and all(TEXT_LINE.match(line) for line in lines), r.describe()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_json_format(kvinit, probe, run, how):
    options, env = ["--seccomp=no", "--log-level=debug"], None
    if how == "flag":
        options.append("--log-format=json")
    else:
        env = {"KVINIT_LOG_FORMAT": "json"}
    r = run_status(run, kvinit, probe, options, env=env)
    lines = stderr_lines(r)
    assert lines, r.describe()
    objects = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}") from None
        assert isinstance(obj, dict), line
        objects.append(obj)
    # every object carries its level and a message
    for obj in objects:
        assert any(v in LEVELS for v in obj.values() if isinstance(v, str)), f"no level in {obj}"
        assert any(isinstance(v, str) and v not in LEVELS and len(v) > 3 for v in obj.values()), f"no message: {obj}"
    assert any("warn" in obj.values() for obj in objects), f"no warning for --seccomp=no: {objects}"


def test_log_level_error_hides_the_warning(kvinit, probe, run):
    r = run_status(run, kvinit, probe, ["--seccomp=no", "--log-level=error"])
    assert not [line for line in stderr_lines(r) if not line.startswith("error")], r.describe()


def test_log_level_warn_hides_info_and_debug(kvinit, probe, run):
    r = run_status(run, kvinit, probe, ["--seccomp=no", "--log-level=warn"])
    lines = stderr_lines(r)
    assert any(line.startswith("warn ") for line in lines), r.describe()
    assert not [line for line in lines if line.startswith(("info ", "debug "))], r.describe()


def test_config_error_is_one_line_in_json_mode_too(kvinit, probe, run):
    r = run(kvinit.argv([probe, "status"], kvinit=["--log-format=json", "--restart=sometimes"]))
    assert r.returncode == 100, r.describe()
    lines = stderr_lines(r)
    assert len(lines) == 1 and "sometimes" in lines[0], r.describe()
