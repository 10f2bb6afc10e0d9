"""Counts of pytest junit XML files for tests/check.sh, kvinit's own tests apart from the reference inits' runs.

Usage: junit_counts.py FILE.xml...   prints shell assignments, then one `skip COUNT REASON` line per skip reason:

    kvinit_passed=N kvinit_failed=N kvinit_skipped=N ref_passed=N ref_xfailed=N ref_failed=N ref_skipped=N

A test case is failed when it has a <failure> or an <error> (a strict xfail that passed is a failure), an expected
failure when it has <skipped type="pytest.xfail">, skipped when it has another <skipped>, else passed. Its init is
the `init` property written by the kvinit_check plugin; a case without one (a collection error) is kvinit's.
"""

import sys
import xml.etree.ElementTree as ET
from collections import Counter


def outcome(case):
    if case.find("failure") is not None or case.find("error") is not None:
        return "failed", None
    skipped = case.find("skipped")
    if skipped is not None:
        kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        return kind, skipped.get("message", "")
    return "passed", None


def main(paths):
    counts = Counter()
    reasons = Counter()
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            who = "kvinit" if props.get("init", "kvinit") == "kvinit" else "ref"
            kind, message = outcome(case)
            if who == "kvinit" and kind == "xfailed":  # kvinit has no expected failure of its own: show it
                kind, message = "skipped", f"expected failure: {message}"
            counts[f"{who}_{kind}"] += 1
            if who == "kvinit" and kind == "skipped":
                reasons[" ".join((message or "no reason given").split())] += 1
    names = ["kvinit_passed", "kvinit_failed", "kvinit_skipped", "ref_passed", "ref_xfailed", "ref_failed",
             "ref_skipped"]
    print(" ".join(f"{name}={counts[name]}" for name in names))
    for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"skip {n} {reason}")


if __name__ == "__main__":
    main(sys.argv[1:])
