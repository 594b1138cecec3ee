#!/usr/bin/env bash
# Generates the operator's Kubernetes artefacts from its kubebuilder markers
# with the pinned controller-gen (a `tool` of operator/go.mod):
#   operator/api/v1alpha1/zz_generated.deepcopy.go   DeepCopy methods
#   operator/config/crd/bases/                        the CRDs
#   operator/config/rbac/role.yaml                    the ClusterRole
#
# manifests.sh            writes them into the tree
# manifests.sh OUTDIR     writes them under OUTDIR instead (same layout), so
#                         scripts/check.sh can compare without touching the tree
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/operator}
cd "$root/operator"
mkdir -p "$out/api/v1alpha1" "$out/config/crd/bases" "$out/config/rbac"
go tool controller-gen \
	object paths=./api/... output:object:dir="$out/api/v1alpha1" \
	crd paths=./... output:crd:artifacts:config="$out/config/crd/bases" \
	rbac:roleName=sensorcast-operator paths=./... output:rbac:artifacts:config="$out/config/rbac"
