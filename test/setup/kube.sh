#!/usr/bin/env bash
# Builds the control plane and node the e2e suites run against — etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet and kubectl — from the Go module proxy with the machine's Go, caches
# the binaries by version in $CACHE_ROOT and links them into .cache/bin.
# Cold: 10-17 minutes on 2 cores, nearly all of it compiling Kubernetes. Warm: well under a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.6
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

# build_etcd: etcd's server module has replace directives, so `go install pkg@version` refuses
# it; a wrapper module requires it and replaces its sibling modules with the same release.
build_etcd() {
  local dir="$CACHE_ROOT/etcd-$ETCD_VERSION"
  if [ -x "$dir/bin/etcd" ]; then
    step "etcd $ETCD_VERSION: cached"
  else
    need go "install Go (https://go.dev/dl/) to build etcd $ETCD_VERSION"
    step "etcd $ETCD_VERSION: building (about 2 minutes)"
    local src="$dir/src"
    rm -rf "$src" "$dir/bin.tmp"
    mkdir -p "$src"
    cat >"$src/go.mod" <<GOMOD
module aws-secret-injector.local/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
    cat >"$src/tools.go" <<'GO'
//go:build tools

// Keeps `go mod tidy` from dropping the requirement on the etcd server module.
package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    (cd "$src" && run_logged "etcd: go mod tidy" "$LOG_DIR/etcd-tidy.log" go mod tidy)
    (cd "$src" && run_logged "etcd: go build" "$LOG_DIR/etcd-build.log" \
      go build -trimpath -ldflags "-s -w" -o "$dir/bin.tmp/etcd" go.etcd.io/etcd/server/v3)
    rm -rf "$dir/bin" && mv "$dir/bin.tmp" "$dir/bin"
  fi
  link etcd "$dir/bin/etcd"
}

# build_kube: k8s.io/kubernetes lists its staging modules (k8s.io/api, k8s.io/apiserver, ...) as
# v0.0.0 with replaces into its own tree, so a wrapper module requires it and replaces each of
# them with the matching published release (v0.X.Y for v1.X.Y), a list read from that go.mod.
build_kube() {
  local dir="$CACHE_ROOT/kubernetes-$KUBE_VERSION"
  local missing=0 b
  for b in "${KUBE_BINS[@]}"; do [ -x "$dir/bin/$b" ] || missing=1; done
  if [ $missing = 0 ]; then
    step "Kubernetes $KUBE_VERSION: cached"
  else
    need go "install Go 1.26 or newer (https://go.dev/dl/) to build Kubernetes $KUBE_VERSION"
    if ! go_at_least 1.26.0; then
      # The wrapper's go.mod asks for go 1.26.0; unless told to stay local, go fetches that toolchain.
      [ "$(go env GOTOOLCHAIN)" != local ] ||
        die "Kubernetes $KUBE_VERSION needs Go 1.26.0 or newer; this machine has $(go env GOVERSION) and GOTOOLCHAIN=local"
      step "Go $(go env GOVERSION) is older than 1.26: go fetches the go1.26 toolchain from the module proxy"
    fi
    step "Kubernetes $KUBE_VERSION: building ${KUBE_BINS[*]} (10-15 minutes on 2 cores)"
    local src="$dir/src"
    rm -rf "$src" "$dir/bin.tmp"
    mkdir -p "$src"
    local kube_gomod
    kube_gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [ -f "$kube_gomod" ] || die "could not download k8s.io/kubernetes@$KUBE_VERSION from the Go module proxy"
    local staging_version="v0.${KUBE_VERSION#v1.}"
    local replaces
    # the staging modules are exactly those replaced with a ./staging/ path in kubernetes' go.mod
    replaces=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$kube_gomod" | sort -u)
    [ -n "$replaces" ] || die "found no staging modules in $kube_gomod; has the layout of k8s.io/kubernetes changed?"
    {
      echo "module aws-secret-injector.local/kubernetes"
      echo
      echo "go $(sed -n 's/^go \(.*\)/\1/p' "$kube_gomod")"
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      echo "replace ("
      for m in $replaces; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
      echo ")"
    } >"$src/go.mod"
    {
      echo "//go:build tools"
      echo
      echo "// Keeps \`go mod tidy\` from dropping the requirements on the commands built from this module."
      echo "package tools"
      echo
      echo "import ("
      for b in "${KUBE_BINS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
      echo ")"
    } >"$src/tools.go"
    echo "    $(echo "$replaces" | wc -l) staging modules pinned to $staging_version"
    (cd "$src" && run_logged "Kubernetes: go mod tidy" "$LOG_DIR/kube-tidy.log" go mod tidy)
    # Without the version ldflags the server reports v0.0.0-master, which helm's kubeVersion
    # checks and .Capabilities.KubeVersion would see.
    local minor=${KUBE_VERSION#v1.}
    minor=${minor%%.*}
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    local pkgs=()
    for b in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    mkdir -p "$dir/bin.tmp"
    (cd "$src" && run_logged "Kubernetes: go build" "$LOG_DIR/kube-build.log" \
      go build -trimpath -ldflags "$ldflags" -o "$dir/bin.tmp/" "${pkgs[@]}")
    for b in "${KUBE_BINS[@]}"; do [ -x "$dir/bin.tmp/$b" ] || die "go build did not produce $b"; done
    rm -rf "$dir/bin" && mv "$dir/bin.tmp" "$dir/bin"
  fi
  for b in "${KUBE_BINS[@]}"; do link "$b" "$dir/bin/$b"; done
  "$BIN_DIR/kube-apiserver" --version
}

cache_lock kube
build_etcd
build_kube
