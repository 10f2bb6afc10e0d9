"""kvinit's log lines on stderr: `level kvinit[pid]: message`, JSON objects with --log-format=json, --log-level.

--seccomp=no is used to make kvinit log a warning (the contract requires one)."""

import json
import re

import pytest

from conftest import parse_kv

LEVELS = ("error", "warn", "info", "debug")
TEXT_LINE = re.compile(r"^(error|warn|info|debug) kvinit\[(\d+)\]: \S.*$")
TEXT_LINE_PARTS = re.compile(r"^(error|warn|info|debug) kvinit\[\d+\]: (.*)$")


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
    # every object carries its level, a message and kvinit's pid (1: it is PID 1 here)
    for obj in objects:
        assert obj.get("level") in LEVELS, f"no level in {obj}"
        assert isinstance(obj.get("msg"), str) and obj["msg"].strip(), f"no message in {obj}"
        assert obj.get("pid") == 1, f"kvinit runs as PID 1 here: {obj}"
        assert obj.get("prog") == "kvinit", obj
    warns = [obj for obj in objects if obj["level"] == "warn"]
    assert warns and "KVINIT_SECCOMP=no" in warns[0]["msg"], f"no warning for --seccomp=no: {objects}"
    # the same lines as in text: one object per text line, same level and message
    text = stderr_lines(run_status(run, kvinit, probe, ["--seccomp=no", "--log-level=debug"]))
    assert [(o["level"], o["msg"]) for o in objects] == [tuple(TEXT_LINE_PARTS.match(line).groups()) for line in text]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_level_debug_adds_lines(kvinit, probe, run, fmt):
    """--log-level=debug shows every line of info and more, each of them a debug line; info shows no debug line."""

    def levels_and_messages(level):
        r = run_status(run, kvinit, probe, [f"--log-level={level}", f"--log-format={fmt}"])
        if fmt == "json":
            return [(o["level"], o["msg"]) for o in map(json.loads, stderr_lines(r))]
        return [tuple(TEXT_LINE_PARTS.match(line).groups()) for line in stderr_lines(r)]

    info, debug = levels_and_messages("info"), levels_and_messages("debug")
    assert info and not [m for m in info if m[0] == "debug"], info
    extra = [m for m in debug if m not in info]
    assert extra and all(level == "debug" for level, _ in extra), f"info: {info}\ndebug: {debug}"
    assert [m for m in debug if m[0] != "debug"] == info, f"debug lost lines of info: {info}\n{debug}"


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
