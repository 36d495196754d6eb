#!/usr/bin/env bash
# Builds helm with the machine's Go from the Go module proxy into the shared cache, keyed by
# version, and links it as .cache/bin/helm. Idempotent: a cached binary is only re-linked.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

HELM_VERSION="${HELM_VERSION:-v3.19.0}"
# The Kubernetes version `helm template` and `helm lint` assume when no cluster is asked: that of
# the client-go helm $HELM_VERSION is built with (v0.34). Left unset, helm assumes 1.20.
HELM_KUBE_MINOR=34
dest="$CACHE_ROOT/helm/$HELM_VERSION-k1.$HELM_KUBE_MINOR"
cache_lock helm

if [[ -x "$dest/bin/helm" ]] && "$dest/bin/helm" version --short >/dev/null 2>&1; then
  step "helm $HELM_VERSION: cached"
else
  need go "Go builds helm from the Go module proxy; install it from https://go.dev/dl/"
  step "helm $HELM_VERSION: building with $(go env GOVERSION) (about 2 minutes the first time)"
  tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  # The same link-time variables helm's own Makefile sets: its version string and default kube version.
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
  done
  trap 'rm -rf "$tmp"' EXIT
  run_logged "go install helm $HELM_VERSION" "$LOG_DIR/helm-build.log" \
    env GOBIN="$tmp/bin" CGO_ENABLED=0 go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
fi
link helm "$dest/bin/helm"
echo "    $("$BIN_DIR/helm" version --short)"
