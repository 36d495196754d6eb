#!/usr/bin/env bash
# Builds cert-manager's controller and CA injector from the Go module proxy with the machine's Go
# (cert-manager's own control loops behind the short mains in test/setup/cert-manager/), renders
# its CustomResourceDefinitions from the Helm chart in the same module's source, caches all of it
# by version in $CACHE_ROOT and links it into .cache/bin (binaries) and .cache/cert-manager (CRDs).
# Cold: about 6 minutes on 2 cores. Warm: well under a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

CERT_MANAGER_VERSION=v1.21.2
dir="$CACHE_ROOT/cert-manager-$CERT_MANAGER_VERSION"
mains=test/setup/cert-manager
# The mains are part of the cache key: a change to them rebuilds.
key=$(cat "$mains"/*/main.go | sha256sum | cut -c1-12)

export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

cache_lock "cert-manager-$CERT_MANAGER_VERSION"
if [[ -x $dir/$key/bin/cert-manager-controller && -x $dir/$key/bin/cert-manager-cainjector && -s $dir/$key/crds.yaml ]]; then
  step "cert-manager $CERT_MANAGER_VERSION: cached"
else
  need go "install Go (https://go.dev/dl/) to build cert-manager $CERT_MANAGER_VERSION"
  [[ -x $BIN_DIR/helm ]] || die "helm is not in .cache/bin: run test/setup/helm.sh first (it renders cert-manager's CRDs)"
  step "cert-manager $CERT_MANAGER_VERSION: building the controller and the CA injector (about 6 minutes on 2 cores)"
  src="$dir/src"
  rm -rf "$src" "$dir/$key.tmp"
  mkdir -p "$src/controller" "$src/cainjector" "$dir/$key.tmp/bin"
  cp "$mains/controller/main.go" "$src/controller/"
  cp "$mains/cainjector/main.go" "$src/cainjector/"
  module_dir=$(cd "$src" && go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [[ -d $module_dir ]] || die "could not download github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION from the Go module proxy"
  {
    echo "module aws-secret-injector.local/cert-manager"
    echo
    echo "go $(sed -n 's/^go \(.*\)/\1/p' "$module_dir/go.mod")"
    echo
    echo "require github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION"
  } >"$src/go.mod"
  (cd "$src" && run_logged "cert-manager: go mod tidy" "$LOG_DIR/cert-manager-tidy.log" go mod tidy)
  ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION"
  (cd "$src" && run_logged "cert-manager: go build" "$LOG_DIR/cert-manager-build.log" \
    sh -c "go build -trimpath -ldflags '$ldflags' -o '$dir/$key.tmp/bin/cert-manager-controller' ./controller &&
      go build -trimpath -ldflags '$ldflags' -o '$dir/$key.tmp/bin/cert-manager-cainjector' ./cainjector")
  # The CRDs exactly as cert-manager's own chart installs them (crds.enabled=true), from the module's source.
  crd_templates=()
  for t in "$module_dir"/deploy/charts/cert-manager/templates/crd-*.yaml; do crd_templates+=(--show-only "templates/${t##*/}"); done
  "$BIN_DIR/helm" template cert-manager "$module_dir/deploy/charts/cert-manager" \
    --namespace cert-manager --set crds.enabled=true "${crd_templates[@]}" >"$dir/$key.tmp/crds.yaml" 2>"$LOG_DIR/cert-manager-crds.log" ||
    { cat "$LOG_DIR/cert-manager-crds.log" >&2; die "helm template of cert-manager's chart failed"; }
  grep -Eq 'name: "?certificates.cert-manager.io"?$' "$dir/$key.tmp/crds.yaml" || die "cert-manager's chart rendered no Certificate CRD"
  rm -rf "$dir/$key" && mv "$dir/$key.tmp" "$dir/$key"
fi
link cert-manager-controller "$dir/$key/bin/cert-manager-controller"
link cert-manager-cainjector "$dir/$key/bin/cert-manager-cainjector"
mkdir -p .cache/cert-manager
ln -sfn "$dir/$key/crds.yaml" .cache/cert-manager/crds.yaml
echo "    cert-manager $CERT_MANAGER_VERSION: $(grep -c '^kind: CustomResourceDefinition' "$dir/$key/crds.yaml") CRDs"
