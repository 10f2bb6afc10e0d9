#!/usr/bin/env bash
# apt for one Debian suite, beside the machine's own: bookworm, bookworm-backports, trixie, sid, ...
#
# Usage: images/suite.sh SUITE sources              the sources list made for SUITE
#        images/suite.sh SUITE update               apt-get update of SUITE's lists
#        images/suite.sh SUITE apt-get|apt-cache ARGS...
# Sourced (build-rootfs.sh, servers.sh): suite_setup SUITE, then suite_apt_get / suite_apt_cache / suite_update.
#
# The sources list is made at run time from the machine's own apt configuration (/etc/apt/sources.list and
# sources.list.d, one-line and deb822 forms): every enabled `deb` entry for this machine's release keeps its
# archive address, components and options; only the suite names change. The release itself becomes SUITE's base
# (trixie for trixie, bookworm for bookworm-backports), <release>-updates and <release>-security become
# <base>-updates and <base>-security (none for sid), and a SUITE named <base>-backports is added beside its base.
# No archive address is written into the project: it is read from the machine.
#
# Each suite has its own apt state, lists and cache under $SUITE_DIR/<suite> (default $BUILD/apt/<suite>), an empty
# dpkg status and no preferences from the machine, so nothing the machine has installed or pinned counts. The lists
# are fetched when missing, when the sources list changed, when older than $SUITE_MAX_AGE hours (default 24; sid
# changes daily) and on demand (suite_update, e.g. after a download failed with the lists out of date).
#
# Environment: BUILD (build), SUITE_DIR ($BUILD/apt), SUITE_MAX_AGE (24), APT_ETC (/etc/apt, where the machine's
# sources are read), OS_RELEASE (/etc/os-release).

suite_die() {
	echo "suite: $*" >&2
	exit 1
}

# The machine's release codename (bookworm).
suite_host_codename() {
	local id
	id=$(sed -n 's/^VERSION_CODENAME=//p' "${OS_RELEASE:-/etc/os-release}" 2>/dev/null | tr -d '"' | head -n1)
	[[ -n $id ]] || id=$(lsb_release -cs 2>/dev/null || true)
	echo "$id"
}

# The sources list for $1 (deb822), from the machine's apt sources; empty when no entry is for this release.
suite_sources() {
	local suite=$1 host base extra="" etc=${APT_ETC:-/etc/apt} files=() f
	host=$(suite_host_codename)
	[[ -n $host ]] || suite_die "cannot tell this machine's Debian release (no VERSION_CODENAME in /etc/os-release)"
	base=$suite
	if [[ $suite == *-backports ]]; then
		base=${suite%-backports}
		extra=$suite
	fi
	[[ -f $etc/sources.list ]] && files+=("$etc/sources.list")
	for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
		[[ -f $f ]] && files+=("$f")
	done
	[[ ${#files[@]} -gt 0 ]] || return 0
	awk -v host="$host" -v base="$base" -v extra="$extra" '
		# A suite of this machine (host, host-updates, host-security) -> the same for base; "" for any other.
		function map(s,   pocket) {
			if (s == host) return base
			if (index(s, host "-") != 1) return ""
			pocket = substr(s, length(host) + 2)
			if (pocket != "updates" && pocket != "security") return ""
			if (base == "sid" || base == "unstable" || base == "experimental") return ""
			return base "-" pocket
		}
		function mapped(list,   n, i, a, out, m, has_release) {
			n = split(list, a, /[ \t]+/)
			out = ""
			for (i = 1; i <= n; i++) {
				if (a[i] == "") continue
				m = map(a[i])
				if (m == "") continue
				if (m == base) has_release = 1
				out = out (out == "" ? "" : " ") m
			}
			if (has_release && extra != "") out = out " " extra
			return out
		}
		# deb822: stanzas of fields, continuation lines start with a blank; comments dropped.
		function flush(   i, suites, types) {
			if (nf == 0) return
			types = " " value["types"] " "
			if (tolower(value["enabled"]) != "no" && types ~ / deb / && (suites = mapped(value["suites"])) != "") {
				printf "Types: deb\n"
				for (i = 1; i <= nf; i++) {
					if (key[i] == "types" || key[i] == "suites") continue
					if (key[i] == "uris") printf "Suites: %s\n", suites
					printf "%s", text[i]
				}
				printf "\n"
			}
			nf = 0
			delete value
		}
		FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
		deb822 && /^[ \t]*#/ { next }
		deb822 && /^[ \t]*$/ { flush(); next }
		deb822 && /^[ \t]/ { text[nf] = text[nf] $0 "\n"; next }
		deb822 {
			k = tolower(substr($0, 1, index($0, ":") - 1))
			v = substr($0, index($0, ":") + 1)
			sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
			key[++nf] = k; text[nf] = $0 "\n"; value[k] = v
			next
		}
		# one-line: deb [options] URI SUITE COMPONENT..., written as a deb822 stanza ([arch=amd64] -> Architectures)
		!deb822 && $1 == "deb" {
			line = $0
			sub(/#.*/, "", line)
			opts = ""
			if (match(line, /\[[^]]*\]/)) {
				opts = substr(line, RSTART + 1, RLENGTH - 2)
				line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
			}
			n = split(line, w, /[ \t]+/)
			j = 0
			for (i = 1; i <= n; i++) if (w[i] != "") ww[++j] = w[i]
			if (j < 4 || (m = mapped(ww[3])) == "") next
			comps = ww[4]
			for (i = 5; i <= j; i++) comps = comps " " ww[i]
			printf "Types: deb\nSuites: %s\nURIs: %s\nComponents: %s\n", m, ww[2], comps
			n = split(opts, o, /[ \t]+/)
			for (i = 1; i <= n; i++) {
				if (o[i] == "" || index(o[i], "=") == 0) continue
				k = substr(o[i], 1, index(o[i], "=") - 1)
				v = substr(o[i], index(o[i], "=") + 1)
				gsub(/,/, " ", v)
				if (k == "arch") k = "Architectures"
				else if (k == "lang") k = "Languages"
				else if (k == "target") k = "Targets"
				else {
					nk = split(k, kw, "-")
					k = ""
					for (x = 1; x <= nk; x++) k = k (x > 1 ? "-" : "") toupper(substr(kw[x], 1, 1)) substr(kw[x], 2)
				}
				printf "%s: %s\n", k, v
			}
			printf "\n"
		}
		END { flush() }
	' "${files[@]}"
}

# Prepares SUITE's apt state and sets suite_name, suite_root and suite_apt_opts; fetches the lists when needed.
suite_setup() {
	local suite=$1 dir sources age stamp
	[[ $suite =~ ^[a-z][a-z0-9.+-]*$ ]] || suite_die "SUITE='$suite': must be a Debian suite name (bookworm, trixie, sid, ...)"
	command -v apt-get >/dev/null || suite_die "apt-get is missing: a Debian system is needed"
	dir=${SUITE_DIR:-${BUILD:-build}/apt}/$suite
	mkdir -p "$dir"/{lists/partial,cache/archives/partial,sources.list.d,preferences.d}
	dir=$(cd "$dir" && pwd)
	sources=$(suite_sources "$suite")
	[[ -n $sources ]] || suite_die "no enabled Debian entry for '$(suite_host_codename)' in ${APT_ETC:-/etc/apt}/sources.list(.d): cannot make one for '$suite'"
	if [[ ! -f $dir/sources.list.d/debian.sources || $(<"$dir/sources.list.d/debian.sources") != "$sources" ]]; then
		printf '%s\n' "$sources" >"$dir/sources.list.d/debian.sources"
		rm -f "$dir/updated"
	fi
	: >>"$dir/status"
	suite_name=$suite
	suite_root=$dir
	suite_apt_opts=(
		-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.list.d"
		-o "Dir::Etc::Preferences=$dir/preferences" -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
		-o "Dir::State=$dir" -o "Dir::State::lists=$dir/lists" -o "Dir::State::status=$dir/status"
		-o "Dir::State::extended_states=$dir/extended_states"
		-o "Dir::Cache=$dir/cache" -o "Dir::Cache::archives=$dir/cache/archives"
		# A binary cache of its own (Docker-style configs turn the machine's off): apt-cache answers in ms.
		-o "Dir::Cache::pkgcache=$dir/cache/pkgcache.bin" -o "Dir::Cache::srcpkgcache="
		-o "APT::Architectures=$(dpkg --print-architecture)" -o "Acquire::Languages=none"
	)
	[[ $(id -u) -eq 0 ]] && suite_apt_opts+=(-o APT::Sandbox::User=root) # the files here are root's
	stamp=$dir/updated
	age=$((${SUITE_MAX_AGE:-24} * 60))
	if [[ ${SUITE_FORCE_UPDATE:-0} == 1 || ! -f $stamp || -n $(find "$stamp" -mmin "+$age" 2>/dev/null) ]]; then
		suite_update
	fi
}

# apt-get update of the current suite, under a lock (two builds of one suite at once).
suite_update() {
	local out
	echo "suite: $suite_name: apt-get update" >&2
	if ! out=$(flock "$suite_root/lock" apt-get -q "${suite_apt_opts[@]}" update 2>&1); then
		echo "$out" >&2
		suite_die "$suite_name: apt-get update failed (the lines above)"
	fi
	if grep -E '^(W|E|Err):' <<<"$out" >&2; then
		suite_die "$suite_name: apt-get update did not fetch every list (the lines above)"
	fi
	touch "$suite_root/updated"
}

suite_apt_get() { apt-get "${suite_apt_opts[@]}" "$@"; }
suite_apt_cache() { apt-cache "${suite_apt_opts[@]}" "$@"; }

# "VERSION ARCH" of the candidate of a package in the current suite, or nothing (no such real package).
suite_candidate() {
	suite_apt_cache show --no-all-versions "$1" 2>/dev/null |
		awk '/^Version: / { v = $2 } /^Architecture: / { a = $2 } /^$/ { exit } END { if (v != "") print v, a }'
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	[[ $# -ge 2 ]] || { echo "usage: $0 SUITE sources|update|apt-get ARGS|apt-cache ARGS" >&2; exit 2; }
	suite=$1 cmd=$2
	shift 2
	case $cmd in
	sources) suite_sources "$suite" ;;
	update) SUITE_FORCE_UPDATE=1 suite_setup "$suite" ;;
	apt-get) suite_setup "$suite" && suite_apt_get "$@" ;;
	apt-cache) suite_setup "$suite" && suite_apt_cache "$@" ;;
	*) echo "usage: $0 SUITE sources|update|apt-get ARGS|apt-cache ARGS" >&2; exit 2 ;;
	esac
fi
