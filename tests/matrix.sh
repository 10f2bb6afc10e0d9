#!/usr/bin/env bash
# The server matrix: the integration tests marked `matrix` against every server that `make servers` unpacked
# (images/servers.sh), one pytest run per server. Prints per server its result, its time and the figures the tests
# print, then one summary line:
#   matrix: N passed, N failed, N skipped in S s
# Usage: tests/matrix.sh BUILD_DIR [NAME...]      (default: every server of images/servers.sh)
# Environment: PYTHON (/usr/bin/python3), PYTEST_ARGS (extra pytest arguments, e.g. -x or -k), MATRIX_PYREDIS:
# host (default: the host's python3-redis, as the other runs) or trixie (trixie's, unpacked by `make servers`, on
# PYTHONPATH; its clients retry a refused AUTH 3 times with a backoff of seconds, which slows the rotation tests),
# MATRIX_SKIP_HOST=1 (tests/check.sh sets it): skip a server whose package and version are exactly the host's
# redis-server, which the integration suite has just run the same tests against.
set -uo pipefail

build=${1:?usage: tests/matrix.sh BUILD_DIR [NAME...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
python=${PYTHON:-/usr/bin/python3}
servers=$build/servers
if [[ $# -gt 0 ]]; then
	names=("$@")
else
	read -r -a names <<<"$("$root/images/servers.sh" names)"
fi
pyredis=
case ${MATRIX_PYREDIS:-host} in
host) ;;
trixie) pyredis=$servers/python3-redis/usr/lib/python3/dist-packages ;;
*) echo "MATRIX_PYREDIS='$MATRIX_PYREDIS': must be host or trixie" >&2; exit 100 ;;
esac
logs=$build/matrix
mkdir -p "$logs"
passed=0 failed=0 skipped=0 rows=() failing_logs=()
t_all=$(date +%s.%N)

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }
# The last figure a line matching $1 holds (the tests' own prints), or "-".
figure() {
	local v
	v=$(grep -oE "$1" "$log" | tail -n1 | grep -oE '[0-9]+(\.[0-9]+)?' | tail -n1)
	echo "${v:--}"
}

for name in "${names[@]}"; do
	if [[ ! -f $servers/$name/server ]]; then
		echo "!!!!! matrix: $name SKIPPED: not unpacked in $servers (make servers says why)"
		rows+=("$(printf '%-11s %-34s %s' "$name" "-" "SKIPPED (not unpacked)")")
		continue
	fi
	version=$(sed -n 's/^version=//p' "$servers/$name/server")
	suite=$(sed -n 's/^suite=//p' "$servers/$name/server")
	package=$(sed -n 's/^package=//p' "$servers/$name/server")
	if [[ ${MATRIX_SKIP_HOST:-0} == 1 && $version == "$(dpkg-query -W -f '${Version}' "$package" 2>/dev/null)" ]]; then
		echo "=== matrix: $name is the host's $package $version: tests/integration ran these tests against it"
		rows+=("$(printf '%-11s %-44s %s' "$name" "$version ($suite)" "the host's server: see tests/integration")")
		continue
	fi
	log=$logs/$name.log
	echo "=== matrix: $name ($package $version from $suite)"
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086 # PYTEST_ARGS: words
	(cd "$root" && KVINIT_BIN=$build/kvinit KVINIT_PROBE=$build/tests/probe KVINIT_SERVERS=$servers \
		PYTHONPATH=$pyredis${PYTHONPATH:+${pyredis:+:}$PYTHONPATH} "$python" -m pytest -q -rfEsx -s -p no:cacheprovider \
		-m matrix --server="$name" ${PYTEST_ARGS:-} tests/integration) >"$log" 2>&1
	rc=$?
	took=$(since "$t0")
	grep -E '^(formation|write gap|stop gap|kill -9|kubernetes step|grace 0|all 6 nodes moved|6-node cluster|replica links|a restarted replica)' "$log" || true
	grep -E '^(FAILED|ERROR|XPASS)|^(=+ )?[0-9]+ (passed|failed|error)' "$log" || true
	line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error|xfailed|deselected)' "$log" | tail -n1)
	p=0 f=0 s=0
	for kind in passed failed error skipped xfailed xpassed; do
		n=$(grep -oE "[0-9]+ $kind" <<<"$line" | grep -oE '^[0-9]+' || true)
		case $kind in
		passed | xfailed) p=$((p + ${n:-0})) ;;
		failed | error | xpassed) f=$((f + ${n:-0})) ;;
		skipped) s=$((s + ${n:-0})) ;;
		esac
	done
	if [[ $rc -ne 0 && $f -eq 0 ]]; then
		f=1 # no summary, or no test ran (exit 5): the log says why
		echo "matrix: $name: pytest exited with $rc (see $log)"
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	[[ $f -eq 0 ]] || failing_logs+=("$log")
	result="$p passed"
	[[ $f -eq 0 ]] || result+=", $f FAILED"
	[[ $s -eq 0 ]] || result+=", $s skipped"
	rows+=("$(printf '%-11s %-44s %-32s %6s %10s %10s %8s %8s %9s %8s %8s' "$name" "$version ($suite)" "$result" \
		"$took s" \
		"$(figure 'formation of 6 nodes: [^0-9]*[0-9]+ ms')" "$(figure 'formation of 4 nodes: [^0-9]*[0-9]+ ms')" \
		"$(figure 'write gap during a graceful stop of a master: [0-9]+ ms')" \
		"$(figure 'to PONG from the new one: [0-9]+ ms')" \
		"$(figure 'step 1 \(next=B\): all 6 nodes accept B [0-9.]+ s')" \
		"$(figure 'moved to new addresses: cluster ok [0-9.]+ s')" \
		"$(figure 'replica links up [0-9]+ ms after cluster-init')")")
done

echo
echo "matrix: the tests marked 'matrix' per server (logs in $logs); figures: formation = cluster-init's own time,"
echo "gap = longest write gap while a master stops (SIGTERM), restart = kill -9 to PONG, rotation = every node"
echo "accepts a new password (s), heal = all 6 nodes moved to new addresses until cluster ok (s), sync = every"
echo "replica's link up after cluster-init's exit"
printf '%-11s %-44s %-32s %6s %10s %10s %8s %8s %9s %8s %8s\n' server "version (suite)" result time "form6 ms" \
	"form4 ms" "gap ms" "restart" "rotate s" "heal s" "sync ms"
for row in "${rows[@]}"; do echo "$row"; done
# what failed, last (CI keeps the end of the output): the summary lines and the first assertion lines of each log
for log in "${failing_logs[@]}"; do
	echo "matrix: failures in $log:"
	grep -E '^(FAILED|ERROR) ' "$log" || true
	grep -E '^E  ' "$log" | head -n 40 || true
done
echo "matrix: $passed passed, $failed failed, $skipped skipped in $(since "$t_all") s"
[[ $failed -eq 0 ]]
