"""pytest plugin of tests/check.sh (loaded with `-p kvinit_check`, tests/pylib on PYTHONPATH).

- Marks every test item with the init it runs (the junit property `init`: kvinit, tini, dumb-init or catatonit), so
  the counts in check.sh tell kvinit's own tests from the reference inits' runs without reading test names.
- Under CI=true a skip fails the test, unless it is one of LEGITIMATE_SKIPS (the machine cannot have what the test
  needs, however it is set up) or a reference init's declared skip (`init_params(skip=...)`: the behaviour does not
  apply to that init). CI has root, the reference inits, redis-server and a kernel with user namespaces and
  overlayfs: a test skipped for want of one of them would hide an untested promise behind a green run.
"""

import os
import re

import pytest

REFERENCE_INITS = ("tini", "dumb-init", "catatonit")

LEGITIMATE_SKIPS = [
    re.compile(r"^the i386 syscall ABI is not available on this kernel$"),
    re.compile(r"^\S+ is not a system call on \S+$"),
    re.compile(r"^the x32 ABI exists on x86_64 only"),
    # the server under test lacks the feature (Redis has no availability-zone): the server matrix runs the test on
    # the servers that have it
    re.compile(r"^(redis|valkey)-server [0-9.]+ has no [a-z-]+$"),
]


def reference_init(item):
    """The reference init an item runs, or None for kvinit's own tests."""
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("init") if callspec is not None else None
    return name if name in REFERENCE_INITS else None


def skip_reason(report):
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text[len("Skipped: "):] if text.startswith("Skipped: ") else text


def pytest_collection_modifyitems(config, items):
    """KVINIT_CHECK_REFERENCE=0 (check.sh on a sanitizer build) leaves the reference inits' runs out: they run the
    Debian packages of tini, dumb-init and catatonit, which the sanitizer build does not change."""
    if os.environ.get("KVINIT_CHECK_REFERENCE") == "0":
        left_out = [item for item in items if reference_init(item)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not reference_init(item)]
    for item in items:
        item.user_properties.append(("init", reference_init(item) or "kvinit"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    if reference_init(item) and item.get_closest_marker("skip") is not None:
        return
    reason = skip_reason(report)
    if any(pattern.search(reason) for pattern in LEGITIMATE_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (f"CI=true: skipped ({reason}), but CI has what this test needs: a skip here would hide an "
                       f"untested promise")
