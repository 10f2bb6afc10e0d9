#!/usr/bin/env bash
# `make scale NODES=8|6`: the main layout (docker-compose.yml) scaled out to 8 nodes and back, online.
#   NODES=8  starts redis-node-6 and redis-node-7 (docker-compose.scale.yml) and runs cluster-init over the 8: the
#            nodes the replica count does not need become masters and receive their share of the slots, moved
#            while clients keep working; the others attach as replicas
#   NODES=6  runs cluster-init over the first 6 with REDIS_CLUSTER_ALLOW_REMOVE=yes: redis-node-6 and -7 are
#            drained, forgotten by every node and reset; then they are stopped and their volumes removed
# While the layout is scaled out, compose/.scaled-out says so, and `make up` keeps the override in (stack.sh).
# A layout up with TLS=1 (its redis-node-0 mounts certificates) is scaled with TLS (compose/tls.sh): redis-node-6 and
# -7 get their certificates from the layout's CA when they have none, and the TLS override is written for the eight
# nodes before they start (and for the six again once they are gone), so the new nodes and cluster-init speak TLS.
# SCALE_TIMEOUT (default 180) bounds the wait for the new nodes, in seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
marker=$here/.scaled-out
project=kvinit
six="redis-node-0:${REDIS0_PORT:-6379} redis-node-1:${REDIS1_PORT:-6380} redis-node-2:${REDIS2_PORT:-6381}"
six+=" redis-node-3:${REDIS3_PORT:-6382} redis-node-4:${REDIS4_PORT:-6383} redis-node-5:${REDIS5_PORT:-6384}"
six_names=(redis-node-0 redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5)
added=(redis-node-6 redis-node-7)

die() {
	echo "make scale: $*" >&2
	exit 1
}

# shellcheck source=compose/compose_cmd.sh
. "$here/compose_cmd.sh"
# shellcheck source=compose/tls.sh
. "$here/tls.sh"
# what tls.sh reads (stack.sh's names for the main layout)
action=scale layout=main layout_arg="" init_service=redis-cluster-init first_node=redis-node-0

running() {
	[[ -n $(docker ps -q --filter "label=com.docker.compose.project=$project" \
		--filter "label=com.docker.compose.service=$1") ]]
}

healthy() {
	[[ $(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null) == healthy ]]
}

# The compose command for the layout scaled out; with TLS, the certificates the eight nodes miss made first, and the
# override written for the eight.
compose_eight() {
	files=(docker-compose.yml docker-compose.scale.yml)
	if ((tls)); then
		nodes=("${six_names[@]}" "${added[@]}")
		tls_override
	fi
	compose_cmd "$here" "$project" "${files[@]}"
}

# cluster-init once, in a container of the layout's init service; extra arguments go to `compose run`.
cluster_init() {
	local t0=$SECONDS
	"${compose[@]}" run --rm --no-deps -T "$@" redis-cluster-init ||
		die "cluster-init failed (its lines are above); the layout is as it left it, run the same again"
	echo "make scale: cluster-init done in $((SECONDS - t0)) s"
}

scale_out() {
	local node deadline=$((SECONDS + ${SCALE_TIMEOUT:-180}))
	compose_eight
	# kept in by `make up` from now on: the two nodes must never be dropped as orphans while they hold slots
	: >"$marker"
	"${compose[@]}" up -d --no-recreate "${added[@]}" || die "could not start ${added[*]} (see above)"
	for node in "${added[@]}"; do
		until healthy "$node"; do
			((SECONDS < deadline)) || die "$node is not healthy within ${SCALE_TIMEOUT:-180}s: docker logs $node"
			sleep 0.5
		done
	done
	cluster_init
	echo "make scale: 8 nodes; from the host, the hosts line has redis-node-6 and redis-node-7 now (make hosts):"
	echo "   127.0.0.1 redis-node-0 redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5 ${added[*]}"
}

scale_in() {
	compose_eight
	cluster_init -e "REDIS_NODES=$six" -e REDIS_CLUSTER_ALLOW_REMOVE=yes
	"${compose[@]}" rm -s -f "${added[@]}"
	docker volume rm "${project}_redis-data-6" "${project}_redis-data-7" >/dev/null 2>&1 || true
	rm -f "$marker"
	if ((tls)); then # `make init TLS=1` takes the override as it is: without the two services it has no file for
		files=(docker-compose.yml) nodes=("${six_names[@]}")
		tls_override
	fi
	echo "make scale: 6 nodes; ${added[*]} removed with their volumes"
}

running redis-node-0 || die "the main layout is not up: \`make up\` first"
# Up with TLS=1 (compose/tls.sh mounts the certificates): scaled with TLS, and with the REDIS_TLS_AUTH_CLIENTS it was
# brought up with, unless set
tls=0
if [[ $(docker inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' redis-node-0) == */run/secrets/tls* ]]; then
	tls=1
	: "${REDIS_TLS_AUTH_CLIENTS:=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' redis-node-0 |
		sed -n 's/^REDIS_TLS_AUTH_CLIENTS=//p')}"
fi
case ${NODES:-} in
8) scale_out ;;
6)
	running redis-node-6 || [[ -e $marker ]] || {
		echo "make scale: the layout has 6 nodes already"
		exit 0
	}
	scale_in
	;;
*)
	echo "make scale: NODES='${NODES:-}': must be 8 (adds redis-node-6 and -7) or 6 (drains and removes them)" >&2
	exit 100
	;;
esac
