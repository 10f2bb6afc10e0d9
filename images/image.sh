#!/usr/bin/env bash
# Builds the images, FROM scratch and with no registry: kvinit:NAME for each server NAME (images/servers.sh), each
# from the Debian suite that carries that server, and kvinit-exporter. The default server's image is also
# kvinit:latest and kvinit:$VERSION. Ends with every image's size.
#
# Usage: images/image.sh NAME...     (make image SERVER=NAME, make images)
# Environment: BUILD (build), KVINIT_BIN ($BUILD/kvinit), VERSION, REVISION, SOURCE (OCI labels).
#
# An unknown NAME is one line that lists the known ones (exit 100), before anything is built. A server whose
# package is missing from a rolling suite (sid) is skipped with one loud line; its tag is not touched.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=images/suite.sh
. "$here/suite.sh"
# shellcheck source=images/servers.sh
. "$here/servers.sh"
export BUILD=${BUILD:-build}
VERSION=${VERSION:-dev}
[[ $# -gt 0 ]] || { echo "usage: $0 NAME... (known: $(server_names))" >&2; exit 2; }
for name in "$@"; do server_lookup "$name"; done # unknown names: one line, before any work

# The legacy builder: the same on Debian's docker.io 20.10 client and on a newer client without buildx.
docker_build=(env DOCKER_BUILDKIT=0 docker build --build-arg "VERSION=$VERSION" --build-arg "REVISION=${REVISION:-unknown}"
	--build-arg "SOURCE=${SOURCE:-}")
built=()
skipped=()

for name in "$@"; do
	server_lookup "$name"
	dir=$BUILD/images/$name
	rc=0
	KVINIT_BIN=${KVINIT_BIN:-$BUILD/kvinit} "$here/build-rootfs.sh" kvinit "$name" "$dir/rootfs.tar" || rc=$?
	if [[ $rc -eq 3 ]]; then
		skipped+=("$name")
		mkdir -p "$dir"
		echo "kvinit:$name was not built: $srv_suite has no $srv_pkg $srv_want.x (make images said so)" >"$dir/skipped"
		continue
	fi
	[[ $rc -eq 0 ]] || exit "$rc"
	rm -f "$dir/skipped" # the end-to-end tests skip an image with this file, and only then
	# The labels: the server and every package in the image, with their exact versions.
	version=$(sed -n "s/^$srv_pkg //p" "$dir/packages")
	upstream=${version#*:}
	upstream=${upstream%-*}
	upstream=${upstream%%+*}
	packages=$(tr ' ' '=' <"$dir/packages" | tr '\n' ' ' | sed 's/ $//')
	tags=(-t "kvinit:$name")
	[[ $name != "$SERVER_DEFAULT" ]] || tags+=(-t kvinit:latest -t "kvinit:$VERSION")
	"${docker_build[@]}" -f "$here/Dockerfile" "${tags[@]}" \
		--build-arg "DESCRIPTION=Redis/Valkey Cluster node: kvinit as PID 1 (secrets, config, supervision, cluster-init, failover on stop) with Debian's $srv_pkg $upstream ($srv_suite)" \
		--label "kvinit.server=$name" --label "kvinit.server.version=$upstream" \
		--label "kvinit.server.package=$srv_pkg=$version" --label "kvinit.debian.suite=$srv_suite" \
		--label "kvinit.debian.packages=$packages" "$dir"
	built+=("kvinit:$name")
done

"$here/build-rootfs.sh" exporter "$BUILD/images/exporter/rootfs.tar"
exporter_version=$(sed -n 's/^prometheus-redis-exporter //p' "$BUILD/images/exporter/packages")
"${docker_build[@]}" -f "$here/exporter.Dockerfile" -t "kvinit-exporter:$VERSION" -t kvinit-exporter:latest \
	--build-arg "EXPORTER_VERSION=$exporter_version" \
	--label "kvinit.debian.packages=$(tr ' ' '=' <"$BUILD/images/exporter/packages" | tr '\n' ' ' | sed 's/ $//')" \
	"$BUILD/images/exporter"
built+=(kvinit-exporter:latest)

echo
echo "images (goal: each under 30 MB):"
for image in "${built[@]}"; do
	size=$(docker image inspect -f '{{.Size}}' "$image")
	server=$(docker image inspect -f '{{index .Config.Labels "kvinit.server.package"}}' "$image" 2>/dev/null || true)
	[[ $server != "<no value>" ]] || server=
	awk -v i="$image" -v b="$size" -v s="$server" \
		'BEGIN { printf "  %-24s %6.1f MB  %s%s\n", i, b / 1e6, s, (b > 30e6 ? "  OVER 30 MB" : "") }'
done
for name in "${skipped[@]}"; do
	echo "  kvinit:$name: SKIPPED (the loud line above says why)"
done
