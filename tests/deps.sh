#!/usr/bin/env bash
# Installs the Debian packages a group of make targets needs, when they are missing; a no-op when all are there.
# Usage: tests/deps.sh GROUP...   (groups: build test lint bench fuzz)
set -euo pipefail

declare -A groups=(
	[build]="gcc make pkg-config libcap-dev libseccomp-dev libhiredis-dev libinih-dev libssl-dev"
	[test]="libcmocka-dev redis-server redis-tools python3-pytest python3-redis python3-yaml yamllint tini dumb-init catatonit util-linux procps"
	[lint]="cppcheck clang-tidy clang-format shellcheck"
	[bench]="tini dumb-init catatonit hyperfine redis-server redis-tools"
	# make fuzz and fuzz-smoke only: clang 14 and its libFuzzer and sanitizer runtimes
	[fuzz]="clang libclang-rt-14-dev"
)

wanted=()
for g in "$@"; do
	[[ -n "${groups[$g]+x}" ]] || { echo "deps: unknown group '$g' (known: ${!groups[*]})" >&2; exit 2; }
	read -r -a pkgs <<<"${groups[$g]}"
	wanted+=("${pkgs[@]}")
done

missing=()
for p in "${wanted[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		[[ " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
	fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing packages (not a Debian system, install them yourself): ${missing[*]}" >&2
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing Debian packages; as root run: apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
