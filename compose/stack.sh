#!/usr/bin/env bash
# The compose layouts, for make:
#   stack.sh up    [LAYOUT=main|cache-cluster|announce|sentinel]   Docker engine, images, a password secret, the
#                  [KVINIT_IMAGE=kvinit:NAME]             layout, cluster-init (sentinel: every service healthy)
#                                                         waited for, and how to connect; the node image:
#                                                         KVINIT_IMAGE (environment or compose/.env), else the
#                                                         layout's (main, cache-cluster, sentinel: kvinit:redis-8.0;
#                                                         announce: kvinit:valkey-9)
#   stack.sh init  [LAYOUT=main|cache-cluster|announce]   runs the layout's cluster-init again (compose up of the
#                                                         init service, never `compose run`: the service has a
#                                                         fixed address and container name) and waits as up does
#   stack.sh down  [LAYOUT=...] [PURGE=1]                 stops it; volumes kept unless PURGE=1
#   stack.sh hosts [LAYOUT=main|sentinel]                 the hosts line for host access to the layout
#   stack.sh rotate        [LAYOUT=...]                   a new random password, live: steps 1 and 2 of README.md,
#                                                         "Rotating the password" (the old one still works)
#   stack.sh rotate-finish [LAYOUT=...]                   step 3: the nodes refuse the old password
#   stack.sh rotate-certs  [LAYOUT=...]                   new TLS certificates from the same CA, live (compose/tls.sh)
# TLS=1 (up, init): every link TLS, with a CA and certificates made under secrets/tls/ when missing (compose/tls.sh)
# UP_TIMEOUT (default 180) bounds up's and init's wait for cluster-init, READY_TIMEOUT (default 60) their wait after it
# for every node to be ready (cluster ok, every replica's link up), ROTATE_TIMEOUT (default 60) each wait of rotate
# and rotate-finish; all in seconds.
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
	default_image=kvinit:redis-8.0
	nodes=(redis-node-0 redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5)
	if [[ -e $here/.scaled-out ]]; then # `make scale NODES=8` (compose/scale.sh): the two nodes it added
		files+=(docker-compose.scale.yml) nodes+=(redis-node-6 redis-node-7)
		hosts_line+=" redis-node-6 redis-node-7"
	fi
	host_hint="add this line to /etc/hosts once (make hosts prints it): $hosts_line
   then: redis-cli -c -h redis-node-0 -p 6379 --askpass"
	;;
cache-cluster)
	files=(docker-compose.cache-cluster.yml) project=kvinit-cache init_service=redis-cache-init first_node=redis-node-1
	default_image=kvinit:redis-8.0
	nodes=(redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5 redis-node-6)
	host_hint="none: the cache cluster serves applications inside its compose network"
	;;
announce)
	files=(docker-compose.announce.yml) project=kvinit-announce init_service=cluster-init first_node=valkey0
	default_image=kvinit:valkey-9
	nodes=(valkey0 valkey1 valkey2 valkey3)
	host_hint="redis-cli -c -p 6379 --askpass (redirects point at the published ports of \${ANNOUNCE_IP:-172.30.0.1})"
	;;
sentinel)
	files=(docker-compose.sentinel.yml) project=kvinit-sentinel init_service="" first_node=redis-primary
	default_image=kvinit:redis-8.0
	nodes=(redis-primary redis-replica-1 redis-replica-2)
	hosts_line="127.0.0.1 redis-primary redis-replica-1 redis-replica-2 sentinel-1 sentinel-2 sentinel-3"
	host_hint="add this line to /etc/hosts once (make hosts LAYOUT=sentinel prints it): $hosts_line
   then a Sentinel client: sentinels 127.0.0.1:26379, :26380, :26381, master set mymaster"
	;;
*)
	echo "LAYOUT='$layout': must be one of main, cache-cluster, announce or sentinel" >&2
	exit 100
	;;
esac
layout_arg=${LAYOUT:+ LAYOUT=$layout} # for the hints this script prints
# shellcheck source=compose/tls.sh
. "$here/tls.sh"

# shellcheck source=compose/compose_cmd.sh
. "$here/compose_cmd.sh" # compose_cmd: the compose command, into ${compose[@]}

# The password file the compose files mount: REDIS_PASSWORD_SECRET_FILE from the environment or compose/.env,
# relative to compose/ as compose resolves it. The rotation files are beside it: <file>_next and <file>_previous.
# The users file and the exporter's password (README.md, "ACL users"): REDIS_USERS_SECRET_FILE and
# REDIS_EXPORTER_PASSWORD_SECRET_FILE the same way.
secret_file() {
	local var=${1:-REDIS_PASSWORD_SECRET_FILE} default=${2:-./secrets/redis_password} f
	f=${!var:-}
	[[ -n $f || ! -r $here/.env ]] || f=$(sed -n "s/^$var=//p" "$here/.env" | tail -n1)
	f=${f:-$default}
	[[ $f == /* ]] || f=$here/${f#./}
	echo "$f"
}

# The node image compose will run: KVINIT_IMAGE from the environment, else from compose/.env, else the layout's.
node_image() {
	local image=${KVINIT_IMAGE:-}
	[[ -n $image || ! -r $here/.env ]] || image=$(sed -n 's/^KVINIT_IMAGE=//p' "$here/.env" | tail -n1)
	echo "${image:-$default_image}"
}

new_password() {
	head -c 24 /dev/urandom | base64 | tr -d '/+=\n'
}

# The secrets, readable by root only (kvinit reads them as root, then drops): a random password the first time,
# and the two rotation files, empty ("no rotation under way"); the exporter's own password, random, and the users
# file from compose/config/redis_users (the exporter's user, an application's as an example). They must exist before
# compose starts a node: Docker would make a missing bind-mount source a directory.
make_secrets() {
	local f users exporter
	users=$(secret_file REDIS_USERS_SECRET_FILE ./secrets/redis_users)
	exporter=$(secret_file REDIS_EXPORTER_PASSWORD_SECRET_FILE ./secrets/redis_exporter_password)
	mkdir -p "$(dirname "$secret")"
	if [[ ! -s $secret ]]; then
		(umask 077 && new_password >"$secret" && echo >>"$secret")
		chmod 0600 "$secret"
		echo "make up: created $secret (mode 0600)"
	fi
	for f in "${secret}_next" "${secret}_previous"; do
		[[ ! -d $f ]] || die "$f is a directory (Docker makes one when a secret file is missing): rmdir it"
		if [[ ! -e $f ]]; then
			(umask 077 && : >"$f")
			chmod 0600 "$f"
			echo "make up: created $f (empty, mode 0600)"
		fi
	done
	for f in "$users" "$exporter"; do
		[[ ! -d $f ]] || die "$f is a directory (Docker makes one when a secret file is missing): rmdir it"
		mkdir -p "$(dirname "$f")"
	done
	if [[ ! -s $exporter ]]; then
		(umask 077 && new_password >"$exporter" && echo >>"$exporter")
		chmod 0600 "$exporter"
		echo "make up: created $exporter (mode 0600)"
	fi
	if [[ ! -e $users ]]; then
		(umask 077 && cat "$here/config/redis_users" >"$users")
		chmod 0600 "$users"
		echo "make up: created $users from config/redis_users (mode 0600; write it in place to change the users live)"
	fi
}

up() {
	local t0 t_start t_init t_end image server
	t0=$(date +%s.%N)
	"$here/../images/docker-engine.sh" || die "no Docker engine (see the lines above)"
	[[ ${TLS:-0} != 1 ]] || tls_up
	compose_cmd "$here" "$project" "${files[@]}"
	image=$(node_image)
	server=$(docker image inspect -f '{{index .Config.Labels "kvinit.server.package"}}' "$image" 2>/dev/null) ||
		die "no image $image: \`make image SERVER=${image#kvinit:}\` builds it (\`make images\`: all of them)"
	[[ $server != "<no value>" ]] || server="no kvinit.server.package label"
	echo "make up: the $layout layout on $image (${server/=/ })"
	make_secrets

	t_start=$(date +%s.%N)
	"${compose[@]}" up -d --remove-orphans || die "'${compose[*]} up' failed (see above)"
	[[ -n $init_service ]] || {
		wait_healthy "$t0" "$t_start"
		return
	}

	wait_init
	t_init=$(date +%s.%N)
	wait_ready
	t_end=$(date +%s.%N)
	awk -v l="$layout" -v a="$t0" -v s="$t_start" -v i="$t_init" -v e="$t_end" \
		'BEGIN { printf "\nmake up: %s layout ready: cluster ok %.1f s after compose up, every replica linked %.1f s later (%.1f s in all)\n", l, i - s, e - i, e - a }'
	echo "connect:   docker exec -it $(docker inspect -f '{{.Name}}' "$("${compose[@]}" ps -q "$first_node")" | tr -d /) kvinit cli -c"
	echo "from the host: $host_hint"
}

# cluster-init again, on a running layout: `compose up` of the init service starts its one container again (and
# any node that is not running, waiting for it to be healthy). `compose run` would start a second container with
# the service's fixed address and fail ("Address already in use") while another run of it is under way.
init() {
	local t_start
	[[ -n $init_service ]] || die "the $layout layout has no cluster-init"
	"$here/../images/docker-engine.sh" || die "no Docker engine (see the lines above)"
	[[ ${TLS:-0} != 1 ]] || files+=("secrets/tls/docker-compose.tls.yml")
	compose_cmd "$here" "$project" "${files[@]}"
	t_start=$(date +%s.%N)
	"${compose[@]}" up -d "$init_service" || die "'${compose[*]} up -d $init_service' failed (see above)"
	wait_init
	wait_ready
	echo "make init: cluster-init done, every node ready $(since "$t_start") s after it started"
}

# cluster-init is one-shot: waits for it to exit, bounded by UP_TIMEOUT, and shows the output of this run of it
# either way (its container's log holds every earlier run too).
wait_init() {
	local cid="" state="" started code deadline=$((SECONDS + ${UP_TIMEOUT:-180}))
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
	started=$(docker inspect -f '{{.State.StartedAt}}' "$cid")
	docker logs --since "$started" "$cid" 2>&1
	[[ $code == 0 ]] || die "cluster-init exited with $code (its lines are above)"
}

# cluster-init exits once the cluster is ok; a replica's link to its master (its first full sync) can still be down
# for a few seconds then. Waits, bounded by READY_TIMEOUT, until `kvinit health --ready` passes on every node:
# cluster ok, every replica's master_link_status up, every node seen by its peers where it is.
wait_ready() {
	local svc cid deadline=$((SECONDS + ${READY_TIMEOUT:-60})) why names=()
	local -A name_of=()
	pending=()
	for svc in "${nodes[@]}"; do
		cid=$(service_container "$svc")
		[[ -n $cid ]] || die "$svc is not running; see: ${compose[*]} logs $svc"
		pending+=("$cid") name_of[$cid]=$svc
	done
	while :; do
		check_pending ready
		((${#pending[@]} == 0)) && return 0
		((SECONDS < deadline)) || break
		sleep 0.2
	done
	for cid in "${pending[@]}"; do
		why=$(timeout 10 docker exec "$cid" kvinit health --ready 2>&1 | tail -n1) || true
		echo "make ${action}: ${name_of[$cid]}: ${why:-no answer}" >&2
		names+=("${name_of[$cid]}")
	done
	die "cluster-init is done, but ${names[*]} not ready within ${READY_TIMEOUT:-60}s (the lines above say why);" \
		"see: ${compose[*]} logs ${names[*]}"
}

# A layout without a one-shot init (sentinel): every service with a healthcheck healthy, bounded by UP_TIMEOUT.
wait_healthy() {
	local t0=$1 t_start=$2 cid state unhealthy deadline=$((SECONDS + ${UP_TIMEOUT:-180}))
	while :; do
		unhealthy=()
		for cid in $("${compose[@]}" ps -q); do
			state=$(docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' "$cid")
			[[ $state == *" healthy" || $state == *" -" ]] || unhealthy+=("${state%% *}")
		done
		((${#unhealthy[@]} == 0)) && break
		((SECONDS < deadline)) || die "not healthy within ${UP_TIMEOUT:-180}s: ${unhealthy[*]#/}; see: ${compose[*]} logs"
		sleep 0.5
	done
	awk -v l="$layout" -v a="$t0" -v s="$t_start" -v e="$(date +%s.%N)" \
		'BEGIN { printf "\nmake up: %s layout ready: every service healthy %.1f s after compose up (%.1f s in all)\n", l, e - s, e - a }'
	echo "connect:   docker exec -it $(docker inspect -f '{{.Name}}' "$("${compose[@]}" ps -q "$first_node")" | tr -d /) kvinit cli"
	echo "from the host: $host_hint"
}

down() {
	if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
		echo "make down: no Docker engine running: nothing to stop" >&2
		return 0
	fi
	compose_cmd "$here" "$project" "${files[@]}"
	if [[ ${PURGE:-0} == 1 ]]; then
		"${compose[@]}" down --volumes --remove-orphans
		echo "make down: $layout stopped, its volumes removed"
	else
		"${compose[@]}" down --remove-orphans
		echo "make down: $layout stopped (volumes kept; PURGE=1 removes them)"
	fi
}

# --- Password rotation (README.md, "Rotating the password"). Every file is written in place (`>` truncates and
# writes the same inode): each node bind-mounts the file itself, and a file replaced by a rename (mv, sed -i, an
# editor's save) never reaches a running container. The password is never on a command line: it goes through
# printf (a builtin) into the files or a pipe, and `kvinit cli` reads the node's own copy of a file.

# The running container of a compose service, by the labels both compose versions set (faster than compose ps).
service_container() {
	docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"
}

# The running node containers (cids, and node_name by container); checks that each mounts the files this script
# writes and sees what they hold.
find_nodes() {
	local svc cid name src started mounts pid
	local restart_hint="restart that node (docker restart, one node at a time): it then mounts the file as it is now"
	local -A running=()
	# name|start time|mount target=source|...
	local inspect_format='{{.Name}}|{{.State.StartedAt}}|{{range .Mounts}}{{.Destination}}={{.Source}}|{{end}}'
	declare -gA node_name=()
	while read -r svc cid; do running[$svc]=$cid; done < <(docker ps --filter "label=com.docker.compose.project=$project" \
		--format '{{.Label "com.docker.compose.service"}} {{.ID}}')
	cids=()
	copy_dir=$(mktemp -d) # removed on exit (the trap below)
	for svc in "${nodes[@]}"; do
		cid=${running[$svc]:-}
		[[ -n $cid ]] || die "$svc is not running: \`make up$layout_arg\` first"
		IFS='|' read -r name started mounts < <(docker inspect -f "$inspect_format" "$cid")
		node_name[$cid]=${name#/}
		# The node's own view of its secrets: through /proc/PID/root, its mount namespace, the files it really
		# mounts (docker cp of a bind-mounted file reads the host path, so it cannot see a stale mount). A
		# different content means the host file was replaced (a new inode under the same name), and the node
		# still sees the old one. An engine that is not local to this shell falls back to docker cp.
		pid=$(docker inspect -f '{{.State.Pid}}' "$cid")
		if [[ -r /proc/$pid/root/run/secrets ]]; then
			mkdir -p "$copy_dir/secrets"
			cp /proc/"$pid"/root/run/secrets/redis_password* "$copy_dir/secrets/" 2>/dev/null || true
		else
			docker cp "$cid:/run/secrets" - 2>/dev/null | tar -x -C "$copy_dir" 2>/dev/null || true
		fi
		for name in redis_password redis_password_next redis_password_previous; do
			src=$(tr '|' '\n' <<<"$mounts" | sed -n "s#^/run/secrets/$name=##p")
			[[ -n $src ]] || die "$svc has no /run/secrets/$name: it was created from an older compose file;" \
				"\`make up\` recreates it (a restart of every node)"
			[[ $src -ef ${secret}${name#redis_password} ]] ||
				die "$svc mounts $src as $name, not ${secret}${name#redis_password}"
			cmp -s "$copy_dir/secrets/$name" "$src" || die "$svc does not see the current $src: the file was" \
				"replaced instead of written in place (mv, sed -i, an editor); $restart_hint"
		done
		rm -rf "${copy_dir:?}/secrets"
		# The same content under a new inode: kvinit says so in its log when the old file loses its last name.
		# (grep without -q reads to the end: docker logs must not die of SIGPIPE under pipefail.)
		if docker logs --since "$started" "$cid" 2>&1 | grep -F "was replaced, not written" >/dev/null; then
			die "$svc logged that a password file was replaced instead of written in place" \
				"(docker logs ${node_name[$cid]}); $restart_hint"
		fi
		cids+=("$cid")
	done
}

# Runs CHECK CID for the containers in $pending, all at once; keeps in $pending those where it failed.
check_pending() {
	local i cid pids=() still=()
	for cid in "${pending[@]}"; do "$@" "$cid" & pids+=($!); done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || still+=("${pending[$i]}"); done
	pending=("${still[@]}")
}

# wait_all WHAT HINT CHECK: check_pending until every node passes, or dies after ROTATE_TIMEOUT naming the nodes
# that did not, WHAT was waited for, and HINT.
wait_all() {
	local what=$1 hint=$2 check=$3 cid deadline=$((SECONDS + ${ROTATE_TIMEOUT:-60}))
	pending=("${cids[@]}")
	while :; do
		check_pending "$check"
		((${#pending[@]} == 0)) && return 0
		if ((SECONDS >= deadline)); then
			local names=()
			for cid in "${pending[@]}"; do names+=("${node_name[$cid]}"); done
			die "$what: not within ${ROTATE_TIMEOUT:-60}s on ${names[*]}$hint"
		fi
		sleep 0.2 # each round execs into every pending node: not too often on a busy host
	done
}

# Every probe gives up after 10 s (timeout), so that a node that hangs cannot hold a wait past ROTATE_TIMEOUT.
# Each one talks to the node through kvinit cli, which reaches it the way the node is set up: its port, and with
# REDIS_TLS_ENABLED (what `make up TLS=1` sets, compose/tls.sh) TLS on its TLS port with the node's CA, certificate
# and key from its own /run/secrets/tls. So rotate and rotate-finish work alike with and without TLS.
# The node's own copy of a file, read by kvinit cli, which puts it in redis-cli's REDISCLI_AUTH only.
accepts_file() {
	local out
	out=$(timeout 10 docker exec -e "REDIS_PASSWORD_FILE=/run/secrets/$1" "$2" kvinit cli ping 2>/dev/null) || true
	[[ $out == PONG ]]
}
accepts_next() { accepts_file redis_password_next "$1"; }
accepts_current() { accepts_file redis_password "$1"; }
ready() { timeout 10 docker exec "$1" kvinit health --ready >/dev/null 2>&1; }

# The old password, through a pipe to redis-cli --askpass (which takes it over the REDISCLI_AUTH of kvinit cli): it
# exists in no file any more.
refuses_old() {
	local out
	out=$(printf '%s\n' "$old" | timeout 10 docker exec -i "$1" kvinit cli --askpass ping 2>&1) || true
	[[ $out == *WRONGPASS* || $out == *NOAUTH* ]]
}

since() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

rotate() {
	local next previous new t_written exporter
	next=${secret}_next previous=${secret}_previous
	[[ -s $secret ]] || die "no password in $secret: \`make up\` first"
	[[ -f $next && -f $previous ]] || die "no $next or $previous: \`make up\` creates them"
	[[ ! -s $previous ]] ||
		die "the last rotation is not finished ($previous holds the password before): \`make rotate-finish\` first"
	find_nodes

	# Step 1: the new password into redis_password_next; every node then accepts the old and the new one.
	# A rotation stopped before step 2 left its password there: it is taken up again.
	if [[ -s $next ]]; then
		echo "make rotate: $next already holds a new password (an unfinished rotate): going on with it"
	else
		new=$(new_password)
		printf '%s\n' "$new" >"$next"
		echo "make rotate: step 1: a new password written into $next"
	fi
	t_written=$(date +%s.%N)
	wait_all "every node to accept the new password" \
		" (they all still accept the old one; to call the rotation off, empty $next in place: : >$next)" accepts_next
	echo "make rotate: every node accepts the new password ($(since "$t_written") s after it was written)"

	# Step 2: the old password into _previous, the new one into redis_password, _next emptied. The nodes send
	# the new one from now on (masterauth, failover) and still accept the old one.
	new=$(<"$next")
	old=$(<"$secret")
	printf '%s\n' "$old" >"$previous"
	printf '%s\n' "$new" >"$secret"
	: >"$next"
	echo "make rotate: step 2: the old password moved to $previous, the new one is in $secret"
	wait_all "every node to accept the password in $secret" "" accepts_current
	wait_all "every node to be ready (cluster ok, replication link up)" "" ready
	exporter=$(service_container redis-exporter)
	if [[ -n $exporter ]]; then
		# The exporter reads the password once, at start.
		if docker restart "$exporter" >/dev/null; then
			echo "make rotate: redis-exporter restarted: it reads the password only at its start"
		else
			echo "make rotate: could not restart redis-exporter: restart it, it still uses the old password" >&2
		fi
	fi
	echo "make rotate: done: every node accepts both passwords and sends the new one."
	echo "next: move every client to the new password ($secret), then: make rotate-finish$layout_arg"
}

rotate_finish() {
	local previous
	previous=${secret}_previous
	[[ -f $previous ]] || die "no $previous: \`make up\` creates it"
	if [[ ! -s $previous ]]; then
		echo "make rotate-finish: $previous is empty: no rotation to finish"
		return 0
	fi
	[[ ! -s ${secret}_next ]] || die "${secret}_next is not empty: a rotate is half done; \`make rotate\` first"
	find_nodes
	# Step 3: _previous emptied; every node drops the old password at once.
	old=$(<"$previous")
	: >"$previous"
	echo "make rotate-finish: step 3: $previous emptied"
	wait_all "every node to refuse the old password" "" refuses_old
	wait_all "every node to accept the password in $secret" "" accepts_current
	echo "make rotate-finish: done: every node refuses the old password and accepts the one in $secret"
}

action=${1:-}
secret=$(secret_file)
copy_dir=
trap '[[ -z $copy_dir ]] || rm -rf "$copy_dir"' EXIT
case $action in
up) up ;;
init) init ;;
down) down ;;
hosts) echo "$hosts_line" ;;
rotate) rotate ;;
rotate-finish) rotate_finish ;;
rotate-certs) tls_rotate ;;
*) die "usage: stack.sh up|init|down|hosts|rotate|rotate-finish|rotate-certs" ;;
esac
