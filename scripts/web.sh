#!/usr/bin/env bash
# The TypeScript side: the SDK (web/sdk, @sensorcast/client) and the
# dashboard (web/dashboard), each an npm package with its own lock file.
#
#   scripts/web.sh build   npm ci where node_modules is missing or older than
#                          the lock file, then build the SDK and the dashboard
#                          (Vite writes it into services/edge/internal/dashboard/
#                          static/app, which the edge binary embeds)
#   scripts/web.sh test    npm test in each package: the SDK's unit tests and
#                          its tests against `sensorcast run`, the dashboard's
#                          in headless Chromium (needs bin/sensorcast built with
#                          the dashboard: make build)
#
# Needs Node.js 20.19 or newer (Vite 8) with npm; packages come from the npm
# registry (cached by npm in ~/.npm).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(web/sdk web/dashboard)

need_node() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		echo "web: Node.js 20.19+ and npm are needed to build the dashboard (https://nodejs.org)" >&2
		exit 1
	fi
	local v
	v=$(node -p 'process.versions.node')
	if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
		echo "web: Node.js $v is too old: Vite needs 20.19 or newer" >&2
		exit 1
	fi
}

install() {
	local dir=$1
	# npm ci wipes node_modules first: only when the lock file changed since.
	if [[ ! -e "$dir/node_modules/.package-lock.json" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
		echo "web: npm ci ($dir)"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
}

case ${1:-} in
build)
	need_node
	for dir in "${packages[@]}"; do
		install "$root/$dir"
		echo "web: npm run build ($dir)"
		(cd "$root/$dir" && npm run --silent build)
	done
	;;
test)
	need_node
	export SENSORCAST_BIN=${SENSORCAST_BIN:-$root/bin/sensorcast}
	export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$root/bin/artifacts/dashboard}
	failed=0
	for dir in "${packages[@]}"; do
		install "$root/$dir"
		echo
		echo "=== npm test ($dir)"
		(cd "$root/$dir" && npm test) || failed=1
	done
	exit "$failed"
	;;
*)
	echo "usage: scripts/web.sh build|test" >&2
	exit 2
	;;
esac
