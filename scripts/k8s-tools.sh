#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd), KWOK, kubectl and helm from the Go module proxy into a
# cache outside the clone. The operator's envtest tests, its end-to-end test and
# the chart's tests run on them.
#
#   scripts/k8s-tools.sh dir     print the binary directory (KUBEBUILDER_ASSETS)
#   scripts/k8s-tools.sh build   make sure every binary is in it
#
# Versions come from the `tool` directives of tools/k8s/go.mod, a wrapper module
# kept out of go.work: k8s.io/kubernetes cannot be `go install`ed (its go.mod
# replaces the staging modules with local paths), so the wrapper repeats those
# replaces pointed at the published v0.x versions. One module for every tool means
# the shared libraries compile once.
#
# The directory is named after a hash of the wrapper's go.mod and go.sum, so CI's
# fresh clones reuse binaries built earlier and a version bump builds a new set:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sensorcast/k8s/<hash>/{kube-apiserver,etcd,...,kwok-stages.yaml}
#
# A cold build takes about ten minutes on two cores; the set is built into a
# temporary directory and renamed into place, so an interrupted build leaves
# nothing half-made behind.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module=$root/tools/k8s
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/sensorcast

binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)

k8s_dir() {
	local hash
	hash=$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-16)
	echo "$cache_root/k8s/$hash"
}

complete() {
	local dir=$1 bin
	for bin in "${binaries[@]}"; do
		[[ -x "$dir/$bin" ]] || return 1
	done
}

# kwok-stages.yaml: the KWOK stages that make nodes Ready (with leases) and
# pods Running, Ready and gone when deleted, from the kwok module's own files.
write_stages() {
	local dir=$1 kwok_dir stage first=1
	kwok_dir=$(cd "$module" && GOWORK=off go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
	for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
		pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
		((first)) || echo "---"
		first=0
		cat "$kwok_dir/kustomize/stage/$stage.yaml"
	done >"$dir/kwok-stages.yaml.tmp"
	mv "$dir/kwok-stages.yaml.tmp" "$dir/kwok-stages.yaml"
}

build() {
	local dir tmp k8s_version helm_version minor ldflags
	dir=$(k8s_dir)
	if complete "$dir"; then
		[[ -s "$dir/kwok-stages.yaml" ]] || write_stages "$dir"
		echo "k8s: control plane binaries cached in $dir"
		return
	fi
	mkdir -p "$(dirname "$dir")"
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now
	trap "rm -rf '$tmp'" EXIT

	k8s_version=$(cd "$module" && GOWORK=off go list -m -f '{{.Version}}' k8s.io/kubernetes)
	helm_version=$(cd "$module" && GOWORK=off go list -m -f '{{.Version}}' helm.sh/helm/v4)
	minor=$(echo "$k8s_version" | cut -d. -f2)
	# Without these the API server reports v0.0.0-master, which clients that
	# check the server version (helm's kubeVersion, for one) refuse.
	ldflags="-s -w"
	ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
	ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
	ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
	ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
	# helm v4 takes the Kubernetes version it assumes from client-go's module
	# version; its own version needs setting.
	ldflags+=" -X helm.sh/helm/v4/internal/version.version=$helm_version"

	echo "k8s: building kubernetes $k8s_version, etcd, kwok and helm $helm_version into $dir (about fifteen minutes when nothing is cached)"
	local start=$SECONDS
	(cd "$module" && GOWORK=off go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kubectl \
		go.etcd.io/etcd/server/v3 \
		sigs.k8s.io/kwok/cmd/kwok \
		helm.sh/helm/v4/cmd/helm)
	# etcd's main package is its server module, so the binary is named `server`.
	mv "$tmp/server" "$tmp/etcd"
	write_stages "$tmp"
	complete "$tmp" || {
		echo "k8s: build did not produce every binary (${binaries[*]})" >&2
		exit 1
	}
	rm -rf "$dir"
	mv "$tmp" "$dir"
	trap - EXIT
	echo "k8s: built in $((SECONDS - start))s: $("$dir/kube-apiserver" --version), etcd $("$dir/etcd" --version | sed -n 's/^etcd Version: //p'), helm $("$dir/helm" version --short)"
}

case "${1:-}" in
dir) k8s_dir ;;
build) build ;;
*)
	echo "usage: $0 dir|build" >&2
	exit 2
	;;
esac
