#!/usr/bin/env bash
# tests/vm/kernel/build.sh - build a Linux 6.12 kernel (Debian's linux-source-6.12) for the
# tiermm QEMU rig: a small `minimal` kernel or a `debug` one (KASAN, lockdep, DEBUG_VM,
# page-table check), optionally with a patch series applied. The last two lines of stdout
# are BZIMAGE=<bzImage> and KDIR=<build tree>, for
#   tests/vm/run --kernel <bzImage> --kdir <build tree> ...
# See docs/kernel-builds.md. Run with --help for usage.
set -euo pipefail

KERNEL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly KERNEL_DIR
readonly TARBALL=/usr/src/linux-source-6.12.tar.xz
readonly TARBALL_PKG=linux-source-6.12
readonly TARBALL_TOP=linux-source-6.12
CACHE=${TIERMM_KERNEL_CACHE:-${HOME:-/root}/.cache/tiermm/kernel}
readonly CACHE

# Host commands (and dpkg packages) the build needs, with the Debian packages providing them.
declare -A HOST_CMD_PKG=(
	[make]=make [gcc]=gcc [flex]=flex [bison]=bison [bc]=bc [perl]=perl
	[xz]=xz-utils [tar]=tar [flock]=util-linux [sha256sum]=coreutils
)
readonly HOST_DEV_PKGS=(libc6-dev libelf-dev)

msg() { printf 'kernel-build: %s\n' "$*" >&2; }
die() {
	msg "error: $*"
	exit 1
}

usage() {
	cat <<'EOF'
Usage: tests/vm/kernel/build.sh [--flavor minimal|debug] [--patches DIR] [--out DIR] [--jobs N]

Build a Linux 6.12 bzImage from Debian's linux-source-6.12 for the tiermm QEMU rig, in a
build tree that out-of-tree modules (tiermm.ko) build against. The last two lines of stdout
are
  BZIMAGE=<path of the bzImage>
  KDIR=<kernel build tree>
for `tests/vm/run --kernel <bzImage> --kdir <build tree> ...`. Progress goes to stderr,
make's output to <build tree>/tiermm-build.log.

Options:
  --flavor NAME   minimal (default): tinyconfig + minimal-6.12.fragment + tiermm.fragment;
                  debug: that + debug.fragment (KASAN, lockdep, DEBUG_VM, page-table check)
  --patches DIR   apply DIR/*.patch (a git format-patch series, in name order) with
                  patch -p1 to a copy of the source kept for that series, and merge
                  DIR/config.fragment (if present) after the flavor's fragments
  --out DIR       build tree (default: <cache>/build-<version>-<flavor>[-p<series hash>])
  --jobs N        parallel make jobs (default: nproc)
  -h, --help      this help

Every option the fragments request is checked in the final .config: the build fails with
the list of options that did not come out as requested.

Environment: TIERMM_KERNEL_CACHE (default ~/.cache/tiermm/kernel), TIERMM_KERNEL_CCACHE=0
(do not use ccache even if installed), TIERMM_VM_NO_INSTALL=1 (never apt-get install
missing host packages).
EOF
}

# ---------------------------------------------------------------------------------------
# Arguments

opt_flavor=minimal
opt_patches=
opt_out=
opt_jobs=

need_arg() {
	(($2 >= 2)) || die "option $1 needs an argument (see --help)"
}

parse_args() {
	while (($#)); do
		case $1 in
		--*=*)
			local o=${1%%=*} v=${1#*=}
			shift
			set -- "$o" "$v" "$@"
			continue
			;;
		--flavor) need_arg "$1" $#; opt_flavor=$2; shift 2 ;;
		--patches) need_arg "$1" $#; opt_patches=$2; shift 2 ;;
		--out) need_arg "$1" $#; opt_out=$2; shift 2 ;;
		--jobs | -j) need_arg "$1" $#; opt_jobs=$2; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown argument: $1 (see --help)" ;;
		esac
	done
	case $opt_flavor in
	minimal | debug) ;;
	*) die "--flavor must be minimal or debug, not '$opt_flavor'" ;;
	esac
	if [[ -n $opt_patches && ! -d $opt_patches ]]; then
		die "--patches $opt_patches: no such directory"
	fi
	[[ -z $opt_patches ]] || opt_patches=$(cd "$opt_patches" && pwd)
	if [[ -z $opt_jobs ]]; then
		opt_jobs=$(nproc)
	fi
	[[ $opt_jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs needs a positive number, not '$opt_jobs'"
}

# ---------------------------------------------------------------------------------------
# Host packages

pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# install_pkgs PKG...: apt-get install missing Debian packages (root only).
install_pkgs() {
	(($#)) || return 0
	if [[ $(id -u) != 0 || -n ${TIERMM_VM_NO_INSTALL:-} ]] || ! command -v apt-get >/dev/null; then
		die "missing host packages: $*; install them with: apt-get install $*"
	fi
	msg "installing host packages: $*"
	local log try
	log=$(mktemp "${TMPDIR:-/tmp}/tiermm-kernel-apt.XXXXXX")
	for try in 1 2; do
		if DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 \
			install --no-install-recommends "$@" >"$log" 2>&1; then
			rm -f "$log"
			return 0
		fi
		# Stale package lists: update once and retry.
		((try == 1)) && apt-get -q -o DPkg::Lock::Timeout=300 update >>"$log" 2>&1
	done
	tail -n 20 "$log" >&2
	rm -f "$log"
	die "apt-get install $* failed"
}

ensure_host_tools() {
	local c p missing=()
	[[ -f $TARBALL ]] || missing+=("$TARBALL_PKG")
	for c in "${!HOST_CMD_PKG[@]}"; do
		command -v "$c" >/dev/null || missing+=("${HOST_CMD_PKG[$c]}")
	done
	for p in "${HOST_DEV_PKGS[@]}"; do
		pkg_installed "$p" || missing+=("$p")
	done
	if [[ -n $opt_patches ]] && ! command -v patch >/dev/null; then
		missing+=(patch)
	fi
	install_pkgs "${missing[@]}"
	[[ -f $TARBALL ]] || die "$TARBALL is missing after installing $TARBALL_PKG"
}

# ---------------------------------------------------------------------------------------
# Source

# The kernel version in the tarball's Makefile, e.g. 6.12.117.
tarball_version() {
	local v
	v=$(tar -xJOf "$TARBALL" --occurrence=1 "$TARBALL_TOP/Makefile" | awk '
		/^VERSION *=/ { v = $3 } /^PATCHLEVEL *=/ { p = $3 } /^SUBLEVEL *=/ { s = $3 }
		/^EXTRAVERSION *=/ { e = $3; print v "." p "." s e; exit }')
	[[ $v =~ ^6\.12\.[0-9]+ ]] || die "cannot read a 6.12 kernel version from $TARBALL_TOP/Makefile in $TARBALL (got '$v')"
	printf '%s\n' "$v"
}

# What identifies the tarball's contents (a Debian update can change them without a new
# upstream version).
tarball_stamp() { stat -L -c '%s %Y' "$TARBALL"; }

# extract_source VERSION: unpack the tarball into $CACHE/src-VERSION once (its
# .tiermm-source names the tarball), and drop the trees of other versions. Runs under the
# source lock.
extract_source() {
	local version=$1 dir=$CACHE/src-$1 stamp tmp t0=$SECONDS d name
	stamp="$TARBALL $(tarball_stamp)"
	if [[ -f $dir/.tiermm-source && $(cat "$dir/.tiermm-source") == "$stamp" ]]; then
		return 0
	fi
	# Leftovers of interrupted runs (nobody else extracts or patches while we hold the lock).
	rm -rf "$CACHE"/.tmp-src-* "$CACHE"/.tmp-patch-*
	[[ -e $dir ]] && msg "$TARBALL changed since $dir was extracted; extracting it again"
	msg "extracting $TARBALL into $dir"
	tmp=$CACHE/.tmp-src-$$
	mkdir -p "$tmp"
	tar -xJf "$TARBALL" -C "$tmp" || { rm -rf "$tmp"; die "extracting $TARBALL failed"; }
	[[ -f $tmp/$TARBALL_TOP/Makefile && -f $tmp/$TARBALL_TOP/scripts/kconfig/merge_config.sh ]] ||
		{ rm -rf "$tmp"; die "$TARBALL has no $TARBALL_TOP/ kernel tree"; }
	printf '%s\n' "$stamp" >"$tmp/$TARBALL_TOP/.tiermm-source"
	rm -rf "$dir"
	mv "$tmp/$TARBALL_TOP" "$dir"
	rm -rf "$tmp"
	msg "extracted in $((SECONDS - t0)) s"
	# A new version replaces the old ones: their sources and build trees (not --out trees).
	for d in "$CACHE"/src-* "$CACHE"/build-*; do
		[[ -d $d ]] || continue
		name=${d##*/}
		case $name in
		"src-$version" | "src-$version-p"* | "build-$version-"*) ;;
		*) msg "removing $d (another kernel version)"; rm -rf "$d" ;;
		esac
	done
}

# The series: DIR/*.patch in name order (git format-patch numbers them).
patch_files() {
	local f
	for f in "$opt_patches"/*.patch; do
		[[ -f $f ]] && printf '%s\n' "$f"
	done | LC_ALL=C sort
}

# series_hash PATCH...: 12 hex digits naming the series (file names and contents, in order).
series_hash() {
	local f
	for f in "$@"; do
		printf '%s\n' "${f##*/}"
		sha256sum <"$f"
	done | sha256sum | cut -c1-12
}

# Files a patch modifies, as -p1 paths (from its ---/+++ lines).
patch_targets() {
	awk '/^(---|\+\+\+) / && $2 != "/dev/null" {
		p = $2; sub(/^[^\/]*\//, "", p); print p }' "$1" | sort -u
}

# patch_source SRC DIR HASH PATCH...: DIR = SRC with the series applied, made once. Hunks
# must match their context exactly (--fuzz=0, as git am would want; offsets are fine). The
# copy hard-links SRC's files; a file a patch touches gets its own copy first, so SRC stays
# pristine.
patch_source() {
	local src=$1 dir=$2 hash=$3
	shift 3
	local stamp
	stamp="$(cat "$src/.tiermm-source") series $hash"
	if [[ -f $dir/.tiermm-source && $(cat "$dir/.tiermm-source") == "$stamp" ]]; then
		return 0
	fi
	local tmp=$CACHE/.tmp-patch-$$ p t log
	msg "applying $# patch file(s) from $opt_patches to a copy of the source ($dir)"
	rm -rf "$CACHE"/.tmp-patch-*
	cp -al "$src" "$tmp" || { rm -rf "$tmp"; die "copying $src to $tmp failed"; }
	rm -f "$tmp/.tiermm-source"
	log=$tmp/.tiermm-patch.log
	for p in "$@"; do
		while IFS= read -r t; do
			if [[ -f $tmp/$t ]]; then
				cp -p -- "$tmp/$t" "$tmp/$t.tiermm-unlink" && mv -f -- "$tmp/$t.tiermm-unlink" "$tmp/$t"
			fi
		done < <(patch_targets "$p")
		if ! patch -d "$tmp" -p1 --fuzz=0 --batch --forward --no-backup-if-mismatch <"$p" >"$log" 2>&1; then
			sed 's/^/  | /' "$log" >&2
			rm -rf "$tmp"
			die "patch ${p##*/} does not apply (patch -p1, after the patches before it in $opt_patches)"
		fi
	done
	rm -f "$log"
	printf '%s\n' "$stamp" >"$tmp/.tiermm-source"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# ---------------------------------------------------------------------------------------
# Configuration

# requested_options FRAGMENT...: "CONFIG_X<TAB>value<TAB>fragment" for every option the
# fragments set, the last fragment winning; value "n" for "# CONFIG_X is not set".
requested_options() {
	awk '
		function name(f) { sub(/.*\//, "", f); return f }
		/^CONFIG_[A-Za-z0-9_]+=/ {
			k = $0; sub(/=.*/, "", k); v = $0; sub(/^[^=]*=/, "", v)
			if (!(k in val)) order[++n] = k
			val[k] = v; from[k] = name(FILENAME); next
		}
		/^# CONFIG_[A-Za-z0-9_]+ is not set$/ {
			k = $2
			if (!(k in val)) order[++n] = k
			val[k] = "n"; from[k] = name(FILENAME); next
		}
		END { for (i = 1; i <= n; i++) printf "%s\t%s\t%s\n", order[i], val[order[i]], from[order[i]] }
	' "$@"
}

# verify_config CONFIG FRAGMENT...: every requested option has its requested value.
verify_config() {
	local config=$1 k want from got bad=() n=0
	shift
	while IFS=$'\t' read -r k want from; do
		n=$((n + 1))
		got=$(sed -n "s/^$k=//p" "$config")
		[[ -n $got ]] || got=n
		if [[ $got != "$want" ]]; then
			bad+=("$(printf '%-36s requested %s (%s), got %s' "$k" "$want" "$from" "$got")")
		fi
	done < <(requested_options "$@")
	if ((${#bad[@]})); then
		msg "error: ${#bad[@]} of $n requested options are not as requested in $config"
		msg "(unmet dependencies: see the option's 'depends on' in the kernel's Kconfig files):"
		printf '  %s\n' "${bad[@]}" >&2
		exit 1
	fi
	msg "config: all $n requested options verified in $config"
}

# configure SRC OUT FRAGMENT...: OUT/.config = tinyconfig + fragments + olddefconfig,
# verified. An unchanged .config keeps its old timestamp, so kbuild rebuilds nothing.
configure() {
	local src=$1 out=$2
	shift 2
	local prev=$out/.config.tiermm-prev
	rm -f "$prev"
	[[ -f $out/.config ]] && cp -p "$out/.config" "$prev"
	kmake "$src" "$out" tinyconfig >>"$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; die "make tinyconfig failed (log: $log)"; }
	(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$@") >>"$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; die "merge_config.sh failed (log: $log)"; }
	kmake "$src" "$out" olddefconfig >>"$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; die "make olddefconfig failed (log: $log)"; }
	verify_config "$out/.config" "$@"
	if [[ -f $prev ]] && cmp -s "$prev" "$out/.config"; then
		touch -r "$prev" "$out/.config"
	fi
	rm -f "$prev"
}

# ---------------------------------------------------------------------------------------
# Build

kmake_vars=()
# kmake SRC OUT ARGS...: make in the kernel tree SRC, building into OUT.
kmake() {
	local src=$1 out=$2
	shift 2
	make -C "$src" O="$out" "${kmake_vars[@]}" "$@"
}

# Make OUT a build tree for SOURCE_ID: empty it if it was one for another source.
prepare_out() {
	local out=$1 id=$2 marker=$1/.tiermm-build
	if [[ -f $marker ]]; then
		[[ $(cat "$marker") == "$id" ]] && return 0
		msg "$out was built from another source ($(cat "$marker")); starting it afresh"
	elif [[ -n $(find "$out" -mindepth 1 -maxdepth 1 ! -name .tiermm.lock -print -quit) ]]; then
		die "--out $out is not empty and not a build tree of this script; give an empty or new directory"
	fi
	find "$out" -mindepth 1 -maxdepth 1 ! -name .tiermm.lock -exec rm -rf {} +
	printf '%s\n' "$id" >"$marker"
}

main() {
	parse_args "$@"
	ensure_host_tools

	local t_start=$SECONDS version src hash='' patches=()
	version=$(tarball_version)
	mkdir -p "$CACHE"
	src=$CACHE/src-$version
	(
		flock 9
		extract_source "$version"
	) 9>"$CACHE/.src.lock"

	if [[ -n $opt_patches ]]; then
		mapfile -t patches < <(patch_files)
		if ((${#patches[@]} == 0)); then
			msg "no *.patch files in $opt_patches: building the unpatched source"
		else
			hash=$(series_hash "${patches[@]}")
			(
				flock 9
				patch_source "$src" "$src-p$hash" "$hash" "${patches[@]}"
			) 9>"$CACHE/.src.lock"
			src=$src-p$hash
		fi
	fi

	local out=${opt_out:-$CACHE/build-$version-$opt_flavor${hash:+-p$hash}}
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	# One build per tree at a time; the lock is released when the script exits.
	exec 9>"$out/.tiermm.lock"
	flock 9
	prepare_out "$out" "$(cat "$src/.tiermm-source") in $src"

	kmake_vars=()
	if [[ ${TIERMM_KERNEL_CCACHE:-1} != 0 ]] && command -v ccache >/dev/null; then
		kmake_vars+=(CC="ccache gcc")
		# Paths under the cache become relative, so other trees of the same source hit.
		export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$CACHE}
	fi

	local fragments=("$KERNEL_DIR/minimal-6.12.fragment" "$KERNEL_DIR/tiermm.fragment") f
	[[ $opt_flavor == debug ]] && fragments+=("$KERNEL_DIR/debug.fragment")
	# A series may need options of its own (kmod/patches/linux-6.12/config.fragment).
	if [[ -n $opt_patches && -f $opt_patches/config.fragment ]]; then
		fragments+=("$opt_patches/config.fragment")
	fi
	for f in "${fragments[@]}"; do
		[[ -f $f ]] || die "config fragment $f is missing"
	done

	log=$out/tiermm-build.log
	: >"$log"
	msg "$opt_flavor kernel $version${hash:+ + series $hash} in $out (make -j$opt_jobs${kmake_vars[*]:+, ${kmake_vars[*]}})"
	configure "$src" "$out" "${fragments[@]}"

	local t0=$SECONDS
	# modules: runs modpost, which writes the Module.symvers that out-of-tree module builds
	# (make -C kmod KDIR=...) resolve the kernel's exports with.
	msg "building bzImage, modules_prepare and modules (log: $log)"
	local config_lines
	config_lines=$(wc -l <"$log")
	if ! kmake "$src" "$out" -j"$opt_jobs" bzImage modules_prepare modules >>"$log" 2>&1; then
		msg "make's errors, then its last 40 lines:"
		tail -n +"$((config_lines + 1))" "$log" | grep -E ': (fatal )?error:|\*\*\*' | head -n 20 | sed 's/^/  ! /' >&2 || true
		tail -n +"$((config_lines + 1))" "$log" | tail -n 40 | sed 's/^/  | /' >&2
		die "kernel build failed (log: $log)"
	fi
	local bzimage=$out/arch/x86/boot/bzImage release
	[[ -f $bzimage ]] || die "make succeeded but $bzimage is missing"
	for f in Makefile scripts/module.lds Module.symvers; do
		[[ -f $out/$f ]] || die "make succeeded but $out/$f (needed by out-of-tree module builds) is missing"
	done
	release=$(cat "$out/include/config/kernel.release")
	msg "built $release in $((SECONDS - t0)) s (total $((SECONDS - t_start)) s); bzImage $(du -h "$bzimage" | cut -f1)"
	printf 'BZIMAGE=%s\nKDIR=%s\n' "$bzimage" "$out"
}

log=
main "$@"
