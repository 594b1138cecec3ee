#!/usr/bin/env bash
# Static checks, each failing the build on any finding:
#   1. generated code is current: regenerate proto/ into a scratch directory
#      and compare it with the tree (also catches *.pb.go left behind by a
#      deleted .proto, and generated files that were never added to git,
#      since a fresh clone in CI does not have them);
#   2. the operator's deepcopy, CRDs and RBAC, their copies in the chart, and
#      the plain manifests rendered from the chart are current
#      (scripts/manifests.sh into a scratch directory, compared file by file);
#   3. every sensorcast_* metric the chart's PrometheusRule and Grafana
#      dashboard use is defined in the Go code (a renamed metric must not
#      silently blind an alert);
#   4. buf lint on proto/;
#   5. gofmt on every module (generated *.pb.go excluded);
#   6. go vet on every module.
# Needs the tools from scripts/tools.sh (TOOLS_CACHE names their directory)
# and helm from scripts/k8s-tools.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
TOOLS_CACHE=${TOOLS_CACHE:-$(scripts/tools.sh dir)}
export PATH="$TOOLS_CACHE:$PATH"

failed=()

echo "check: generated code in proto/"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd proto && buf generate --output "$scratch")
stale=()
while IFS= read -r -d '' f; do
	rel=${f#"$scratch"/}
	if [[ ! -e "proto/$rel" ]]; then
		stale+=("proto/$rel (missing: generated files are committed)")
	elif ! cmp -s "$f" "proto/$rel"; then
		stale+=("proto/$rel")
	fi
done < <(find "$scratch" -type f -print0)
while IFS= read -r -d '' f; do
	rel=${f#proto/}
	[[ -e "$scratch/$rel" ]] || stale+=("$f (no .proto generates it any more)")
done < <(find proto -name '*.pb.go' -print0)
if ((${#stale[@]})); then
	printf '  stale: %s\n' "${stale[@]}"
	echo "  generated code is stale; run make generate"
	failed+=("generated code")
fi

echo "check: generated operator manifests"
gen="$scratch/manifests"
bash scripts/manifests.sh "$gen"
stale=()
while IFS= read -r -d '' f; do
	rel=${f#"$gen"/}
	cmp -s "$f" "$rel" || stale+=("$rel")
done < <(find "$gen" -type f -print0)
while IFS= read -r -d '' f; do
	[[ -e "$gen/$f" ]] || stale+=("$f (nothing generates it any more)")
done < <(find operator/config/crd/bases operator/config/rbac/role.yaml charts/sensorcast/crds charts/sensorcast/files/operator-role.yaml deploy/manifests/sensorcast.yaml -type f -print0 2>/dev/null)
if ((${#stale[@]})); then
	printf '  stale: %s\n' "${stale[@]}"
	echo "  generated operator manifests are stale; run make generate"
	failed+=("operator manifests")
fi

echo "check: metrics the chart's alerts and dashboard use exist"
missing=()
while read -r name; do
	base=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
	grep -rqs --include='*.go' "\"$base\"" services operator || missing+=("$name")
done < <(grep -ohE 'sensorcast_[a-z0-9_]+' charts/sensorcast/templates/metrics.yaml charts/sensorcast/files/grafana-dashboard.json | sort -u)
if ((${#missing[@]})); then
	printf '  no service defines: %s\n' "${missing[@]}"
	failed+=("chart metrics")
fi

echo "check: buf lint"
(cd proto && buf lint) || failed+=("buf lint")

mapfile -t modules < <(go list -m -f '{{.Dir}}')

echo "check: gofmt"
mapfile -t unformatted < <(for dir in "${modules[@]}"; do
	find "$dir" -name '*.go' ! -name '*.pb.go' ! -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l
done)
if ((${#unformatted[@]})); then
	printf '  needs gofmt: %s\n' "${unformatted[@]#"$root"/}"
	failed+=("gofmt")
fi

for dir in "${modules[@]}"; do
	name=${dir#"$root"/}
	# go vet fails on a module with no Go files yet; there is nothing to vet.
	if [[ -z "$(find "$dir" -name '*.go' ! -path '*/testdata/*' -print -quit)" ]]; then
		echo "check: go vet ($name): no Go packages yet, skipped"
		continue
	fi
	echo "check: go vet ($name)"
	(cd "$dir" && go vet ./...) || failed+=("go vet $name")
done

if ((${#failed[@]})); then
	echo "check: FAILED:" >&2
	printf '  - %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "check: ok"
