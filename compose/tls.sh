#!/usr/bin/env bash
# Sourced by stack.sh and scale.sh, not run on its own.
# shellcheck disable=SC2154 # here, action, layout, layout_arg, files, nodes, init_service, first_node: the caller's
# TLS for the compose layouts (README.md, "TLS with compose"), sourced by compose/stack.sh:
#   TLS=1 make up     a CA and one certificate per node (and for cluster-init and the exporter, their client
#                     certificates) under secrets/tls/ when missing, and a compose override that turns TLS on
#   make rotate-certs new certificates from the same CA, written in place: kvinit reloads them live
# and by compose/scale.sh, on a layout up with TLS=1: the certificates of redis-node-6 and -7 when missing, and the
# override for the eight nodes (NODES=8) or the six (NODES=6, once the two are gone).
# Each container mounts its own directory, secrets/tls/<service>/ (tls.crt, tls.key, ca.crt: cert-manager's names),
# as /run/secrets/tls. A directory, not single files: a file replaced by a rename (how the certificates are written,
# so that no reader sees half a file) is seen inside the container only through its directory. The server reads
# the files itself as redis (999:999): they belong to it, mode 0600 (the directories 0700); the exporter reads its
# own as nobody (65534:65534, images/exporter-entry.c), cluster-init as root.

tls_dir=$here/secrets/tls
tls_days=${TLS_DAYS:-365}

# The services of the layout's compose files with their settings: "service key value" lines for the keys
# hostname, ipv4_address, REDIS_PORT_NUMBER, REDIS_CLUSTER_ANNOUNCE_HOSTNAME and REDIS_ADDR (the value as written,
# ${VAR:-default} included).
tls_service_settings() {
	local f
	for f in "${files[@]}"; do
		awk '/^services:/ { in_s = 1; next } /^[a-z]/ { in_s = 0 }
			in_s && /^  [A-Za-z0-9_.-]+:[ \t]*$/ { svc = $1; sub(/:$/, "", svc) }
			in_s && svc != "" && match($0, /(hostname|ipv4_address|REDIS_PORT_NUMBER|REDIS_CLUSTER_ANNOUNCE_HOSTNAME|REDIS_ADDR):[ \t]*[^ \t]+/) {
				kv = substr($0, RSTART, RLENGTH); k = kv; sub(/:.*/, "", k); v = kv; sub(/^[^:]*:[ \t]*/, "", v)
				sub(/,$/, "", v); gsub(/"/, "", v) # the closing braces of a flow mapping are not the value
				while (gsub(/}/, "}", v) > gsub(/{/, "{", v)) sub(/}$/, "", v)
				print svc, k, v }' "$here/$f"
	done
}

# The value of KEY for SERVICE in the settings, ${VAR:-default} resolved from the environment.
tls_setting() {
	local v
	v=$(awk -v s="$1" -v k="$2" '$1 == s && $2 == k { print $3; exit }' <<<"$settings")
	if [[ $v =~ ^\$\{([A-Za-z0-9_]+):-([^}]*)\}$ ]]; then
		local var=${BASH_REMATCH[1]}
		v=${!var:-${BASH_REMATCH[2]}}
	fi
	echo "$v"
}

tls_make_ca() {
	[[ -s $tls_dir/ca.crt && -s $tls_dir/ca.key ]] && return 0
	(umask 077 && openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
		-days 3650 -subj "/CN=kvinit compose CA" -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null) ||
		die "openssl could not make the CA in $tls_dir"
	chmod 0600 "$tls_dir/ca.key" "$tls_dir/ca.crt"
	echo "make ${action}: created the CA $tls_dir/ca.crt (its key ca.key stays on the host, mode 0600)"
}

# The hostname a node of a cluster layout announces: the layout's REDIS_CLUSTER_ANNOUNCE_HOSTNAME, else (with TLS,
# tls_up sets it) its container hostname or service name. kvinit checks a peer that CLUSTER NODES lists at an
# address against the hostname it announces (README.md, "kvinit's own connections"): the layouts without static
# IPs (cache-cluster, announce) have no address to put in a certificate made before the containers start.
tls_announced_hostname() {
	local svc=$1 v
	[[ $layout != sentinel && $svc != "$init_service" && $svc != redis-exporter ]] || return 0
	v=$(tls_setting "$svc" REDIS_CLUSTER_ANNOUNCE_HOSTNAME)
	[[ -n $v ]] || v=$(tls_setting "$svc" hostname)
	echo "${v:-$svc}"
}

# tls_issue SERVICE: a new key and certificate for SERVICE in secrets/tls/SERVICE/, each written to a temporary
# file in that directory and renamed over the old one (the key first: kvinit waits until the pair matches again).
# The names are those kvinit and clients check: the service name (cluster-init's REDIS_NODES), the hostname and
# the announced hostname, a static IP, localhost and 127.0.0.1 (kvinit's own connections to its node).
tls_issue() {
	local svc=$1 dir=$tls_dir/$1 host ip announced sans key crt serial tls_owner=999:999
	[[ $svc != redis-exporter ]] || tls_owner=65534:65534
	host=$(tls_setting "$svc" hostname) ip=$(tls_setting "$svc" ipv4_address)
	announced=$(tls_announced_hostname "$svc")
	sans="DNS:$svc,DNS:localhost,IP:127.0.0.1"
	[[ -z $host || $host == "$svc" ]] || sans+=",DNS:$host"
	[[ -z $announced || $announced == "$svc" || $announced == "$host" ]] || sans+=",DNS:$announced"
	[[ -z $ip ]] || sans+=",IP:$ip"
	[[ $layout != announce ]] || sans+=",IP:${ANNOUNCE_IP:-172.30.0.1}" # what the announce layout's nodes announce
	mkdir -p "$dir"
	chmod 0700 "$dir"
	key=$(mktemp "$dir/.tls.key.XXXXXX") crt=$(mktemp "$dir/.tls.crt.XXXXXX")
	serial=$(openssl rand -hex 16)
	if ! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$svc" \
		-keyout "$key" 2>/dev/null |
		openssl x509 -req -sha256 -days "$tls_days" -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" \
			-set_serial "0x$serial" -out "$crt" -extfile <(printf '%s\n' "subjectAltName=$sans" \
				"basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=serverAuth,clientAuth") 2>/dev/null; then
		rm -f "$key" "$crt"
		die "openssl could not issue the certificate of $svc"
	fi
	chmod 0600 "$key" "$crt"
	chown "$tls_owner" "$key" "$crt" 2>/dev/null || true
	if [[ ! -s $dir/ca.crt ]] || ! cmp -s "$tls_dir/ca.crt" "$dir/ca.crt"; then
		install -m 0600 "$tls_dir/ca.crt" "$dir/.ca.crt.tmp"
		chown "$tls_owner" "$dir/.ca.crt.tmp" 2>/dev/null || true
		mv -f "$dir/.ca.crt.tmp" "$dir/ca.crt"
	fi
	mv -f "$key" "$dir/tls.key"
	mv -f "$crt" "$dir/tls.crt"
	chown "$tls_owner" "$dir" 2>/dev/null || true
	echo "make ${action}: $svc: certificate serial ${serial^^} ($sans), $dir/tls.crt"
}

# The services that get a certificate: the nodes, the cluster-init service, the exporter when the layout has one,
# the Sentinels.
tls_services() {
	tls_svcs=("${nodes[@]}")
	[[ -z $init_service ]] || tls_svcs+=("$init_service")
	[[ -z $(tls_setting redis-exporter REDIS_ADDR) ]] || tls_svcs+=(redis-exporter)
	# the sentinel layout's Sentinels: TLS on their port, to the nodes and to each other (the same REDIS_TLS_*)
	[[ $layout != sentinel ]] || tls_svcs+=(sentinel-1 sentinel-2 sentinel-3)
}

# The CA and the certificates of the services of `nodes` and `files` that are missing, and the override for them,
# added to the compose files.
tls_override() {
	local svc port addr out=$tls_dir/docker-compose.tls.yml
	settings=$(tls_service_settings)
	command -v openssl >/dev/null || die "TLS=1 needs the openssl command (apt-get install openssl)"
	mkdir -p "$tls_dir"
	chmod 0700 "$tls_dir"
	tls_make_ca
	tls_services
	for svc in "${tls_svcs[@]}"; do
		[[ -s $tls_dir/$svc/tls.crt && -s $tls_dir/$svc/tls.key ]] || tls_issue "$svc"
	done
	{
		echo "# Made by compose/tls.sh (make up TLS=1, make scale) for the $layout layout, ${#nodes[@]} nodes; made again by each."
		grep -m1 '^version:' "$here/${files[0]}" || true # docker-compose 1.29 wants the same version in every file
		echo "services:"
		for svc in "${tls_svcs[@]}"; do
			echo "  $svc:"
			echo "    volumes: [./secrets/tls/$svc:/run/secrets/tls:ro]"
			echo "    environment:"
			if [[ $svc == redis-exporter ]]; then
				addr=$(awk '$1 == "redis-exporter" && $2 == "REDIS_ADDR" { print $3; exit }' <<<"$settings")
				echo "      REDIS_ADDR: ${addr/#redis:/rediss:}"
				echo "      REDIS_EXPORTER_TLS_CA_CERT_FILE: /run/secrets/tls/ca.crt"
				echo "      REDIS_EXPORTER_TLS_CLIENT_CERT_FILE: /run/secrets/tls/tls.crt"
				echo "      REDIS_EXPORTER_TLS_CLIENT_KEY_FILE: /run/secrets/tls/tls.key"
				continue
			fi
			echo "      REDIS_TLS_ENABLED: \"yes\""
			# the name its peers' kvinit checks its certificate against, where the layout announces none
			if [[ -z $(tls_setting "$svc" REDIS_CLUSTER_ANNOUNCE_HOSTNAME) && -n $(tls_announced_hostname "$svc") ]]; then
				echo "      REDIS_CLUSTER_ANNOUNCE_HOSTNAME: $(tls_announced_hostname "$svc")"
			fi
			echo "      REDIS_TLS_CERT_FILE: /run/secrets/tls/tls.crt"
			echo "      REDIS_TLS_KEY_FILE: /run/secrets/tls/tls.key"
			echo "      REDIS_TLS_CA_FILE: /run/secrets/tls/ca.crt"
			echo "      REDIS_TLS_AUTH_CLIENTS: \"${REDIS_TLS_AUTH_CLIENTS:-yes}\""
			# the TLS port is the node's port: the plain port is then off
			port=$(awk -v s="$svc" '$1 == s && $2 == "REDIS_PORT_NUMBER" { print $3; exit }' <<<"$settings")
			[[ -z $port ]] || echo "      REDIS_TLS_PORT_NUMBER: \"$port\""
		done
	} >"$out"
	files+=("secrets/tls/docker-compose.tls.yml")
}

# `make up TLS=1`: the CA, the certificates that are missing and the override (tls_override).
tls_up() {
	tls_override
	echo "make up: TLS on (override $tls_dir/docker-compose.tls.yml); from the host: redis-cli --tls" \
		"--cacert $tls_dir/ca.crt --cert $tls_dir/$first_node/tls.crt --key $tls_dir/$first_node/tls.key -c ..."
}

# `make rotate-certs`: new certificates from the same CA for every service, written in place.
tls_rotate() {
	local svc
	settings=$(tls_service_settings)
	[[ -s $tls_dir/ca.crt && -s $tls_dir/ca.key ]] || die "no CA in $tls_dir: \`make up TLS=1$layout_arg\` first"
	tls_services
	for svc in "${tls_svcs[@]}"; do tls_issue "$svc"; done
	echo "make rotate-certs: done: each node's kvinit sees its new files and loads them without a restart" \
		"(docker logs NODE: 'certificate rotation'); the exporter reads its certificate at each new connection"
}
