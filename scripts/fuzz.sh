#!/usr/bin/env bash
# Runs every fuzz target of every workspace module for FUZZTIME (default 15s).
# `go test -fuzz` accepts one package and one target per run, so targets are
# listed first (`go test -list '^Fuzz'`) and then run one at a time.
# Their seed corpora already run as plain tests in `make test`; inputs that
# fail here are saved under the package's testdata/fuzz/ — commit them as
# regression cases.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-15s}

mapfile -t modules < <(go list -m -f '{{.Dir}}')
targets=() # module-dir <tab> package <tab> FuzzName
for dir in "${modules[@]}"; do
	# -list prints the matching names of a package, then its "ok <package>" line.
	listing=$(cd "$dir" && go test -run='^$' -list '^Fuzz' ./...)
	while read -r pkg name; do
		targets+=("$dir"$'\t'"$pkg"$'\t'"$name")
	done < <(awk '
		/^Fuzz/ { names[++n] = $1; next }
		/^ok[ \t]/ { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }
	' <<<"$listing")
done

if ((${#targets[@]} == 0)); then
	echo "fuzz: no fuzz targets found"
	exit 0
fi

echo "fuzz: ${#targets[@]} targets, $fuzztime each"
failed=()
for t in "${targets[@]}"; do
	IFS=$'\t' read -r dir pkg name <<<"$t"
	echo
	echo "=== $pkg $name"
	(cd "$dir" && go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg") ||
		failed+=("$pkg $name")
done

echo
if ((${#failed[@]})); then
	echo "fuzz: FAILED:" >&2
	printf '  - %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
