#!/usr/bin/env bash
# Builds the pinned code-generation tools into a cache outside the clone.
#
#   scripts/tools.sh dir     print the tool directory (the Makefile's TOOLS_CACHE)
#   scripts/tools.sh build   make sure buf, protoc-gen-go and protoc-gen-go-grpc
#                            are in it
#
# Versions come from Go `tool` directives: buf from tools/go.mod (a module kept
# out of go.work so buf's dependencies cannot raise the services' versions),
# protoc-gen-go and protoc-gen-go-grpc from proto/go.mod (the same
# google.golang.org/protobuf and google.golang.org/grpc versions the generated
# code runs against). All are built with GOWORK=off so only their own module
# decides the versions.
#
# The directory is named after a hash of those go.mod/go.sum files, so bumping
# a version builds a fresh set instead of reusing a stale binary:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sensorcast/tools/<hash>/{buf,protoc-gen-go,protoc-gen-go-grpc}
#
# Binaries are built to a temporary name and renamed, so an interrupted build
# never leaves a broken tool behind.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/sensorcast

tools_dir() {
	local hash
	hash=$(cd "$root" && for f in tools/go.mod tools/go.sum proto/go.mod proto/go.sum; do
		echo "== $f"
		cat "$f" 2>/dev/null || true
	done | sha256sum | cut -c1-16)
	echo "$cache_root/tools/$hash"
}

# install_go_tool DIR MODULE_DIR PACKAGE NAME builds PACKAGE, resolved in
# MODULE_DIR's go.mod, into DIR/NAME.
install_go_tool() {
	local dir=$1 module_dir=$2 pkg=$3 name=$4
	local tmp="$dir/.$name.tmp.$$"
	echo "tools: building $name ($pkg) from $module_dir/go.mod"
	(cd "$root/$module_dir" && GOWORK=off go build -trimpath -o "$tmp" "$pkg")
	mv -f "$tmp" "$dir/$name"
}

# buf_version prints the version of buf pinned in tools/go.mod, without the v.
buf_version() {
	(cd "$root/tools" && GOWORK=off go list -m -f '{{.Version}}' github.com/bufbuild/buf) | sed 's/^v//'
}

install_buf() {
	local dir=$1 want shared
	want=$(buf_version)
	# A buf built earlier outside this script (same pinned version) saves a
	# several-minute build.
	shared=$cache_root/bin/buf
	if [[ -x "$shared" ]] && [[ "$("$shared" --version 2>/dev/null || true)" == "$want" ]]; then
		echo "tools: reusing buf $want from $shared"
		cp "$shared" "$dir/.buf.tmp.$$"
		mv -f "$dir/.buf.tmp.$$" "$dir/buf"
		return
	fi
	install_go_tool "$dir" tools github.com/bufbuild/buf/cmd/buf buf
}

build() {
	local dir
	dir=$(tools_dir)
	mkdir -p "$dir"
	# shellcheck disable=SC2064 # expand $dir now: it is local to this function
	trap "rm -f '$dir'/.*.tmp.$$" EXIT
	[[ -x "$dir/buf" ]] || install_buf "$dir"
	[[ -x "$dir/protoc-gen-go" ]] ||
		install_go_tool "$dir" proto google.golang.org/protobuf/cmd/protoc-gen-go protoc-gen-go
	[[ -x "$dir/protoc-gen-go-grpc" ]] ||
		install_go_tool "$dir" proto google.golang.org/grpc/cmd/protoc-gen-go-grpc protoc-gen-go-grpc
	echo "tools: buf $("$dir/buf" --version), $("$dir/protoc-gen-go" --version)," \
		"$("$dir/protoc-gen-go-grpc" --version) in $dir"
}

case "${1:-}" in
dir) tools_dir ;;
build) build ;;
*)
	echo "usage: $0 dir|build" >&2
	exit 2
	;;
esac
