#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager of the oldest Kubernetes minor the project
# supports (docs/compatibility.md) into their own cache directory, under their own lock, and links
# them into .cache/bin/kube-oldest/, where `E2E_KUBE=oldest` makes the e2e suite find them. The
# suite's other parts (etcd, kubectl, helm) are those of test/setup/kube.sh and helm.sh.
# Cold: about 8 minutes on 2 cores. Warm: well under a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh
source test/setup/kube-build.sh

# The oldest minor the README claims (docs/compatibility.md says what each feature needs beyond it).
KUBE_OLDEST_VERSION=v1.28.15

export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

cache_lock "kube-$KUBE_OLDEST_VERSION"
build_kube "$KUBE_OLDEST_VERSION" "$BIN_DIR/kube-oldest" kube-apiserver kube-controller-manager
