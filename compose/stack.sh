#!/usr/bin/env bash
# The compose layouts, for make:
#   stack.sh up    [LAYOUT=main|cache-cluster|announce]   Docker engine, images, a password secret, the layout,
#                                                         cluster-init waited for, and how to connect
#   stack.sh down  [LAYOUT=...] [PURGE=1]                 stops it; volumes kept unless PURGE=1
#   stack.sh hosts                                        the hosts line for host access to the main layout
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
layout=${LAYOUT:-main}
hosts_line="127.0.0.1 redis-node-0 redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5"

die() {
	echo "make ${action:-up}: $*" >&2
	exit 1
}

case $layout in
main)
	files=(docker-compose.yml) project=kvinit init_service=redis-cluster-init first_node=redis-node-0
	host_hint="add this line to /etc/hosts once (make hosts prints it): $hosts_line
   then: redis-cli -c -h redis-node-0 -p 6379 --askpass"
	;;
cache-cluster)
	files=(docker-compose.cache-cluster.yml) project=kvinit-cache init_service=redis-cache-init first_node=redis-node-1
	host_hint="none: the cache cluster serves applications inside its compose network"
	;;
announce)
	files=(docker-compose.announce.yml) project=kvinit-announce init_service=cluster-init first_node=valkey0
	host_hint="redis-cli -c -p 6379 --askpass (redirects point at the published ports of \${ANNOUNCE_IP:-172.30.0.1})"
	;;
*)
	echo "LAYOUT='$layout': must be one of main, cache-cluster or announce" >&2
	exit 100
	;;
esac

# `docker compose` (v2) when present, else Debian's docker-compose 1.29: the files work with both.
compose_cmd() {
	local args=(--project-directory "$here" -p "$project")
	for f in "${files[@]}"; do args+=(-f "$here/$f"); done
	if docker compose version >/dev/null 2>&1; then
		compose=(docker compose "${args[@]}")
	elif command -v docker-compose >/dev/null 2>&1; then
		compose=(docker-compose "${args[@]}")
	else
		die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"
	fi
}

up() {
	local t0 t_start t_end cid state="" code deadline secret
	t0=$(date +%s.%N)
	"$here/../images/docker-engine.sh" || die "no Docker engine (see the lines above)"
	compose_cmd

	# The password: a random one the first time, readable by root only (kvinit reads it as root, then drops).
	mkdir -p "$here/secrets"
	secret="$here/secrets/redis_password"
	if [[ ! -s $secret ]]; then
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$secret" && echo >>"$secret")
		chmod 0600 "$secret"
		echo "make up: created $secret (mode 0600)"
	fi

	t_start=$(date +%s.%N)
	"${compose[@]}" up -d --remove-orphans || die "'${compose[*]} up' failed (see above)"

	# cluster-init is one-shot: wait for it to exit, bounded, and show its output either way.
	deadline=$((SECONDS + ${UP_TIMEOUT:-180}))
	while :; do
		cid=$("${compose[@]}" ps -q "$init_service" 2>/dev/null || true)
		if [[ -n $cid ]]; then
			state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$cid")
			[[ $state == exited* ]] && break
		fi
		((SECONDS < deadline)) || die "cluster-init did not finish within ${UP_TIMEOUT:-180}s; see: ${compose[*]} logs $init_service"
		sleep 0.2
	done
	code=${state#exited }
	"${compose[@]}" logs --no-color "$init_service" 2>/dev/null | sed 's/^[^|]*| //'
	[[ $code == 0 ]] || die "cluster-init exited with $code (its lines are above)"
	t_end=$(date +%s.%N)
	awk -v l="$layout" -v a="$t0" -v s="$t_start" -v e="$t_end" \
		'BEGIN { printf "\nmake up: %s layout ready: cluster ok %.1f s after compose up (%.1f s in all)\n", l, e - s, e - a }'
	echo "connect:   docker exec -it $(docker inspect -f '{{.Name}}' "$("${compose[@]}" ps -q "$first_node")" | tr -d /) kvinit cli -c"
	echo "from the host: $host_hint"
}

down() {
	if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
		echo "make down: no Docker engine running: nothing to stop" >&2
		return 0
	fi
	compose_cmd
	if [[ ${PURGE:-0} == 1 ]]; then
		"${compose[@]}" down --volumes --remove-orphans
		echo "make down: $layout stopped, its volumes removed"
	else
		"${compose[@]}" down --remove-orphans
		echo "make down: $layout stopped (volumes kept; PURGE=1 removes them)"
	fi
}

action=${1:-}
case $action in
up) up ;;
down) down ;;
hosts) echo "$hosts_line" ;;
*) die "usage: stack.sh up|down|hosts" ;;
esac
