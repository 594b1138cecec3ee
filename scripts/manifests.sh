#!/usr/bin/env bash
# Generates the operator's Kubernetes artefacts from its kubebuilder markers
# with the pinned controller-gen (a `tool` of operator/go.mod):
#   operator/api/v1alpha1/zz_generated.deepcopy.go   DeepCopy methods
#   operator/config/crd/bases/                        the CRDs
#   operator/config/rbac/role.yaml                    the ClusterRole
# and copies the CRD and the ClusterRole's rules into the chart
# (charts/sensorcast/crds/, charts/sensorcast/files/operator-role.yaml).
#
# manifests.sh            writes them into the tree
# manifests.sh OUTDIR     writes them under OUTDIR/operator and OUTDIR/charts
#                         instead, so scripts/check.sh can compare without
#                         touching the tree
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=${1:-$root}
out=$base/operator
cd "$root/operator"
mkdir -p "$out/api/v1alpha1" "$out/config/crd/bases" "$out/config/rbac"
go tool controller-gen \
	object paths=./api/... output:object:dir="$out/api/v1alpha1" \
	crd paths=./... output:crd:artifacts:config="$out/config/crd/bases" \
	rbac:roleName=sensorcast-operator paths=./... output:rbac:artifacts:config="$out/config/rbac"

chart=$base/charts/sensorcast
mkdir -p "$chart/crds" "$chart/files"
cp "$out"/config/crd/bases/*.yaml "$chart/crds/"
cp "$out/config/rbac/role.yaml" "$chart/files/operator-role.yaml"
