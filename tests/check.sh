#!/usr/bin/env bash
# Runs every test suite against one build directory and ends with one summary line of kvinit's own tests:
#   check: N passed, N failed, N skipped
# Before it: the reference inits' runs (tini, dumb-init, catatonit: the behaviour tests run against them too, as
# expected failures where they lack a feature) on a line of their own, and every reason a test was skipped.
# "failed" counts every failure, a reference init's included (a strict expected failure that passed means the test
# cannot fail). Under CI=true a skip for want of something CI has (root, an installed package) is a failure, and so
# is any skipped unit test; the legitimate skips are listed in tests/pylib/kvinit_check.py.
# Usage: tests/check.sh BUILD_DIR
set -uo pipefail

build=${1:?usage: tests/check.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-/usr/bin/python3}
ci=false
[[ ${CI:-} == true ]] && ci=true
passed=0 failed=0 skipped=0 broken=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log

# Golden files change only by hand (UPDATE_GOLDEN=1 build/tests/test_render), never as a side effect of a test run.
if [[ -n ${UPDATE_GOLDEN:-} ]]; then
	echo "check: UPDATE_GOLDEN is set: a test run never rewrites golden files; unset it (to update them on purpose," \
		"run UPDATE_GOLDEN=1 $build/tests/test_render outside CI and review the diff)" >&2
	echo "check: 0 passed, 1 failed, 0 skipped"
	exit 1
fi
if [[ $ci == true && $(id -u) -ne 0 ]]; then
	echo "check: CI=true but not root (uid $(id -u)): the integration tests need root, and under CI a test skipped" \
		"for want of it fails" >&2
fi

# Each suite's time, printed as it ends and again above the summary (CI must stay within its budget).
times=()
suite_start() { suite_t0=$SECONDS; }
suite_end() {
	local line="check: time: $1 $((SECONDS - suite_t0)) s"
	echo "$line"
	times+=("$line")
}

# cmocka: "[  PASSED  ] N test(s).", "[  FAILED  ] N test(s), listed below:", "[  SKIPPED ] N test(s), listed below:"
suite_start
for t in "$build"/tests/test_*; do
	[[ -x $t ]] || continue
	"$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:.*/\1/p' "$log" | tail -n1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [[ ${s:-0} -gt 0 && $ci == true ]]; then
		# every skip of a unit test is the machine lacking something (openat2, seccomp, setuid): CI has it all
		failed=$((failed + s))
		broken+=("$(basename "$t"): $s unit test(s) skipped under CI=true")
	else
		skipped=$((skipped + ${s:-0}))
	fi
	if [[ $rc -ne 0 && -z ${f:-} ]]; then
		failed=$((failed + 1))
		broken+=("$(basename "$t") (exit $rc)")
	fi
done
suite_end "unit (cmocka)"

# pytest suites: the counts come from their junit XML; the kvinit_check plugin marks which init each test runs;
# the 12 slowest tests of each suite are listed (where CI's time goes).
# E2E=1 (make check without SANITIZE) adds the Docker end-to-end suite; -s shows the figures it measures.
# REFERENCE=0 (make check with SANITIZE) leaves out the reference inits' runs: the sanitizer build is kvinit's alone.
suites=(tests/integration tests/kubernetes)
[[ ${E2E:-0} == 1 ]] && suites+=(tests/e2e)
xmls=() closing=()
for suite in "${suites[@]}"; do
	if [[ ! -d $root/$suite ]]; then
		failed=$((failed + 1))
		broken+=("$suite (missing)")
		continue
	fi
	suite_start
	xml=$tmp/$(basename "$suite").xml
	extra=()
	[[ $suite == tests/e2e ]] && extra=(-s)
	(cd "$root" && KVINIT_BIN=$build/kvinit KVINIT_PROBE=$build/tests/probe PYTHONPATH=$root/tests/pylib \
		KVINIT_CHECK_REFERENCE=${REFERENCE:-1} \
		"$python" -m pytest -q -rfEsx -p no:cacheprovider -p kvinit_check --durations=12 --junitxml="$xml" "${extra[@]}" \
		"$suite")
	rc=$?
	if [[ $rc -eq 5 ]]; then
		failed=$((failed + 1))
		broken+=("$suite (no test ran)")
	elif [[ ! -s $xml || ($rc -ne 0 && $rc -ne 1) ]]; then
		failed=$((failed + 1))
		broken+=("$suite (pytest exit $rc)")
	fi
	[[ -s $xml ]] && xmls+=("$xml")
	suite_end "$suite"
done

if [[ ${#xmls[@]} -gt 0 ]]; then
	if ! "$python" "$root/tests/pylib/junit_counts.py" "${xmls[@]}" >"$tmp/counts"; then
		failed=$((failed + 1))
		broken+=("the junit XML of the pytest suites could not be read")
	fi
	kvinit_passed=0 kvinit_failed=0 kvinit_skipped=0 ref_passed=0 ref_xfailed=0 ref_failed=0 ref_skipped=0
	read -r counts <"$tmp/counts" || counts=
	for assignment in $counts; do
		[[ $assignment =~ ^(kvinit|ref)_[a-z]+=[0-9]+$ ]] && declare "$assignment"
	done
	passed=$((passed + kvinit_passed))
	failed=$((failed + kvinit_failed + ref_failed))
	skipped=$((skipped + kvinit_skipped))
	# printed last but one, just above the summary
	if [[ ${REFERENCE:-1} == 0 ]]; then
		closing+=("check: the reference inits (tini, dumb-init, catatonit) are not run on this build (REFERENCE=0)")
	else
		closing+=("check: $ref_xfailed expected failures of the reference inits (tini, dumb-init, catatonit); their other runs: $ref_passed passed, $ref_failed failed, $ref_skipped skipped")
	fi
	mapfile -t -O "${#closing[@]}" closing < <(sed -n 's/^skip \([0-9]*\) \(.*\)/check: skipped \1: \2/p' "$tmp/counts")
fi

# --- The server matrix (MATRIX=1: make check without SANITIZE): the tests marked `matrix` against every server
# `make servers` unpacked (tests/matrix.sh prints a table per server and one summary line, counted here).
if [[ ${MATRIX:-0} == 1 ]]; then
	suite_start
	# the host's own server (Debian 12's redis 7.0) was just tested by tests/integration: not twice
	MATRIX_SKIP_HOST=1 "$root/tests/matrix.sh" "$build" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	read -r p f s < <(sed -n 's/^matrix: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped.*/\1 \2 \3/p' "$log") || true
	if [[ -z ${p:-} ]]; then
		failed=$((failed + 1))
		broken+=("tests/matrix.sh (exit $rc, no summary)")
	else
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	fi
	suite_end "server matrix"
fi

# --- The fuzz targets' smoke run (FUZZ_BUILD set: make check without SANITIZE, the targets being ASan/UBSan
# builds themselves): each over its corpus and a few seconds more (tests/fuzz/run.sh), one line a target.
if [[ -n ${FUZZ_BUILD:-} ]]; then
	suite_start
	"$root/tests/fuzz/run.sh" smoke "$FUZZ_BUILD" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	read -r p f < <(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' "$log") || true
	if [[ -z ${p:-} ]]; then
		failed=$((failed + 1))
		broken+=("tests/fuzz/run.sh (exit $rc, no summary)")
	else
		passed=$((passed + p)) failed=$((failed + f))
	fi
	suite_end "fuzz smoke"
fi

for line in "${times[@]}"; do echo "$line"; done
for b in "${broken[@]}"; do echo "check: broken: $b"; done
for line in "${closing[@]}"; do echo "$line"; done
echo "check: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
