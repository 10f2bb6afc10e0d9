#!/usr/bin/env bash
# Runs the libFuzzer targets built in BUILD_DIR (make fuzz-build) on their corpora, tests/fuzz/corpus/<target>/,
# prints one line a target and ends with one summary line:
#   fuzz: N passed, N failed
# Usage: tests/fuzz/run.sh smoke BUILD_DIR           each target over its corpus and a few seconds more
#        tests/fuzz/run.sh run BUILD_DIR [SECONDS]    each target SECONDS (default 60); what it finds is kept in
#                                                     BUILD_DIR/corpus/<target>/ for the next run
# The committed corpus is only read. An input that breaks a property or trips a sanitizer is saved as
# BUILD_DIR/artifacts/<target>-crash-<sha1>: replay it with BUILD_DIR/fuzz_<target> FILE. Exit status 1 when a
# target failed, 2 for a usage error. FUZZ_SMOKE_SECONDS (3) and FUZZ_SMOKE_RUNS (100000) bound a smoke run.
set -uo pipefail

usage() {
	echo "usage: tests/fuzz/run.sh smoke BUILD_DIR | run BUILD_DIR [SECONDS]" >&2
	exit 2
}

mode=${1:-}
build=${2:-}
[[ -n $build && ($mode == smoke || $mode == run) ]] || usage
seconds=${3:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
smoke_seconds=${FUZZ_SMOKE_SECONDS:-3}
smoke_runs=${FUZZ_SMOKE_RUNS:-100000}
here=$(cd "$(dirname "$0")" && pwd)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# The longest input a target is given: enough for what its parser must take whole.
max_len() {
	case $1 in
	cluster_nodes) echo 32768 ;;            # CLUSTER NODES lines of 16 KB and more were skipped (issue 17)
	render | quote | secrets) echo 12288 ;; # a 4096-byte password, escaped; a 2000-byte extra-flag value
	*) echo 8192 ;;
	esac
}

# The first line of a failure's report: a broken property (fuzz.h), a sanitizer, or libFuzzer (a timeout, a leak).
report='^fuzz: property broken|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:'

# a build directory that is not there is reported below as targets not built
if [[ -d $build ]]; then
	mkdir -p "$build/artifacts" "$build/logs" || exit 1
fi
# The run's scratch space, in memory where there is some: the smoke runs' findings, and TMPDIR for the targets
# (fuzz_secrets writes a file for every input), gone at the end even when a target crashed.
base=${TMPDIR:-/tmp}
[[ -z ${TMPDIR:-} && -w /dev/shm ]] && base=/dev/shm
scratch=$(mktemp -d "$base/kvinit-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
passed=0 failed=0
for src in "$here"/fuzz_*.c; do
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	bin=$build/fuzz_$name
	log=$build/logs/$name.log
	if [[ ! -x $bin ]]; then
		echo "fuzz: $name: FAILED (not built: $bin; make fuzz-build)"
		failed=$((failed + 1))
		continue
	fi
	if [[ $mode == smoke ]]; then
		work=$(mktemp -d "$scratch/corpus.XXXXXX") || exit 1
		limits=(-max_total_time="$smoke_seconds" -runs="$smoke_runs")
	else
		work=$build/corpus/$name
		mkdir -p "$work" || exit 1
		limits=(-max_total_time="$seconds")
	fi
	before=$(find "$work" -type f | wc -l)
	start=$SECONDS
	# The first directory takes what the run finds; the committed corpus after it is only read.
	"$bin" "${limits[@]}" -max_len="$(max_len "$name")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$name-" "$work" "$here/corpus/$name" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	found=$(($(find "$work" -type f | wc -l) - before))
	[[ $mode == smoke ]] && rm -rf "$work"
	if [[ $rc -eq 0 ]]; then
		echo "fuzz: $name: ok, ${runs:-?} inputs in $((SECONDS - start)) s, $found new to the corpus"
		passed=$((passed + 1))
		continue
	fi
	failed=$((failed + 1))
	# cat -v: a value quoted in the report may hold any byte
	reason=$(grep -a -m1 -E "$report" "$log" | cat -v)
	artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n1)
	echo "fuzz: $name: FAILED (exit $rc): ${reason:-see the log}; input ${artifact:-none saved}; log $log"
	# the report, for a CI log that keeps only the output
	grep -a -E -A12 "$report" "$log" | head -n 30 | cat -v | sed 's/^/    /'
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
