#!/usr/bin/env bash
# Runs `go test -race -count=1 ./...` in each module directory given (every
# workspace module when none are given: `go test ./...` does not descend into
# nested modules), and, when none are given, the web tests (scripts/web.sh
# test: the SDK's and the dashboard's, against bin/sensorcast). GOTESTFLAGS
# adds flags to go test, e.g. GOTESTFLAGS='-run TestEdge -v'.
# Every module runs even after a failure; a summary at the end lists them all
# and the exit status is non-zero if any failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Tests start mosquitto and redis-server, which Debian puts in /usr/sbin.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

web=false
if (($# == 0)); then
	mapfile -t modules < <(go list -m -f '{{.Dir}}')
	web=true
else
	modules=("$@")
fi

# Word splitting is intended: GOTESTFLAGS is a list of flags.
read -r -a extra <<<"${GOTESTFLAGS:-}"

# Tests append figures worth seeing (the chaos test's loss counts and
# reconnect times) to this file; it is printed with the summary.
report=$(mktemp)
trap 'rm -f "$report"' EXIT
export SENSORCAST_TEST_REPORT=$report

summary=()
failures=0
for dir in "${modules[@]}"; do
	name=${dir#"$root"/}
	# go test fails on a module with no Go files yet; say so instead.
	if [[ -z "$(find "$dir" -name '*.go' ! -path '*/testdata/*' -print -quit)" ]]; then
		summary+=("none  $name (no Go packages yet)")
		continue
	fi
	echo
	echo "=== go test -race -count=1 ${extra[*]-} ./...  (module $name)"
	start=$SECONDS
	if (cd "$dir" && go test -race -count=1 "${extra[@]}" ./...); then
		summary+=("ok    $name ($((SECONDS - start))s)")
	else
		summary+=("FAIL  $name ($((SECONDS - start))s)")
		failures=$((failures + 1))
	fi
done

if $web; then
	start=$SECONDS
	if bash scripts/web.sh test; then
		summary+=("ok    web (SDK and dashboard, $((SECONDS - start))s)")
	else
		summary+=("FAIL  web (SDK and dashboard, $((SECONDS - start))s)")
		failures=$((failures + 1))
	fi
fi

if [[ -s $report ]]; then
	echo
	echo "=== test report"
	sed 's/^/  /' "$report"
fi
echo
echo "=== test summary"
printf '  %s\n' "${summary[@]}"
if ((failures)); then
	echo "=== FAILED: $failures of the parts above had failing tests (see the FAIL lines)" >&2
	exit 1
fi
echo "=== PASS: all ${#summary[@]} parts"
