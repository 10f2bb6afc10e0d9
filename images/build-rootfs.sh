#!/usr/bin/env bash
# Assembles the root filesystem of an image from the Debian packages of one suite, as a tar for a `FROM scratch`
# Dockerfile, or the same tree unpacked with wrappers for the integration tests' server matrix.
#
# Usage: images/build-rootfs.sh kvinit SERVER OUT.tar    kvinit and SERVER (images/servers.sh: redis-8.0, ...)
#        images/build-rootfs.sh exporter OUT.tar         prometheus-redis-exporter (bookworm)
#        images/build-rootfs.sh server SERVER OUTDIR     SERVER's tree in OUTDIR/root, and in OUTDIR/bin the
#                                                        server and its cli, run through the suite's own loader
# Exit status 3: SERVER is skipped (its package is missing from a rolling suite; one loud line says so).
#
# The image's programs are named as "package:path" (or a local file). Every ELF file's DT_NEEDED libraries and its
# program interpreter are resolved inside the unpacked packages, never on the host: a library is looked for in the
# packages already taken, then in the Depends of the package that needs it (Debian policy: a package depends on
# the providers of its libraries), and for a local binary (kvinit, exporter-entry) in the package of the suite
# named like the one that owns the library on the host (dpkg -S). Only the files reached that way go into the
# image, in a merged-/usr layout. kvinit, built on this machine, runs on the suite's libc (the same or newer).
#
# Packages come from the server's suite through images/suite.sh (a sources list made from the machine's, apt state
# of its own under $BUILD/apt/<suite>). The .debs are fetched with `apt-get download` into $DEB_CACHE (default
# $BUILD/debs) and unpacked there once; a rebuild with no change downloads and unpacks nothing. The tar is
# reproducible (sorted, fixed owners, mtimes clamped to SOURCE_DATE_EPOCH, the last commit's time by default), so
# Docker's build cache hits on a rebuild.
#
# Environment: BUILD (build), KVINIT_BIN ($BUILD/kvinit), DEB_CACHE ($BUILD/debs), CC (cc), SOURCE_DATE_EPOCH,
# EXPORTER_SUITE (bookworm), and images/suite.sh's.
set -euo pipefail
umask 022

usage() {
	echo "usage: $0 kvinit SERVER OUT.tar | exporter OUT.tar | server SERVER OUTDIR" >&2
	exit 2
}
die() { echo "build-rootfs: $*" >&2; exit 1; }
image=${1:-}
case $image in
kvinit | server) [[ $# -eq 3 ]] || usage ;;
exporter) [[ $# -eq 2 ]] || usage ;;
*) usage ;;
esac
out=${*: -1}
args=("$@")
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
cache=${DEB_CACHE:-$BUILD/debs}
CC=${CC:-cc}
REDIS_UID=999
REDIS_GID=999
NOBODY=65534
# shellcheck source=images/suite.sh
. "$here/suite.sh"
# shellcheck source=images/servers.sh
. "$here/servers.sh"

for tool in apt-get apt-cache dpkg dpkg-deb readelf strip tar; do
	command -v "$tool" >/dev/null || die "'$tool' is missing (a Debian system with binutils is needed)"
done
triplet=$("$CC" -print-multiarch 2>/dev/null || true)
[[ -n $triplet ]] || triplet=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
lib_dirs=("/usr/lib/$triplet" /usr/lib /usr/lib64) # ld.so's default search path, in merged-/usr form
mkdir -p "$cache/unpacked"
cache=$(cd "$cache" && pwd)

if [[ $image == exporter ]]; then
	suite=${EXPORTER_SUITE:-bookworm}
	suite_setup "$suite"
else
	server_lookup "$2"
	suite=$srv_suite
	suite_setup "$suite"
	server_check || exit $? # 3: skipped, with its loud line
fi

declare -A pkg_root=() pkg_ver=() pkg_deps=() taken=() files=() seen=() soname_done=() no_pkg=()
taken_order=()

# apt-cache takes most of a second a call, so the candidate versions are remembered in $cache/candidates-<suite>
# for as long as the suite's apt lists do not change (an apt-get update changes them).
lists_stamp=$(find "$suite_root/lists" -maxdepth 1 -name '*_Packages*' -printf '%f %s %T@\n' 2>/dev/null | sort | md5sum)
lists_stamp=${lists_stamp%% *}
cand_file=$cache/candidates-$suite
declare -A cand=()
read_candidates() { # apt-cache show output -> "pkg version arch" lines
	awk '/^Package: / { p = $2 } /^Version: / { v = $2 } /^Architecture: / { a = $2 }
	     /^$/ { if (p != "" && !seen[p]++) print p, v, a; p = "" }
	     END { if (p != "" && !seen[p]++) print p, v, a }'
}
if [[ -f $cand_file && $(head -n1 "$cand_file") == "lists $lists_stamp" ]]; then
	while read -r p v a; do cand[$p]="$v $a"; done < <(tail -n +2 "$cand_file")
else
	# The lists changed: look up again, in one call, every package the last build used.
	mapfile -t old < <(tail -n +2 "$cand_file" 2>/dev/null | cut -d' ' -f1)
	echo "lists $lists_stamp" >"$cand_file.tmp"
	if [[ ${#old[@]} -gt 0 ]]; then
		suite_apt_cache show --no-all-versions "${old[@]}" 2>/dev/null | read_candidates >>"$cand_file.tmp" || true
		while read -r p v a; do cand[$p]="$v $a"; done < <(tail -n +2 "$cand_file.tmp")
	fi
	mv "$cand_file.tmp" "$cand_file"
fi

# The package's candidate version, fetched (once) into the cache and unpacked (once) beside it. Returns 1 when apt
# knows no such (real) package. Functions that change these arrays are never run in a $(...) subshell.
fetch() {
	local pkg=$1 info version parch deb root
	[[ -n ${pkg_root[$pkg]-} ]] && return 0
	[[ -z ${no_pkg[$pkg]-} ]] || return 1
	if [[ -z ${cand[$pkg]-} ]]; then
		info=$(suite_apt_cache show --no-all-versions "$pkg" 2>/dev/null | read_candidates) || true
		if [[ -z $info ]]; then
			no_pkg[$pkg]=1
			return 1
		fi
		cand[$pkg]=${info#* }
		echo "$info" >>"$cand_file"
	fi
	read -r version parch <<<"${cand[$pkg]}"
	deb="$cache/${pkg}_${version//:/%3a}_${parch}.deb"
	if [[ ! -s $deb ]]; then
		echo "build-rootfs: downloading $pkg $version ($suite)" >&2
		if ! (cd "$cache" && suite_apt_get download -qq "$pkg=$version") >&2; then
			# The suite's lists were out of date (sid changes daily): once, new lists and the whole build again.
			[[ -z ${BUILD_ROOTFS_RETRY-} ]] || die "apt-get download $pkg=$version failed"
			echo "build-rootfs: apt-get download $pkg=$version failed: the $suite lists anew, and again" >&2
			suite_update
			rm -f "$cand_file"
			[[ -z ${stage-} ]] || rm -rf "$stage"
			BUILD_ROOTFS_RETRY=1 exec "$0" "${args[@]}"
		fi
		[[ -s $deb ]] || die "apt-get download $pkg=$version did not write $deb"
	fi
	root="$cache/unpacked/$(basename "$deb" .deb)"
	if [[ ! -e $root/.unpacked ]]; then
		rm -rf "$root"
		mkdir -p "$root"
		dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x $deb failed"
		# Depends and Pre-Depends, every alternative, without versions or arch qualifiers; lib* first.
		{ dpkg-deb -f "$deb" Pre-Depends; dpkg-deb -f "$deb" Depends; } | tr ',' '\n' | sed -E 's/\|/\n/g' |
			sed -E 's/\([^)]*\)//g; s/:[a-z0-9]+//; s/[[:space:]]//g' | grep . | sort -u |
			awk '/^lib/ { print; next } { rest = rest $0 "\n" } END { printf "%s", rest }' |
			tr '\n' ' ' >"$root/.depends" || true
		touch "$root/.unpacked"
	fi
	pkg_root[$pkg]=$root
	pkg_ver[$pkg]=$version
	pkg_deps[$pkg]=$(<"$root/.depends")
	return 0
}

# Looks up, in one apt-cache call, the candidates of the packages named that are not known yet.
prime_candidates() {
	local want=() pkg p v a
	for pkg in "$@"; do [[ -n ${cand[$pkg]-} || -n ${no_pkg[$pkg]-} ]] || want+=("$pkg"); done
	[[ ${#want[@]} -gt 0 ]] || return 0
	while read -r p v a; do
		cand[$p]="$v $a"
		echo "$p $v $a" >>"$cand_file"
	done < <(suite_apt_cache show --no-all-versions "${want[@]}" 2>/dev/null | read_candidates || true)
}

take() {
	local pkg=$1
	fetch "$pkg" || die "no Debian package '$pkg' in $suite"
	if [[ -z ${taken[$pkg]-} ]]; then
		taken[$pkg]=1
		taken_order+=("$pkg")
	fi
}

# /lib/x -> /usr/lib/x and the like: the image has a merged /usr.
canon() {
	case $1 in
	/lib/* | /lib64/* | /lib32/* | /libx32/* | /bin/* | /sbin/*) echo "/usr$1" ;;
	*) echo "$1" ;;
	esac
}

# Sets rel to the path (canonical form) as it appears inside pkg's unpacked tree, or to nothing.
in_pkg() {
	local root=${pkg_root[$1]} p=$2
	rel=
	if [[ -e $root$p || -L $root$p ]]; then
		rel=$p
	elif [[ $p == /usr/* && (-e $root${p#/usr} || -L $root${p#/usr}) ]]; then
		rel=${p#/usr}
	fi
}

# Host packages owning a file of that name in a library directory (for local binaries).
host_owners() {
	local name=$1
	dpkg -S "*/$name" 2>/dev/null | grep ': /' | while IFS= read -r line; do
		[[ ${line##*/} == "$name" ]] || continue
		tr ',' '\n' <<<"${line%%: /*}" | sed 's/:.*//; s/[[:space:]]//g'
	done | sort -u | tr '\n' ' '
}

# Finds one of the canonical paths ($@) in: the packages taken, the Depends of $owner (a package, or "" for a local
# file: then the host's owner of that file name). Sets found_pkg, found_rel (the path in the package) and found_path.
locate() {
	local owner=$1 pkg p rel cands
	shift
	for pkg in "${taken_order[@]}"; do
		for p in "$@"; do
			in_pkg "$pkg" "$p"
			[[ -n $rel ]] && { found_pkg=$pkg found_rel=$rel found_path=$p; return 0; }
		done
	done
	if [[ -n $owner ]]; then
		cands=${pkg_deps[$owner]}
	else
		cands=$(host_owners "${1##*/}")
	fi
	# shellcheck disable=SC2086 # a list of package names
	prime_candidates $cands
	for pkg in $cands; do
		fetch "$pkg" || continue
		for p in "$@"; do
			in_pkg "$pkg" "$p"
			[[ -n $rel ]] && { take "$pkg"; found_pkg=$pkg found_rel=$rel found_path=$p; return 0; }
		done
	done
	return 1
}

# Adds a file of a package (following its symlinks, which may lead into another package), and for an ELF file
# its interpreter and the closure of its DT_NEEDED libraries.
add_pkg_file() {
	local owner=$1 path hops=0 pkg rel target real
	path=$(canon "$2")
	while :; do
		[[ -n ${seen[$path]-} ]] && return 0
		locate "$owner" "$path" || die "no package provides $path (needed by ${owner:-a local file})"
		pkg=$found_pkg rel=$found_rel path=$found_path
		seen[$path]=1
		files[$path]="$pkg:$rel"
		real=${pkg_root[$pkg]}$rel
		owner=$pkg
		if [[ -L $real ]]; then
			target=$(readlink "$real")
			[[ $target == /* ]] || target=$(realpath -ms "$(dirname "$rel")/$target")
			path=$(canon "$target")
			((++hops < 20)) || die "symlink loop at $rel in $pkg"
			continue
		fi
		break
	done
	scan_elf "$real" "$owner" "$path"
}

scan_elf() {
	local real=$1 owner=$2 path=$3 dyn interp soname rp d dirs rps rpaths needed
	[[ $(head -c4 "$real" | od -An -c | tr -d ' ') == '177ELF' ]] || return 0
	dyn=$(readelf -d -W "$real" 2>/dev/null || true)
	interp=$(readelf -l -W "$real" 2>/dev/null | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
	[[ -n $interp ]] && add_pkg_file "$owner" "$interp"
	# Read all lists before recursing: nothing below reads from a pipe that a nested call could drain.
	mapfile -t rpaths < <(sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p' <<<"$dyn")
	mapfile -t needed < <(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dyn")
	dirs=()
	for rp in "${rpaths[@]}"; do
		IFS=: read -r -a rps <<<"$rp"
		for d in "${rps[@]}"; do dirs+=("$(canon "${d//\$ORIGIN/$(dirname "$path")}")"); done
	done
	dirs+=("${lib_dirs[@]}")
	for soname in "${needed[@]}"; do
		[[ -n ${soname_done[$soname]-} ]] && continue
		soname_done[$soname]=1
		locate "$owner" "${dirs[@]/%//$soname}" ||
			die "no package provides $soname (needed by $path from ${owner:-a local file})"
		add_pkg_file "$found_pkg" "$found_path"
	done
}

declare -A local_files=()
add_local_file() {
	local src=$1 dest=$2
	[[ -f $src ]] || die "$src is missing"
	local_files[$dest]=$src
	scan_elf "$src" "" "$dest"
}

# A tar is up to date when what went into it has not changed: the scripts, the local binary, the time its files are
# clamped to, and every package it took still the candidate of its suite. Then it is kept as it is (a rebuild with
# no change takes a fraction of a second instead of seconds).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}
if [[ $image != server ]]; then
	inputs=$( {
		echo "$image ${srv_name:-} $suite $epoch"
		cat "$here/build-rootfs.sh" "$here/suite.sh" "$here/servers.sh"
		if [[ $image == kvinit ]]; then cat "${KVINIT_BIN:-$BUILD/kvinit}"; else cat "$here/exporter-entry.c"; fi
	} | md5sum)
	inputs=${inputs%% *}
	stamp=$(dirname "$out")/inputs
	if [[ -f $out && -f $stamp && $(<"$stamp") == "$inputs" && -f $(dirname "$out")/packages ]]; then
		current=yes
		while read -r p v; do
			[[ ${cand[$p]-} == "$v "* ]] || current=no
		done <"$(dirname "$out")/packages"
		if [[ $current == yes ]]; then
			echo "build-rootfs: $image${srv_name:+ $srv_name} ($suite): $out is up to date"
			exit 0
		fi
	fi
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/kvinit-rootfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
rootfs=$stage/rootfs
mkdir -p "$rootfs"/{etc,usr/bin,usr/lib}
ln -s usr/lib "$rootfs/lib"
ln -s usr/bin "$rootfs/bin"

case $image in
kvinit | server)
	take "$srv_pkg"
	take "$srv_tools"
	add_pkg_file "$srv_pkg" "$srv_bin"      # -> <flavor>-check-rdb (the tools): one binary, argv[0] picks its mode
	add_pkg_file "$srv_tools" "$srv_cli"
	# <flavor>-check-aof, for `docker exec <c> redis-check-aof --fix` (no shell in the image)
	add_pkg_file "$srv_tools" "/usr/bin/$srv_flavor-check-aof"
	if [[ $image == kvinit ]]; then
		kvinit_bin=${KVINIT_BIN:-$BUILD/kvinit}
		strip -o "$stage/kvinit" "$kvinit_bin" # debug info is for the build tree, not the image
		add_local_file "$stage/kvinit" /usr/bin/kvinit
		mkdir -p "$rootfs"/{data,run/kvinit,tmp}
		# /run/kvinit: root's 0755 (the rendered config in it is 0600 and the server user's). Not root:redis 0750
		# as kvinit would create it: a tmpfs mounted there (--tmpfs, compose tmpfs:, even with mode=0750) takes the
		# directory's mode but not its group, and the server could then not reach its config.
		chmod 0750 "$rootfs/data"
		chmod 0755 "$rootfs/run/kvinit"
		chmod 1777 "$rootfs/tmp"
		cat >"$rootfs/etc/passwd" <<-EOT
			root:x:0:0:root:/root:/usr/sbin/nologin
			redis:x:$REDIS_UID:$REDIS_GID:redis:/data:/usr/sbin/nologin
		EOT
		cat >"$rootfs/etc/group" <<-EOT
			root:x:0:
			redis:x:$REDIS_GID:
		EOT
	fi
	;;
exporter)
	"$CC" -std=gnu11 -O2 -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror \
		-D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE -pie -Wl,-z,relro,-z,now -s \
		-o "$stage/exporter-entry" "$here/exporter-entry.c"
	take prometheus-redis-exporter
	add_pkg_file prometheus-redis-exporter /usr/bin/prometheus-redis-exporter
	add_local_file "$stage/exporter-entry" /usr/bin/exporter-entry
	cat >"$rootfs/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/usr/sbin/nologin
		nobody:x:$NOBODY:$NOBODY:nobody:/nonexistent:/usr/sbin/nologin
	EOF
	cat >"$rootfs/etc/group" <<-EOF
		root:x:0:
		nogroup:x:$NOBODY:
	EOF
	;;
esac

# The license notices of what the image redistributes (Debian's copyright files, about 130 kB): not needed at run
# time, but BSD, MIT and LGPL code must be shipped with its notice. libstdc++6 and co. point to gcc-12-base's.
for pkg in "${taken_order[@]}"; do
	doc=${pkg_root[$pkg]}/usr/share/doc/$pkg
	if [[ -L $doc ]]; then
		add_pkg_file "$pkg" "/usr/share/doc/$(basename "$(readlink "$doc")")/copyright"
	elif [[ -f $doc/copyright ]]; then
		add_pkg_file "$pkg" "/usr/share/doc/$pkg/copyright"
	fi
done

# glibc 2.34+ has the files and dns NSS modules built into libc.so.6: no libnss_*.so is needed for these.
cat >"$rootfs/etc/nsswitch.conf" <<-EOF
	passwd: files
	group: files
	hosts: files dns
EOF

# Copy what was reached: symlinks as symlinks (their targets were added too), files with their mode.
echo "build-rootfs: $image${srv_name:+ $srv_name} ($suite): packages (version, files taken):"
for pkg in "${taken_order[@]}"; do
	n=0
	for p in "${!files[@]}"; do [[ ${files[$p]%%:*} == "$pkg" ]] && n=$((n + 1)); done
	printf '  %-28s %-28s %d\n' "$pkg" "${pkg_ver[$pkg]}" "$n"
done
for p in "${!files[@]}"; do
	pkg=${files[$p]%%:*}
	src=${pkg_root[$pkg]}${files[$p]#*:}
	mkdir -p "$rootfs$(dirname "$p")"
	if [[ -L $src ]]; then
		ln -sfn "$(readlink "$src")" "$rootfs$p"
	else
		cp --preserve=mode "$src" "$rootfs$p"
	fi
done
for p in "${!local_files[@]}"; do
	install -m 0755 "${local_files[$p]}" "$rootfs$p"
done
[[ ! -d $rootfs/usr/lib64 ]] || ln -s usr/lib64 "$rootfs/lib64" # the x86_64 loader's path is /lib64/ld-linux...
# Debian ships redis-check-aof as a second copy of redis-check-rdb (one binary: argv[0] picks the mode): a file
# identical to another in its directory becomes a symlink to it.
declare -A by_sum=()
while read -r sum p; do
	p=/$p
	if [[ -n ${by_sum[$sum]-} && $(dirname "${by_sum[$sum]}") == "$(dirname "$p")" ]]; then
		ln -sfn "$(basename "${by_sum[$sum]}")" "$rootfs$p"
	else
		by_sum[$sum]=$p
	fi
done < <(cd "$rootfs" && find . -type f -size +64k -printf '%P\n' | sort -r | xargs -r md5sum)

[[ $image == server ]] || echo "build-rootfs: $image: files:"
[[ $image == server ]] || (cd "$rootfs" && find . -mindepth 1 \( -type f -o -type l \) -printf '%P' \
	\( -type l -printf ' -> %l' , -printf '  %s bytes' \) -printf '\n' | sort | sed 's/^/  \//')
if [[ $image == kvinit ]]; then
	echo "  /data (999:999 0750, a volume)  /run/kvinit (0:0 0755)  /tmp (1777)"
fi

# The test matrix: the tree as it is, and wrappers that start each program through the suite's own loader and
# libraries (ld.so --library-path), so that a newer suite's server runs on this machine. Each wrapper execs a
# symlink to the loader named like the program, so the process is called valkey-server (or redis-server) as usual.
if [[ $image == server ]]; then
	mkdir -p "$(dirname "$out")"
	out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp"/{bin,libexec}
	cp -a "$rootfs" "$out.tmp/root"
	interp=$(readelf -l -W "$out.tmp/root$srv_cli" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
	[[ -n $interp && -e $out.tmp/root$interp ]] || die "no loader for $srv_cli in the tree ('$interp')"
	for prog in "$srv_bin" "$srv_cli" "/usr/bin/$srv_flavor-check-aof"; do
		name=${prog##*/}
		ln -s "../root$interp" "$out.tmp/libexec/$name"
		cat >"$out.tmp/bin/$name" <<-EOT
			#!/bin/sh
			# $name $srv_version from Debian $suite, through that suite's loader and libraries (images/build-rootfs.sh)
			exec "$out/libexec/$name" --library-path "$out/root/usr/lib/$triplet:$out/root/usr/lib" --argv0 "\$0" \\
				"$out/root$prog" "\$@"
		EOT
		chmod 0755 "$out.tmp/bin/$name"
	done
	for pkg in "${taken_order[@]}"; do echo "$pkg ${pkg_ver[$pkg]}"; done >"$out.tmp/packages"
	printf 'name=%s\nsuite=%s\nflavor=%s\npackage=%s\nversion=%s\nserver=%s\ncli=%s\n' "$srv_name" "$suite" \
		"$srv_flavor" "$srv_pkg" "$srv_version" "$out/bin/${srv_bin##*/}" "$out/bin/${srv_cli##*/}" >"$out.tmp/server"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	"$out/bin/${srv_bin##*/}" --version >/dev/null || die "$out/bin/${srv_bin##*/} --version failed"
	echo "build-rootfs: $srv_name: $("$out/bin/${srv_bin##*/}" --version) in $out"
	exit 0
fi

# A reproducible tar: everything root's but /data, the server user's.
tar_opts=(--format=gnu --sort=name --numeric-owner --mtime="@$epoch" --clamp-mtime --no-acls --no-xattrs)
mkdir -p "$(dirname "$out")"
tar -C "$rootfs" "${tar_opts[@]}" --owner=0 --group=0 --anchored --exclude=./data -cf "$out.tmp" .
if [[ -d $rootfs/data ]]; then
	tar -C "$rootfs" "${tar_opts[@]}" --no-recursion --owner="$REDIS_UID" --group="$REDIS_GID" -rf "$out.tmp" ./data
fi
mv "$out.tmp" "$out"
for pkg in "${taken_order[@]}"; do echo "$pkg ${pkg_ver[$pkg]}"; done >"$(dirname "$out")/packages"
echo "$inputs" >"$(dirname "$out")/inputs"
echo "build-rootfs: $image: $(du -sk --apparent-size "$rootfs" | cut -f1) kB in $out"
