#!/usr/bin/env bash
# Sourced by stack.sh and scale.sh, not run on its own.

# compose_cmd DIR PROJECT FILE...: sets the array `compose` to the compose command for project PROJECT with the
# compose files FILE... (in DIR, which is also the project directory): `docker compose` (v2) when present, else
# Debian's docker-compose 1.29: the files work with both. Calls the caller's die when neither is installed.
compose_cmd() {
	local dir=$1 project=$2 f args
	shift 2
	args=(--project-directory "$dir" -p "$project")
	for f in "$@"; do args+=(-f "$dir/$f"); done
	# shellcheck disable=SC2034 # compose is the caller's
	if docker compose version >/dev/null 2>&1; then
		compose=(docker compose "${args[@]}")
	elif command -v docker-compose >/dev/null 2>&1; then
		compose=(docker-compose "${args[@]}")
	else
		die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"
	fi
}
