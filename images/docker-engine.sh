#!/usr/bin/env bash
# Makes sure a Docker engine answers: a no-op (a few ms) when `docker info` works and docker-compose is there.
# Otherwise, as root: installs Debian's docker.io and docker-compose when they are missing (one apt-get update
# first), starts dockerd in the background (its log in $DOCKERD_LOG, default /var/log/kvinit-dockerd.log) unless one
# is already starting, and waits up to $DOCKER_WAIT seconds (default 60) for `docker info`.
# Used by `make image`, `make up` and the end-to-end tests.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/kvinit-dockerd.log}
wait_s=${DOCKER_WAIT:-60}
pidfile=${DOCKERD_PIDFILE:-/var/run/docker.pid}
die() { echo "docker-engine: $*" >&2; exit 1; }

if command -v docker >/dev/null && command -v docker-compose >/dev/null && docker info >/dev/null 2>&1; then
	exit 0
fi

missing=()
command -v docker >/dev/null && command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [[ ${#missing[@]} -gt 0 ]]; then
	[[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; as root run: apt-get install ${missing[*]}"
	command -v apt-get >/dev/null || die "missing ${missing[*]}, and this is not a Debian system: install Docker"
	echo "docker-engine: installing ${missing[*]} from Debian" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The engine may be up already (docker-compose was the only thing missing) or just starting.
docker info >/dev/null 2>&1 && exit 0
err=$(docker info 2>&1 >/dev/null || true)
if [[ $err == *"permission denied"* ]]; then
	die "the Docker socket refuses this user ($err): run as root or join the docker group"
fi

dockerd_running() {
	local pid
	[[ -r $pidfile ]] || return 1
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ -n $pid && -d /proc/$pid && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]
}

if ! dockerd_running; then
	[[ $(id -u) -eq 0 ]] || die "no Docker engine answers and only root can start dockerd"
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
		echo "docker-engine: starting docker.service" >&2
		systemctl start docker.service >&2 || true
	fi
	if ! docker info >/dev/null 2>&1 && ! dockerd_running; then
		echo "docker-engine: starting dockerd in the background, log in $log" >&2
		mkdir -p "$(dirname "$log")"
		# setsid: dockerd must outlive this script and the make that ran it, and not get its terminal's signals.
		setsid dockerd >>"$log" 2>&1 </dev/null &
		started=$!
	fi
fi

for ((i = 0; i < wait_s * 4; i++)); do
	docker info >/dev/null 2>&1 && exit 0
	if [[ -n ${started-} ]] && ! kill -0 "$started" 2>/dev/null && ! dockerd_running; then
		tail -n 20 "$log" >&2 || true
		die "dockerd exited at start (log above, from $log)"
	fi
	sleep 0.25
done
[[ -n ${started-} ]] && tail -n 20 "$log" >&2
die "no answer from the Docker engine after ${wait_s}s: $(docker info 2>&1 >/dev/null | tail -n 1)"
