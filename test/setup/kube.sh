#!/usr/bin/env bash
# Builds the control plane and node the e2e suites run against — etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet and kubectl — from the Go module proxy with the machine's Go, caches
# the binaries by version in $CACHE_ROOT and links them into .cache/bin.
# Cold: 10-17 minutes on 2 cores, nearly all of it compiling Kubernetes. Warm: well under a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh
source test/setup/kube-build.sh

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

cache_lock kube
build_etcd
build_kube "$KUBE_VERSION" "$BIN_DIR" "${KUBE_BINS[@]}"
