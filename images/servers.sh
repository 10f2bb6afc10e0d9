#!/usr/bin/env bash
# shellcheck disable=SC2034 # SERVER_DEFAULT and the srv_* variables are for the scripts that source this one
# The servers kvinit is built and tested with, each from the Debian suite that carries it, and the test matrix.
#
# Usage: images/servers.sh names                 every server name (the test matrix)
#        images/servers.sh images                the names `make images` builds
#        images/servers.sh default               the server of kvinit:latest
#        images/servers.sh unpack [NAME...]      the test matrix: each server (default: all) unpacked under
#                                                $SERVERS_DIR/NAME (default $BUILD/servers), started through its
#                                                suite's loader by $SERVERS_DIR/NAME/bin/<server>; and trixie's
#                                                python3-redis under $SERVERS_DIR/python3-redis (for PYTHONPATH)
# Sourced (build-rootfs.sh): server_lookup NAME, server_check (after suite_setup).
#
# A server whose package is missing from a rolling suite (sid changes daily), or has moved on to another version
# there, is skipped with one loud line: the reason is outside the project, and nothing else depends on it. The
# same in a released suite is an error.

# name        suite               server package  client package  version (its first parts)
SERVER_TABLE=(
	"redis-7.0   bookworm            redis-server    redis-tools     7.0"
	"redis-8.0   trixie              redis-server    redis-tools     8.0"
	"valkey-8.0  bookworm-backports  valkey-server   valkey-tools    8.0"
	"valkey-8.1  trixie              valkey-server   valkey-tools    8.1"
	"valkey-9    sid                 valkey-server   valkey-tools    9"
)
SERVER_IMAGES="redis-7.0 redis-8.0 valkey-8.1 valkey-9" # make images; kvinit:latest is redis-8.0
SERVER_DEFAULT=redis-8.0
ROLLING_SUITES="sid unstable experimental"
PYREDIS_SUITE=trixie # python3-redis 6.x: pure Python, a RedisCluster that recovers after a failover

server_names() {
	local row
	for row in "${SERVER_TABLE[@]}"; do echo "${row%% *}"; done | tr '\n' ' ' | sed 's/ $//'
}

# Sets srv_name, srv_suite, srv_pkg, srv_tools, srv_want, srv_flavor (redis|valkey), srv_bin, srv_cli (paths in
# the packages). Unknown name: one line listing the known ones, exit 100.
server_lookup() {
	local name=$1 row n
	for row in "${SERVER_TABLE[@]}"; do
		read -r n srv_suite srv_pkg srv_tools srv_want <<<"$row"
		if [[ $n == "$name" ]]; then
			srv_name=$name
			srv_flavor=${srv_pkg%-server}
			srv_bin=/usr/bin/$srv_flavor-server
			srv_cli=/usr/bin/$srv_flavor-cli
			return 0
		fi
	done
	echo "SERVER='$name': unknown server; known: $(server_names)" >&2
	exit 100
}

server_rolling() { [[ " $ROLLING_SUITES " == *" $srv_suite "* ]]; }

# After suite_setup "$srv_suite": checks that the suite has the server and its client at the wanted version, and
# sets srv_version (the package version). Otherwise one line: a skip (return 3) in a rolling suite, else an error
# (exit 1) that lists the known names.
server_check() {
	local v t upstream
	v=$(suite_candidate "$srv_pkg")
	t=$(suite_candidate "$srv_tools")
	v=${v%% *} t=${t%% *}
	upstream=${v#*:}
	if [[ -n $v && -n $t && ($upstream == "$srv_want" || $upstream == "$srv_want".*) ]]; then
		srv_version=$v
		return 0
	fi
	local why="$srv_suite has no $srv_pkg $srv_want.x today (candidate: ${v:-none})"
	[[ -n $t ]] || why="$srv_suite has no $srv_tools (candidate of $srv_pkg: ${v:-none})"
	if server_rolling; then
		echo "!!!!! SKIPPED $srv_name: $why; its image and matrix tests are skipped (outside the project: the suite moved)" >&2
		return 3
	fi
	echo "SERVER=$srv_name: $why; known: $(server_names)" >&2
	exit 1
}

# python3-redis of $PYREDIS_SUITE, unpacked (pure Python) into $1/python3-redis/usr/lib/python3/dist-packages.
unpack_pyredis() {
	local out=$1/python3-redis v deb tmp
	suite_setup "$PYREDIS_SUITE"
	v=$(suite_candidate python3-redis)
	v=${v%% *}
	[[ -n $v ]] || { echo "servers: $PYREDIS_SUITE has no python3-redis" >&2; return 1; }
	if [[ -f $out/version && $(<"$out/version") == "$v" ]]; then
		echo "servers: python3-redis $v ($PYREDIS_SUITE) in $out"
		return 0
	fi
	tmp=$(mktemp -d)
	(cd "$tmp" && suite_apt_get download -qq "python3-redis=$v") >&2 ||
		{ rm -rf "$tmp"; echo "servers: apt-get download python3-redis=$v failed" >&2; return 1; }
	rm -rf "$out"
	mkdir -p "$out"
	for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$out"; done
	rm -rf "$tmp"
	echo "$v" >"$out/version"
	echo "servers: python3-redis $v ($PYREDIS_SUITE) in $out"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	here=$(cd "$(dirname "$0")" && pwd)
	# shellcheck source=images/suite.sh
	. "$here/suite.sh"
	BUILD=${BUILD:-build}
	dir=${SERVERS_DIR:-$BUILD/servers}
	case ${1:-} in
	names) server_names && echo ;;
	images) echo "$SERVER_IMAGES" ;;
	default) echo "$SERVER_DEFAULT" ;;
	unpack)
		shift
		[[ $# -gt 0 ]] || read -r -a args <<<"$(server_names)"
		[[ $# -eq 0 ]] || args=("$@")
		mkdir -p "$dir"
		dir=$(cd "$dir" && pwd)
		for name in "${args[@]}"; do server_lookup "$name"; done # unknown names first, before any work
		t0=$SECONDS
		for name in "${args[@]}"; do
			server_lookup "$name"
			suite_setup "$srv_suite"
			rc=0
			server_check || rc=$?
			if [[ $rc -eq 3 ]]; then
				rm -rf "${dir:?}/$name"
				continue
			fi
			# Up to date: the same package version, unpacked here by the current scripts.
			info=$dir/$name/server
			if [[ -f $info && $info -nt $here/build-rootfs.sh && $info -nt $here/servers.sh &&
				$(sed -n 's/^version=//p' "$info") == "$srv_version" &&
				$(sed -n 's/^server=//p' "$info") == "$dir/$name/bin/$srv_flavor-server" ]]; then
				echo "servers: $name: $srv_pkg $srv_version ($srv_suite) in $dir/$name"
				continue
			fi
			"$here/build-rootfs.sh" server "$name" "$dir/$name"
		done
		unpack_pyredis "$dir"
		echo "servers: $((SECONDS - t0)) s"
		;;
	*)
		echo "usage: $0 names|images|default|unpack [NAME...]" >&2
		exit 2
		;;
	esac
fi
