#!/usr/bin/env bash
# Builds the container images where a container engine exists (docker, else
# podman): sensorcast (ingest, edge, registry) and sensorcast-operator, from
# deploy/images/*.Dockerfile. The version is `git describe`.
#
#   IMAGE_PREFIX=ghcr.io/me/ scripts/images.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

engine=${CONTAINER_ENGINE:-}
if [[ -z $engine ]]; then
	for e in docker podman; do
		if command -v "$e" >/dev/null; then
			engine=$e
			break
		fi
	done
fi
if [[ -z $engine ]]; then
	echo "images: no container engine (docker or podman) on this machine; set CONTAINER_ENGINE or build elsewhere" >&2
	exit 1
fi

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
prefix=${IMAGE_PREFIX:-ghcr.io/sensorcast/}
for image in sensorcast operator; do
	name=${prefix}sensorcast
	[[ $image == operator ]] && name=${prefix}sensorcast-operator
	echo "images: $name:$version"
	"$engine" build -f "deploy/images/$image.Dockerfile" \
		--build-arg VERSION="$version" --build-arg REVISION="$revision" \
		-t "$name:$version" .
done
