#!/usr/bin/env bash
# Installs everything the tests need (Node.js 24 and the npm packages by scripts/node.sh, which
# runs this script; the Go-built control plane, helm and the AWS API emulator by
# test/setup/install.sh, cached), then type-checks, builds the bundles and runs every suite:
# unit, integration, e2e and node, and the e2e suite again on the oldest supported Kubernetes.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> Node.js $(node --version) ($(command -v node))"
bash test/setup/install.sh
echo "==> type-check"
npx tsc -p tsconfig.json --noEmit
echo "==> build"
node scripts/bundle.mjs
echo "==> tests"
# Vitest's own summary, then one plain line any CI reads: "tests: N passed, N failed, N skipped".
results=.cache/logs/vitest-results.json
oldest=.cache/logs/vitest-results-oldest.json
rm -f "$results" "$oldest"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
# The e2e suite once more against the oldest Kubernetes minor docs/compatibility.md claims
# (built by test/setup/kube-oldest.sh); a run narrowed to some files or projects skips it.
if [[ $# -eq 0 ]]; then
  echo "==> e2e suite on the oldest supported Kubernetes (E2E_KUBERNETES=oldest)"
  E2E_KUBERNETES=oldest npx vitest run --project e2e --reporter=default --reporter=json --outputFile.json="$oldest" || status=$?
fi
node -e 'const fs = require("node:fs");
  const runs = process.argv.slice(1).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  if (runs.length === 0) process.exit(0);
  const sum = (k) => runs.reduce((n, r) => n + r[k], 0);
  console.log(`tests: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed, ${sum("numPendingTests") + sum("numTodoTests")} skipped`);' "$results" "$oldest"
exit "$status"
