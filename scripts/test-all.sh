#!/usr/bin/env bash
# Installs everything the tests need (Node.js 24 and the npm packages by scripts/node.sh, which
# runs this script; the Go-built control plane, helm and the AWS API emulator by
# test/setup/install.sh, cached), then type-checks, builds the bundles and runs every suite:
# unit, integration and e2e.
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
rm -f "$results"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
if [[ -f $results ]]; then
  node -e 'const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$results"
fi
exit "$status"
