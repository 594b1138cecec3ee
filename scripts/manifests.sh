#!/usr/bin/env bash
# Generates the operator's Kubernetes artefacts from its kubebuilder markers
# with the pinned controller-gen (a `tool` of operator/go.mod):
#   operator/api/v1alpha1/zz_generated.deepcopy.go   DeepCopy methods
#   operator/config/crd/bases/                        the CRDs
#   operator/config/rbac/role.yaml                    the ClusterRole
# copies the CRD and the ClusterRole's rules into the chart
# (charts/sensorcast/crds/, charts/sensorcast/files/operator-role.yaml), and
# renders the chart into plain manifests, deploy/manifests/sensorcast.yaml,
# with deploy/manifests/values.yaml (helm from scripts/k8s-tools.sh).
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

helm=$(bash "$root/scripts/k8s-tools.sh" dir)/helm
[[ -x $helm ]] || {
	echo "manifests: $helm is missing; run make k8s-tools" >&2
	exit 1
}
mkdir -p "$base/deploy/manifests"
{
	echo "# Rendered from charts/sensorcast by make manifests with deploy/manifests/values.yaml:"
	echo "# do not edit. kubectl create namespace sensorcast; create the Secret sensorcast-auth"
	echo "# (key jwt-secret); then kubectl apply -n sensorcast -f this file."
	"$helm" template sensorcast "$root/charts/sensorcast" --namespace sensorcast --include-crds -f "$root/deploy/manifests/values.yaml"
} >"$base/deploy/manifests/sensorcast.yaml"
