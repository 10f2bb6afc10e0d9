#!/usr/bin/env bash
# Runs every test suite against one build directory and ends with one summary line:
#   check: N passed, N failed, N skipped
# Usage: tests/check.sh BUILD_DIR
set -uo pipefail

build=${1:?usage: tests/check.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-/usr/bin/python3}
passed=0 failed=0 skipped=0 broken=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:"
for t in "$build"/tests/test_*; do
	[[ -x $t ]] || continue
	"$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [[ $rc -ne 0 && -z ${f:-} ]]; then
		failed=$((failed + 1))
		broken+=("$(basename "$t") (exit $rc)")
	fi
done

# pytest suites: the counts come from its summary line.
# E2E=1 (make check without SANITIZE) adds the Docker end-to-end suite; -s shows the figures it measures.
suites=(tests/integration tests/kubernetes)
[[ ${E2E:-0} == 1 ]] && suites+=(tests/e2e)
for suite in "${suites[@]}"; do
	[[ -d $root/$suite ]] || continue
	extra=()
	[[ $suite == tests/e2e ]] && extra=(-s)
	(cd "$root" && KVINIT_BIN=$build/kvinit KVINIT_PROBE=$build/tests/probe \
		"$python" -m pytest -q -rfEsx -p no:cacheprovider "${extra[@]}" "$suite") 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error|xfailed|deselected)' "$log" | tail -n1)
	for kind in passed failed error skipped xfailed xpassed; do
		n=$(grep -oE "[0-9]+ $kind" <<<"$line" | grep -oE '^[0-9]+' || true)
		case $kind in
		passed | xfailed) passed=$((passed + ${n:-0})) ;;
		failed | error | xpassed) failed=$((failed + ${n:-0})) ;;
		skipped) skipped=$((skipped + ${n:-0})) ;;
		esac
	done
	if [[ $rc -ne 0 && $rc -ne 5 && -z $line ]]; then
		failed=$((failed + 1))
		broken+=("$suite (pytest exit $rc, no summary)")
	fi
	if [[ $rc -eq 5 ]]; then
		failed=$((failed + 1))
		broken+=("$suite (no test ran)")
	fi
done

# --- The server matrix (MATRIX=1: make check without SANITIZE): the tests marked `matrix` against every server
# `make servers` unpacked (tests/matrix.sh prints a table per server and one summary line, counted here).
if [[ ${MATRIX:-0} == 1 ]]; then
	"$root/tests/matrix.sh" "$build" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	read -r p f s < <(sed -n 's/^matrix: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped.*/\1 \2 \3/p' "$log") || true
	if [[ -z ${p:-} ]]; then
		failed=$((failed + 1))
		broken+=("tests/matrix.sh (exit $rc, no summary)")
	else
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	fi
fi

for b in "${broken[@]}"; do echo "check: broken: $b"; done
echo "check: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
