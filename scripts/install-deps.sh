#!/usr/bin/env bash
# Installs the system packages the tests start as real processes: Mosquitto
# (broker and mosquitto_pub/mosquitto_sub), Redis, the PostgreSQL server and
# Chromium (the dashboard's browser tests drive it headless).
# Idempotent: a package is installed only when its command is missing, and
# `apt-get update` runs at most once. Debian/Ubuntu (apt) only; elsewhere it
# names what to install and fails.
#
# If installing a package starts its system service (Debian does, and the
# postgresql package also creates a "main" cluster), it is left running: the
# tests start their own instances on free ports and never use it.
set -euo pipefail

# command -> Debian package that provides it.
declare -A package_of=(
	[mosquitto]=mosquitto
	[mosquitto_pub]=mosquitto-clients
	[mosquitto_sub]=mosquitto-clients
	[redis-server]=redis-server
	[initdb]=postgresql
	[postgres]=postgresql
	[pg_ctl]=postgresql
	[chromium]=chromium
)

# Daemons live in /usr/sbin, which a non-root PATH often lacks; Debian puts the
# PostgreSQL server programs in /usr/lib/postgresql/<version>/bin, on no PATH
# (services/internal/pgtest looks there too).
have() {
	if command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; then
		return 0
	fi
	local candidate
	for candidate in /usr/lib/postgresql/*/bin/"$1"; do
		[[ -x "$candidate" ]] && return 0
	done
	return 1
}

missing=()
for cmd in "${!package_of[@]}"; do
	if ! have "$cmd"; then
		pkg=${package_of[$cmd]}
		[[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: mosquitto, mosquitto-clients, redis-server, postgresql and chromium are installed"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: this script only knows apt-get (Debian/Ubuntu); install them with your package manager" >&2
	exit 1
fi

sudo=()
if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "deps: missing packages: ${missing[*]}, and not root and no sudo to install them" >&2
		exit 1
	fi
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

for cmd in "${!package_of[@]}"; do
	if ! have "$cmd"; then
		echo "deps: $cmd is still missing after installing ${package_of[$cmd]}" >&2
		exit 1
	fi
done
echo "deps: installed ${missing[*]}"
