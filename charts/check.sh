#!/usr/bin/env bash
# `make charts`: every chart linted and rendered for every environment, the rendered manifests
# validated against the Kubernetes API of the version AKS runs, and checkov and hadolint over the
# charts, the manifests and the Dockerfiles. Any finding fails the run.
#   charts/check.sh <tools directory> <Kubernetes version>
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${1:?usage: check.sh <tools directory> <Kubernetes version>}"
kubernetes_version="${2:?usage: check.sh <tools directory> <Kubernetes version>}"
export PATH="$tools/bin:$PATH" # checkov's helm scan runs `helm` from PATH
out=build/charts
# Every chart but the library and the platform is a workload, new services' included.
workloads=()
for chart_file in charts/*/Chart.yaml; do
  chart=$(basename "$(dirname "$chart_file")")
  [[ $chart == common || $chart == shipping-platform ]] || workloads+=("$chart")
done
environments=(dev qa staging prod)
dockerfiles=(src/shipping/*/Dockerfile src/gateway/Dockerfile)

step() { printf '\n== %s\n' "$*"; }

step "helm: dependencies, lint --strict and template, for every environment"
rm -rf "$out"
helm lint --strict --quiet charts/common
for chart in "${workloads[@]}"; do
  helm dependency build --skip-refresh "charts/$chart" >/dev/null
done
for environment in "${environments[@]}"; do
  mkdir -p "$out/$environment"
  for chart in "${workloads[@]}" shipping-platform; do
    release="$chart" namespace="shipping-$environment"
    if [[ $chart == shipping-platform ]]; then
      # It creates shipping-<env>, so its release record lives in a namespace of its own.
      release="shipping-platform-$environment" namespace=shipping-platform
    fi
    values=(-f "charts/$chart/values-$environment.yaml" -f "charts/$chart/ci/installation.yaml")
    helm lint --strict --quiet "charts/$chart" --namespace "$namespace" "${values[@]}" \
      --kube-version "$kubernetes_version" | { grep -v -e '^\[INFO\]' -e '^$' -e 'linted, 0 chart(s) failed' || true; }
    helm template "$release" "charts/$chart" --namespace "$namespace" "${values[@]}" \
      --kube-version "$kubernetes_version" >"$out/$environment/$chart.yaml"
  done
done
echo "rendered into $out/"

step "kubernetes-validate --strict against Kubernetes $kubernetes_version"
# The Secrets Store CSI driver's SecretProviderClass has no schema here (a custom resource): it is
# reported, and tests/charts checks its shape.
kubernetes-validate --strict --quiet --kubernetes-version "$kubernetes_version" "$out"/*/*.yaml 2>&1 |
  { grep -v "Couldn't find schema for kind SecretProviderClass" || true; }

step "checkov: rendered manifests and Dockerfiles"
checkov_args=(--compact --quiet --skip-download)
checkov "${checkov_args[@]}" --framework kubernetes dockerfile -f "$out"/*/*.yaml "${dockerfiles[@]}"

step "checkov: the charts' templates, rendered by checkov with each chart's prod values"
for chart in "${workloads[@]}" shipping-platform; do
  # CKV_K8S_21 (default namespace): checkov renders without a namespace; the manifests above are
  # rendered into shipping-<env> and pass it.
  checkov "${checkov_args[@]}" --framework helm -d "charts/$chart" --skip-check CKV_K8S_21 \
    --var-file "charts/$chart/values-prod.yaml" --var-file "charts/$chart/ci/installation.yaml"
done

step "hadolint"
hadolint "${dockerfiles[@]}"
echo "${#dockerfiles[@]} Dockerfiles clean"
