#!/usr/bin/env bash
# Installs the real parts the integration, e2e and node suites run against (the e2e suite's
# control plane twice: the current Kubernetes and the oldest supported minor), each cached by version
# outside the clone (in $AWS_SECRET_INJECTOR_CACHE, default ~/.cache/aws-secret-injector) and
# linked into the gitignored .cache/bin of this checkout. Idempotent: a warm cache takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

# moto installs with pip while Go builds the control plane and helm (both cores).
bash test/setup/moto.sh > "$LOG_DIR/moto-install.log" 2>&1 &
moto_pid=$!
bash test/setup/kube.sh
bash test/setup/kube-oldest.sh
bash test/setup/helm.sh
# cert-manager's controller and CA injector (cert-manager e2e); its CRDs are rendered with helm.
bash test/setup/cert-manager.sh
bash test/setup/lint-tools.sh
bash test/setup/node-suite.sh
if ! wait "$moto_pid"; then
  cat "$LOG_DIR/moto-install.log" >&2
  die "installing moto failed (log above)"
fi
tail -n 1 "$LOG_DIR/moto-install.log"
echo "==> test prerequisites ready in .cache/bin ($SECONDS s)"
